"""The run: what the plugin needs of a config, read once and typed.

Why: the config used to be re-read wherever a fact was needed (the `grpo_plugin:` section
parsed at two dozen places, `trl:`/`vllm:` looked up inline, the vLLM server's GPU count
computed three ways). `Run.of(cfg)` parses the plugin's own section once (args.settings) and
reads the TRL/vLLM/launch facts the plugin computes with, resolved through defaults.py;
`GRPOPlugin.register` keeps the result and the hooks pass it down.

Facts are read tolerantly (config/values.py: a wrong value reads as None, its default when
unset), because the checks that report a wrong value run on the same config; a bad
`grpo_plugin:` value raises GRPOConfigError naming the key, the value and the fix.
The config layer is the bottom layer: this module imports nothing of ours above config/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .. import defaults
from ..args import GRPOPluginSettings, raw_section, settings
from . import values
from .gpus import GpuLayout, GpuLayoutError, split_gpus


# Where a server bound to every interface is reached from this machine.
_ANY_HOST = (None, "0.0.0.0", "::")
_CACHE_SIZE = 16


def _read(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A value to compute with: values.read for keys with a rule, else the raw value."""
    if key in values.BY_KEY:
        return values.read(cfg, key, default)
    value = values.raw(cfg, key)
    return default if value in (values.UNSET, values.WRONG) else value


def _facts(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The TRL/vLLM/launch facts of a config (cheap: dict look-ups, no parsing)."""
    tp = values.read(cfg, "vllm.tensor_parallel_size", 1)
    dp = values.read(cfg, "vllm.data_parallel_size", 1)
    host, bound, mode = _read(cfg, "trl.vllm_server_host"), _read(cfg, "vllm.host"), _read(cfg, "trl.vllm_mode")
    return dict(
        use_vllm=bool(_read(cfg, "trl.use_vllm", False)),
        vllm_mode=None if mode is None else str(getattr(mode, "value", mode)),  # Axolotl's enum or a str
        vllm_host=str(host or (defaults.VLLM_HOST if bound in _ANY_HOST else bound)),
        vllm_port=int(_read(cfg, "trl.vllm_server_port") or _read(cfg, "vllm.port") or defaults.VLLM_PORT),
        vllm_server_timeout=float(_read(cfg, "trl.vllm_server_timeout") or defaults.VLLM_SERVER_TIMEOUT_S),
        server_gpus=None if None in (tp, dp) else tp * dp,
        num_generations=values.read(cfg, "trl.num_generations", defaults.NUM_GENERATIONS),
        max_completion_length=values.read(cfg, "trl.max_completion_length", defaults.MAX_COMPLETION_LENGTH),
        temperature=values.read(cfg, "trl.temperature"),
        top_p=values.read(cfg, "trl.top_p"),
        top_k=values.read(cfg, "trl.top_k"),
        min_p=values.read(cfg, "trl.min_p"),
        repetition_penalty=values.read(cfg, "trl.repetition_penalty"),
        vllm_max_model_len=values.read(cfg, "vllm.max_model_len"),
        micro_batch_size=values.read(cfg, "micro_batch_size", 1),
        gradient_accumulation_steps=values.read(cfg, "gradient_accumulation_steps", 1),
        output_dir=str(cfg.get("output_dir") or defaults.DEFAULT_OUTPUT_DIR),
        config_path=str(cfg.get(defaults.CONFIG_PATH_KEY) or "CONFIG"),
    )


class Facts(BaseModel):
    """The TRL/vLLM/launch facts of a config, typed; never raises (a wrong value reads as None).
    The tools that need no plugin settings (probe, evaluate's sampling) read these alone."""

    model_config = ConfigDict(frozen=True)

    use_vllm: bool = False
    vllm_mode: str | None = None
    # where the trainer reaches the server: `trl.vllm_server_host`, else `vllm.host` as reached
    # from this machine (checks.fill_vllm_server_address writes it under `trl:`)
    vllm_host: str = defaults.VLLM_HOST
    vllm_port: int = defaults.VLLM_PORT
    vllm_server_timeout: float = defaults.VLLM_SERVER_TIMEOUT_S
    server_gpus: int | None = 1  # vllm.tensor_parallel_size x data_parallel_size; None: a size is wrong
    num_generations: int | None = defaults.NUM_GENERATIONS
    max_completion_length: int | None = defaults.MAX_COMPLETION_LENGTH
    # sampling as written under `trl:` (None: unset, TRL's default applies)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    vllm_max_model_len: int | None = None
    micro_batch_size: int | None = 1
    gradient_accumulation_steps: int | None = 1
    output_dir: str = defaults.DEFAULT_OUTPUT_DIR
    config_path: str = "CONFIG"  # the yaml's path, for the commands messages print

    @property
    def server_mode(self) -> bool:
        """Generation on a separate vLLM server (`trl.use_vllm` + `trl.vllm_mode: server`)."""
        return self.use_vllm and self.vllm_mode == "server"

    @classmethod
    def of(cls, cfg: Any) -> Facts:
        return cfg if isinstance(cfg, Facts) else cls(**_facts(cfg))


class Run(Facts):
    """One config, read: the plugin's settings and the facts the plugin computes with."""

    plugin: GRPOPluginSettings

    _gpu_layouts: dict = PrivateAttr(default_factory=dict)

    def gpu_layout(self, visible: Sequence[str], machine_gpus: int | None = None) -> GpuLayout:
        """The vLLM server's GPUs and the trainers' for the GPUs a launch sees: THE one place
        the layout is computed, once per launch (raises GpuLayoutError). `machine_gpus` (when known)
        also refuses reserved ids the machine lacks: a layout that passed it is reused without."""
        key = tuple(str(g) for g in visible)
        checked, found = self._gpu_layouts.get(key, (None, None))
        if found is None or (checked != machine_gpus and (machine_gpus is not None or isinstance(found, GpuLayoutError))):
            try:
                found = split_gpus(key, self.plugin.vllm_gpus, self.server_gpus or 1, machine_gpus)
            except GpuLayoutError as exc:
                found = exc
            self._gpu_layouts[key] = (machine_gpus, found)
        if isinstance(found, GpuLayoutError):
            raise found
        return found

    @classmethod
    def of(cls, cfg: Any) -> Run:
        """The one Run of this config: built on the first call, the same instance after (the
        plugin's own fills, names and batch, change no fact read here)."""
        if isinstance(cfg, Run):
            return cfg
        facts = _facts(cfg)
        key = repr((raw_section(cfg), facts))
        run = _CACHE.get(key)
        if run is None:
            run = cls(plugin=settings(cfg), **facts)
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = run
        return run


_CACHE: dict[str, Run] = {}
