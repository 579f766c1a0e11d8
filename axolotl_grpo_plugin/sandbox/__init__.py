"""The config's side of the code sandbox (axolotl_grpo_rewards.sandbox, where model-written code runs):
`grpo_plugin.code_sandbox` as the sandbox's Settings, handed to it once per process (`configure`),
and whether the chosen backend can run here (`problems`, for `check` and training alike).

A backend that cannot run is refused, never replaced by a weaker one: the config names a weaker
sandbox (`local_no_namespaces`) itself or does not get one.
"""

from __future__ import annotations

from typing import Any

from axolotl_grpo_rewards import sandbox as rewards_sandbox

from ..config.args import CodeSandboxSettings
from ..errors import Problem


KEY = "grpo_plugin.code_sandbox"
CODE_REWARDS = ("code_pass_rate", "code_all_pass")
CODE_TRANSFORMS = ("humaneval", "code")


def settings_of(code_sandbox: CodeSandboxSettings) -> rewards_sandbox.Settings:
    values = code_sandbox.model_dump()
    limits = rewards_sandbox.Limits(**{k: values[k] for k in rewards_sandbox.Limits.__dataclass_fields__})
    return rewards_sandbox.Settings(backend=code_sandbox.backend, limits=limits, url=code_sandbox.url,
                                    workers=code_sandbox.workers)


def configure(run: Any) -> None:
    """Every code reward scored in this process runs on the run's sandbox."""
    rewards_sandbox.configure(settings_of(run.plugin.code_sandbox))


def sandbox_of(code_sandbox: CodeSandboxSettings):
    """A sandbox for these settings (the transforms' reference check)."""
    return rewards_sandbox.make_sandbox(settings_of(code_sandbox))


def uses_code(run: Any) -> bool:
    """Whether the run scores or loads code: a code reward, or a code transform."""
    names = [str(n).rpartition(".")[2].removeprefix("reward_") for n in run.trl.reward_funcs or []]
    types = [str(getattr(d, "type", None) or (d.get("type") if hasattr(d, "get") else "") or "")
             .rpartition(".")[2].removeprefix("transform_") for d in [*(run.datasets or []), *(run.test_datasets or [])]]
    return any(n in CODE_REWARDS for n in names) or any(t in CODE_TRANSFORMS for t in types)


def problems(code_sandbox: CodeSandboxSettings) -> list[Problem]:
    """Why the configured backend cannot run programs here (nothing when it can)."""
    backend = code_sandbox.backend
    if backend == "sandbox_fusion" and not code_sandbox.url:
        return [Problem(f"{KEY}.url", None, "is required with `backend: sandbox_fusion`.",
                        "set it to the SandboxFusion server's base URL, e.g. http://127.0.0.1:8080 (docs/code.md)")]
    missing = None
    try:
        box = sandbox_of(code_sandbox)
        why = box.problem()
        missing = box.missing_library() if why else None  # asked only to word a problem's fix
    except Exception as exc:  # noqa: BLE001 - whatever stops the backend is the problem to report
        why = f"{type(exc).__name__}: {exc}"
    if not why:
        return []
    if missing:  # libseccomp: both local backends filter the program's system calls
        return [Problem(f"{KEY}.backend", backend, f"cannot run programs here: {why}.",
                        "install libseccomp (Debian/Ubuntu: apt-get install libseccomp2; Fedora: dnf install "
                        "libseccomp), or point `backend` at sandbox_fusion or modal (docs/code.md)")]
    fix = {"local": "run where unshare may create PID, network and mount namespaces (as root, or in a container "
                    "started with --privileged or CAP_SYS_ADMIN), point `backend` at sandbox_fusion or modal, or "
                    "accept a weaker sandbox by name with `backend: local_no_namespaces` (docs/code.md says what it "
                    "does not guarantee)",
           "local_no_namespaces": "run as root, with Python installed where any user may read it, or use another "
                                  "backend (docs/code.md)",
           "sandbox_fusion": "start the server (docs/code.md) or fix `url`",
           "modal": "install the modal SDK and log in (`modal token new`), or use another backend"}[backend]
    return [Problem(f"{KEY}.backend", backend, f"cannot run programs here: {why}.", fix)]
