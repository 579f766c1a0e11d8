"""The cheap part of the audit that `axolotl-grpo check` runs: the families on a few prompts,
turned into warnings (never problems: a hackable reward trains, it just trains the wrong thing)."""

from __future__ import annotations

from typing import Any

from ..errors import PluginError


CHECK_PROMPTS = 4


def reward_warnings(raw: dict[str, Any], run: Any, prompts: int = CHECK_PROMPTS) -> list[str]:
    """One warning per hackable reward (and the total) on `prompts` local training prompts; none
    when the datasets are not local files or cannot be read (the other checks report those)."""
    from pathlib import Path

    if not all(isinstance(e, dict) and isinstance(e.get("path"), str) and Path(e["path"]).exists()
               for e in run.datasets):
        return []
    if run.plugin.remote_rewards:  # each would call its endpoint: `check` spends no budget
        return ["the reward audit skipped its cheap pass: grpo_plugin.remote_rewards would call their "
                "endpoints; `axolotl-grpo audit CONFIG` audits every reward."]
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
