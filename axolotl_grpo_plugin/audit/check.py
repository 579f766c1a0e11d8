"""The cheap part of the audit that `axolotl-grpo check` runs: the families on a few prompts,
turned into warnings (never problems: a hackable reward trains, it just trains the wrong thing)."""

from __future__ import annotations

from typing import Any

from ..errors import PluginError


CHECK_PROMPTS = 4


def reward_warnings(raw: dict[str, Any], prompts: int = CHECK_PROMPTS) -> list[str]:
    """One warning per hackable reward (and the total) on `prompts` local training prompts; none
    when the datasets are not local files or cannot be read (the other checks report those)."""
    from pathlib import Path

    entries = raw.get("datasets")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("path"), str) and Path(e["path"]).exists() for e in entries):
        return []
    from ..config.run import Run

    try:
        if Run.of(raw).plugin.remote_rewards:  # each would call its endpoint: `check` spends no budget
            return ["the reward audit skipped its cheap pass: grpo_plugin.remote_rewards would call their "
                    "endpoints; `axolotl-grpo audit CONFIG` audits every reward."]
    except PluginError:
        return []  # a wrong grpo_plugin section is the other checks' to report
    from .core import audit

    try:
        result = audit(raw, prompts=prompts)
    except PluginError:
        return []  # the config's own problems are the other checks' to report
    except Exception as exc:  # noqa: BLE001 - the audit must never break `check`
        return [f"the reward audit could not run ({type(exc).__name__}: {str(exc)[:200]}); "
                "`axolotl-grpo audit CONFIG --verbose` shows why."]
    return [f"reward audit ({result.prompts} prompts): `{v.name}` {v.why}. Fix: {v.fix}. "
            "`axolotl-grpo audit CONFIG` shows every family."
            for v in [*result.rewards, result.total] if v.hackable]
