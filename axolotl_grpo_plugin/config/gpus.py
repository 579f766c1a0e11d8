"""Which GPUs the vLLM server gets and which the training processes get.

Pure functions, so the layout for 2, 4 or 8 GPUs is testable without a GPU.

Why the launch has to be checked: `axolotl train` execs
`accelerate launch -m axolotl.cli.train CONFIG`, and without an accelerate config
accelerate starts one process per visible GPU *before* any plugin code runs.
Process LOCAL_RANK i then trains on `cuda:i`, the i-th visible GPU. `check_launch`
finds a training process on a reserved GPU, and `launcher_args` names the launch that
fixes it (`--num_processes N`, plus `--gpu_ids` when the free GPUs are not the first
ones): `relaunch.py` execs that launch, or the error tells the user to pass it.
The vLLM server is a separate process and gets its own `CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import GRPOConfigError, Problem, counted


class GpuLayoutError(GRPOConfigError):
    """The GPUs cannot be split as the config asks: one Problem, its parts also as attributes."""

    def __init__(self, key: str, value, message: str, fix: str):
        self.key, self.value, self.message, self.fix = key, value, message, fix
        super().__init__([Problem(key, value, message, fix)])


@dataclass(frozen=True)
class GpuLayout:
    """GPU ids (as CUDA_VISIBLE_DEVICES spells them) for the server and for training."""

    server: tuple[str, ...]
    trainer: tuple[str, ...]

    @property
    def server_env(self) -> str:
        """The server's CUDA_VISIBLE_DEVICES."""
        return ",".join(self.server)


def visible_gpus(env: Mapping[str, str], count: Callable[[], int]) -> list[str]:
    """GPU ids this launch can see: CUDA_VISIBLE_DEVICES if set, else 0..count()-1."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [token.strip() for token in listed.split(",") if token.strip()]
    return [str(i) for i in range(count())]


def split_gpus(visible: Sequence[str], vllm_gpus: Sequence[int] | None, server_gpus: int = 1,
                machine_gpus: int | None = None) -> GpuLayout:
    """Reserve `vllm_gpus` (default: the last `server_gpus` visible GPUs) for vLLM.

    `vllm_gpus` are the machine's GPU ids (nvidia-smi numbering), which need not be visible
    to this launch (after a relaunch with `--gpu_ids`, the trainers see only theirs); with
    `machine_gpus` (when known) an id the machine does not have is refused."""
    visible = [str(g) for g in visible]
    server_gpus = max(int(server_gpus), 1)
    if vllm_gpus is None:
        if len(visible) < server_gpus + 1:
            raise GpuLayoutError(
                "grpo_plugin.vllm_gpus", None,
                f"vLLM autostart needs {server_gpus + 1} GPUs ({server_gpus} for the vLLM server + at least "
                f"1 for training) but this launch sees {len(visible)} ({_describe(visible)}).",
                _too_few_fix(),
            )
        return GpuLayout(server=tuple(visible[-server_gpus:]), trainer=tuple(visible[:-server_gpus]))
    reserved = [str(g) for g in vllm_gpus]
    if not reserved or len(set(reserved)) != len(reserved):
        raise GpuLayoutError("grpo_plugin.vllm_gpus", list(vllm_gpus), "list each reserved GPU id once.",
                          "e.g. `vllm_gpus: [1]`, or remove the key to reserve the last GPU")
    absent = [g for g in vllm_gpus if machine_gpus is not None and not 0 <= int(g) < machine_gpus]
    if absent:
        raise GpuLayoutError(
            "grpo_plugin.vllm_gpus", list(vllm_gpus),
            f"GPU {','.join(map(str, absent))} does not exist: the machine has {counted(machine_gpus, 'GPU')}, "
            f"numbered 0 to {machine_gpus - 1}." if machine_gpus else
            f"GPU {','.join(map(str, absent))} does not exist: the machine has no GPU.",
            f"reserve GPU ids below {machine_gpus} (e.g. `vllm_gpus: [{max(machine_gpus - 1, 0)}]`), or remove "
            "the key to reserve the last GPU",
        )
    if len(reserved) != server_gpus:
        raise GpuLayoutError(
            "grpo_plugin.vllm_gpus", list(vllm_gpus),
            f"{len(reserved)} GPUs reserved but the server uses vllm.tensor_parallel_size x "
            f"vllm.data_parallel_size = {server_gpus}.",
            f"reserve {counted(server_gpus, 'GPU')}, or change vllm.tensor_parallel_size / data_parallel_size",
        )
    trainer = tuple(g for g in visible if g not in reserved)
    if not trainer:
        raise GpuLayoutError(
            "grpo_plugin.vllm_gpus", list(vllm_gpus),
            f"no GPU is left for training: this launch sees {_describe(visible)} and all are reserved.",
            _too_few_fix(),
        )
    return GpuLayout(server=tuple(reserved), trainer=trainer)


def check_launch(layout: GpuLayout, visible: Sequence[str], local_processes: int, config: str) -> None:
    """Raise when a training process (LOCAL_RANK i trains on visible[i]) would use a reserved GPU."""
    used = [str(g) for g in visible][: max(local_processes, 1)]
    clashes = [(rank, gpu) for rank, gpu in enumerate(used) if gpu in layout.server]
    if not clashes and local_processes <= len(visible):
        return
    where = ", ".join(f"LOCAL_RANK {rank} on GPU {gpu}" for rank, gpu in clashes) or "more processes than GPUs"
    raise GpuLayoutError(
        "launch", f"{local_processes} training processes",
        f"{_describe(layout.server)} {'is' if len(layout.server) == 1 else 'are'} reserved for the "
        f"vLLM server, but the launch puts "
        f"{where}. Without an accelerate config, accelerate starts one process per visible GPU.",
        f"start one training process per free GPU: `{train_command(config, layout, visible)}`",
    )


def launcher_args(layout: GpuLayout, visible: Sequence[str]) -> list[str]:
    """accelerate arguments that put one training process on each free GPU."""
    n = len(layout.trainer)
    args = ["--num_processes", str(n)]
    if list(layout.trainer) != [str(g) for g in visible][:n]:
        args += ["--gpu_ids", ",".join(layout.trainer)]
    return args


def train_command(config: str, layout: GpuLayout, visible: Sequence[str]) -> str:
    """The exact `axolotl train` command for this layout (launcher args go after `--`)."""
    return f"axolotl train {config} -- " + " ".join(launcher_args(layout, visible))


def _describe(visible: Sequence[str]) -> str:
    return "no GPU" if not visible else "GPU " + ",".join(visible)


def _too_few_fix() -> str:
    return ("use a machine with one more GPU, or generate on the training GPU with "
            "`trl.vllm_mode: colocate` (and `grpo_plugin.vllm_autostart: false`)")
