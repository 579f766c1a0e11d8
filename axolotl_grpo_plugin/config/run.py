"""The run: every config key the plugin reads, declared once with its type, range, default and
fix, and `read_run(cfg)`, which reads a config into one typed, frozen `Run`.

Why: the config used to be read five ways (typed facts, a table of rules beside them, raw
section look-ups, ...), and a wrong value read as None, so defaults were re-applied at the
call sites. Here a key is one field: add a key by adding a line to `Trl`, `Vllm` or `Run`.
`read_run` reports every wrong value at once (a `Problem` naming the key, the value and the
fix); there is no tolerant reading. Numbers read as Axolotl's own schema reads them (`"4"` and
`1.0e-6` strings included), bools never. The config layer is the bottom layer: this module
imports nothing of ours above config/.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ..errors import GRPOConfigError, Problem
from . import defaults, invalid, load
from .args import GRPOPluginSettings, settings
from .gpus import GpuLayout, GpuLayoutError, split_gpus


def _not_bool(value: Any) -> Any:
    # pydantic's lax int/float read YAML's `true` as 1 (and bytes as digits)
    if isinstance(value, (bool, bytes)):
        raise PydanticCustomError("bool_for_number", "a bool is not a number")
    return value


def _ordered(value: Any) -> Any:
    # pydantic's lax list also takes a set, whose order (weights vs rewards) is arbitrary
    if not isinstance(value, (list, tuple)):
        raise PydanticCustomError("list_type", "not a list")
    return list(value)


def _one_name(value: Any) -> Any:
    return [value] if isinstance(value, str) else value  # `reward_funcs: correctness`: one reward


def _enum_text(value: Any) -> Any:
    return getattr(value, "value", value)  # Axolotl's parsed config holds enums (`vllm_mode`)


Count = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[FiniteFloat, BeforeValidator(_not_bool)]
OrderedList = Annotated[list[Any], BeforeValidator(_ordered)]
Names = Annotated[list[Any], BeforeValidator(_ordered), BeforeValidator(_one_name), Field(min_length=1)]
# strict, as the check always was: a quoted weight ("0.5") is refused, not read as a number
Weights = Annotated[list[Annotated[StrictFloat, Field(allow_inf_nan=False)]], BeforeValidator(_ordered)]
Text = Annotated[str | None, BeforeValidator(_enum_text)]
# An Axolotl bool, read as Axolotl's (lax) schema reads it: `"true"`/`"yes"`/`1` are true, never kept as text
LaxSwitch = bool | None
SWITCH = "set it to true or false"


def key(default: Any, fix: str, *, must: str = "", **bounds: float) -> Any:
    """One key's default, range (`ge`, `gt`, `le`) and fix; `must` overrides what a value of the
    wrong type is told."""
    return Field(default, json_schema_extra={"fix": fix, "must": must}, **bounds)


class Keys(BaseModel):
    """A section of keys: other keys of it are Axolotl's, not ours (unknown ones: checks)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Trl(Keys):
    """The `trl:` keys the plugin reads."""

    use_vllm: StrictBool = key(False, SWITCH)
    vllm_mode: Text = key(None, "set it to `server` or `colocate`", must="must be a string")
    vllm_server_host: Text = key(None, "set it to the server's host, e.g. 127.0.0.1", must="must be a string")
    vllm_server_port: Count = key(None, "set it to a port number, e.g. 8000", ge=1, le=65535)
    vllm_server_timeout: Number = key(defaults.VLLM_SERVER_TIMEOUT_S, "set it to the seconds to wait, e.g. 240", gt=0)
    num_generations: Count = key(defaults.NUM_GENERATIONS, "set it to 2 or more (8-16 is usual): GRPO needs at "
                                 "least 2 completions per prompt to compute an advantage", ge=2)
    num_generations_eval: Count = key(None, "set it to 2 or more, or remove it to use num_generations", ge=2)
    generation_batch_size: Count = key(None, "set it to a multiple of micro_batch_size x processes, or remove it", ge=1)
    steps_per_generation: Count = key(None, "set it to 1 or more, or remove it", ge=1)
    max_completion_length: Count = key(None, "set it to the completion budget in tokens, e.g. 512", ge=1)
    temperature: Number = key(None, "set it above 0 (1.0 is TRL's default)", gt=0)
    top_p: Number = key(None, "set it in (0, 1] (1.0 keeps all tokens)", gt=0, le=1)
    top_k: Count = key(None, "set it to 0 (off) or more", ge=0)
    min_p: Number = key(None, "set it in [0, 1]", ge=0, le=1)
    repetition_penalty: Number = key(None, "set it above 0 (1.0 = no penalty)", gt=0)
    beta: Number = key(defaults.BETA, "set it to 0 (no KL term) or more", ge=0)
    num_iterations: Count = key(None, "set it to 1 or more", ge=1)
    epsilon: Number = key(None, "set it to 0 or more (0.2 is TRL's default)", ge=0)
    vllm_importance_sampling_mode: Text = key(None, "set it to token_truncate, token_mask, sequence_truncate or "
                                              "sequence_mask", must="must be a string")
    async_prefetch: StrictBool = key(False, SWITCH)
    use_data_producer: StrictBool = key(False, SWITCH)
    vllm_enable_sleep_mode: StrictBool = key(False, SWITCH)
    reward_funcs: Names = key([], "list one or more rewards, e.g. `reward_funcs: [correctness, xmlcount]`",
                              must="is empty: GRPO needs at least one reward")
    reward_weights: Weights = key(None, "give one number per entry of trl.reward_funcs, e.g. `[1.0, 0.5]`",
                                  must="every weight must be a finite number")


class Vllm(Keys):
    """The `vllm:` keys the plugin reads (the server's own settings)."""

    host: Text = key(None, "set it to the address the server binds, e.g. 0.0.0.0", must="must be a string")
    port: Count = key(None, "set it to a port number, e.g. 8000", ge=1, le=65535)
    tensor_parallel_size: Count = key(1, "set it to 1 or more (GPUs per vLLM engine)", ge=1)
    data_parallel_size: Count = key(1, "set it to 1 or more (vLLM engines)", ge=1)
    max_model_len: Count = key(None, "set it to prompt + completion tokens; `axolotl-grpo stats CONFIG` sizes it", ge=1)
    gpu_memory_utilization: Number = key(None, "set it in (0, 1], e.g. 0.85", gt=0, le=1)
    dtype: Text = key(None, "set it to a torch dtype, e.g. float32", must="must be a string")
    worker_extension_cls: Text = key(None, "set it to an import path", must="must be a string")
    enforce_eager: StrictBool = key(None, SWITCH)


def _section_fix(name: str) -> str:
    return f"write it as `{name}: {{key: value, ...}}`"


def _list_fix(name: str) -> str:
    return f"write it as `{name}: [{{path: FILE_OR_HUB_ID, type: TRANSFORM}}]`"


# Where a server bound to every interface is reached from this machine.
_ANY_HOST = (None, "0.0.0.0", "::")


class Run(Keys):
    """One config, read: the plugin's settings, the TRL/vLLM sections and the top-level keys."""

    plugin: GRPOPluginSettings = GRPOPluginSettings()
    trl: Trl = key(Trl(), _section_fix("trl"))
    vllm: Vllm = key(Vllm(), _section_fix("vllm"))
    datasets: OrderedList = key([], _list_fix("datasets"))
    test_datasets: OrderedList = key([], _list_fix("test_datasets"))
    micro_batch_size: Count = key(1, "set it to the prompts-x-completions each process scores per step, e.g. 4", ge=1)
    gradient_accumulation_steps: Count = key(1, "set it to 1 or more (1 = one micro batch per optimizer step)", ge=1)
    eval_batch_size: Count = key(None, "set it to 1 or more, or remove it to use micro_batch_size", ge=1)
    max_steps: Count = key(None, "set it to 1 or more, or remove it to train for `num_epochs`", ge=1)
    num_epochs: Number = key(None, "set it above 0, e.g. 1", gt=0)
    learning_rate: Number = key(None, "set it above 0, e.g. 1.0e-6", gt=0)
    val_set_size: Number = key(0, "set it to 0 (no split) or a fraction such as 0.05", ge=0)
    # TRL evaluates while training only when one of these is set: Axolotl 0.19 sets eval_strategy from
    # them (core/builders/base.py) and TrainingArguments' default is "no"
    eval_steps: Number = key(None, "set it above 0 (a step count, or a fraction of the run), or remove it", gt=0)
    evals_per_epoch: Count = key(None, "set it to 1 or more, or remove it", ge=1)
    eval_strategy: Text = key(None, "set it to `steps`, `epoch` or `no`", must="must be a string")
    bf16: StrictBool | Literal["auto"] = key(None, "set it to true, false or auto", must="must be true or false")
    fp16: StrictBool = key(None, SWITCH)
    use_trackio: StrictBool = key(None, SWITCH)
    output_dir: str = defaults.DEFAULT_OUTPUT_DIR
    # Axolotl's keys, typed as its schema types them and read as it reads them (its bools lax: `"true"` is
    # true; no range of ours), so a value Axolotl accepts reads the same here, numbers apart: a bool is never
    # one (tests/test_config_values.py). What the checks, the tokenizer and the planner read.
    rl: Text = key(None, "set `rl: grpo`", must="must be a string")
    base_model: Text = key(None, "set it to a Hub model id or a local model folder, e.g. "
                           "`base_model: Qwen/Qwen2.5-0.5B-Instruct`", must="must be a string")
    adapter: Text = key(None, "set it to lora or qlora, or remove it for a full fine-tune", must="must be a string")
    deepspeed: str | dict[str, Any] | None = key(None, "set it to a DeepSpeed json file or an inline mapping")
    fsdp: list[str] | None = key(None, "list the FSDP options, e.g. `[full_shard, auto_wrap]`")
    fsdp_config: dict[str, Any] | None = key(None, _section_fix("fsdp_config"))
    load_in_4bit: LaxSwitch = key(None, SWITCH)
    load_in_8bit: LaxSwitch = key(None, SWITCH)
    sequence_len: Count = key(None, "set it to the context length in tokens, or remove it (GRPO does not read it)")
    trackio_project_name: Text = key(None, "set it to a project name", must="must be a string")
    # the tokenizer and chat template, configured as Axolotl configures them (sources/)
    base_model_config: Text = key(None, "set it to a Hub id or folder with the model's config", must="must be a string")
    tokenizer_config: Text = key(None, "set it to a Hub id or folder with the tokenizer", must="must be a string")
    tokenizer_type: Text = key(None, "set it to a transformers tokenizer class, e.g. AutoTokenizer",
                               must="must be a string")
    tokenizer_use_fast: LaxSwitch = key(None, SWITCH)
    tokenizer_legacy: LaxSwitch = key(None, SWITCH)
    revision_of_model: Text = key(None, "set it to a branch, tag or commit of the model repository",
                                  must="must be a string")
    trust_remote_code: LaxSwitch = key(None, SWITCH)
    special_tokens: dict[str, Any] | None = key(None, "write it as `special_tokens: {pad_token: ..., ...}`")
    tokens: list[str] | None = key(None, "list the tokens to add, e.g. `[\"<tool>\"]`")
    chat_template: Text = key(None, "set it to a template name, e.g. chatml or tokenizer_default", must="must be a string")
    chat_template_jinja: Text = key(None, "set it to a Jinja template or a .jinja file", must="must be a string")
    default_system_message: Text = key(None, "set it to the system message text", must="must be a string")
    resume_from_checkpoint: Text = key(None, "set it to a checkpoint folder", must="must be a string")
    auto_resume_from_checkpoints: LaxSwitch = key(None, SWITCH)
    # what the memory planner reads (plan/from_config.py)
    fsdp_version: Count = key(None, "set it to 1 or 2")
    gradient_checkpointing: Literal["offload", "offload_disk"] | LaxSwitch = key(
        None, "set it to true, false, offload or offload_disk", must="must be true, false, offload or offload_disk")
    optimizer: Text = key(defaults.OPTIMIZER, f"set it to an optimizer name, e.g. {defaults.OPTIMIZER}",
                          must="must be a string")
    lora_r: Count = key(None, "set it to the LoRA rank, e.g. 16")
    lora_dropout: Number = key(defaults.LORA_DROPOUT, "set it in [0, 1), e.g. 0.05")
    lora_target_linear: LaxSwitch = key(None, SWITCH)
    lora_target_modules: str | list[str] | None = key(None, "list the module names, e.g. `[q_proj, v_proj]`")
    attn_implementation: Text = key(None, "set it to an attention implementation, e.g. sdpa or flash_attention_2",
                                    must="must be a string")
    flash_attention: LaxSwitch = key(None, SWITCH)
    sdp_attention: LaxSwitch = key(None, SWITCH)
    flex_attention: LaxSwitch = key(None, SWITCH)
    config_path: str = Field("CONFIG", alias=defaults.CONFIG_PATH_KEY)  # the yaml's path, for messages

    _gpu_layouts: dict = PrivateAttr(default_factory=dict)

    @property
    def server_mode(self) -> bool:
        """Generation on a separate vLLM server (`trl.use_vllm` + `trl.vllm_mode: server`)."""
        return self.trl.use_vllm and self.trl.vllm_mode == "server"

    @property
    def vllm_host(self) -> str:
        """Where the trainer reaches the server: `trl.vllm_server_host`, else `vllm.host` as reached
        from this machine (checks.fill_vllm_server_address writes it under `trl:`)."""
        bound = self.vllm.host
        return self.trl.vllm_server_host or (defaults.VLLM_HOST if bound in _ANY_HOST else bound)

    @property
    def vllm_port(self) -> int:
        return self.trl.vllm_server_port or self.vllm.port or defaults.VLLM_PORT

    @property
    def vllm_mode(self) -> str:
        """`trl.vllm_mode`, TRL's default (colocate) when unset."""
        return self.trl.vllm_mode or defaults.VLLM_MODE

    @property
    def vllm_gpu_memory_utilization(self) -> float:
        """`vllm.gpu_memory_utilization`, Axolotl's default when unset."""
        return self.vllm.gpu_memory_utilization or defaults.VLLM_GPU_MEMORY_UTILIZATION

    @property
    def tokenizer_class(self) -> str:
        """`tokenizer_type`, else the class Axolotl loads the tokenizer with."""
        return self.tokenizer_type or defaults.TOKENIZER_CLASS

    @property
    def server_gpus(self) -> int:
        """The vLLM server's GPUs: tensor x data parallel."""
        return self.vllm.tensor_parallel_size * self.vllm.data_parallel_size

    @property
    def completion_length(self) -> int:
        """`trl.max_completion_length`, TRL's default when unset."""
        return self.trl.max_completion_length or defaults.MAX_COMPLETION_LENGTH

    @property
    def overlong_cache(self) -> int:
        """`grpo_plugin.overlong_cache`, else a fifth of the completion length (DAPO's 4096 of 20480):
        the tokens before the cut over which the `soft_overlong` reward's penalty grows."""
        return self.plugin.overlong_cache or max(1, self.completion_length // 5)

    @property
    def evaluates_while_training(self) -> bool:
        """TRL's own evaluation runs during training: held-out rows (`val_set_size` or `test_datasets`)
        and a schedule (`eval_steps`, `evals_per_epoch`, or an `eval_strategy` other than `no`).
        Held-out rows alone are only loaded (and scored by `axolotl-grpo evaluate`)."""
        if not (self.val_set_size or self.test_datasets):
            return False
        return bool(self.eval_steps or self.evals_per_epoch) or self.eval_strategy not in (None, "no")

    @property
    def half_precision(self) -> bool:
        """`bf16: true|auto` or `fp16: true`: Axolotl trains in half precision (on a GPU)."""
        return self.bf16 in (True, "auto") or self.fp16 is True

    def updated(self, values: Mapping[str, Any]) -> Run:
        """This Run with dotted keys (`trl.vllm_server_host`) set to values already valid (a fill's)."""
        top = {k: v for k, v in values.items() if "." not in k}
        for name in ("trl", "vllm"):
            inner = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{name}.")}
            if inner:
                top[name] = getattr(self, name).model_copy(update=inner)
        return self.model_copy(update=top)

    def gpu_layout(self, visible: Sequence[str], machine_gpus: int | None = None) -> GpuLayout:
        """The vLLM server's GPUs and the trainers' for the GPUs a launch sees: THE one place
        the layout is computed, once per launch (raises GpuLayoutError). `machine_gpus` (when known)
        also refuses reserved ids the machine lacks: a layout that passed it is reused without."""
        key = tuple(str(g) for g in visible)
        checked, found = self._gpu_layouts.get(key, (None, None))
        if found is None or (checked != machine_gpus and (machine_gpus is not None or isinstance(found, GpuLayoutError))):
            try:
                found = split_gpus(key, self.plugin.vllm_gpus, self.server_gpus, machine_gpus)
            except GpuLayoutError as exc:
                found = exc
            self._gpu_layouts[key] = (machine_gpus, found)
        if isinstance(found, GpuLayoutError):
            raise found
        return found


def _set(value: Any) -> Any:
    """A section with its unset (None) keys left out: an empty `key:` is unset, as Axolotl reads it."""
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    return value


def write(cfg: MutableMapping[str, Any], run: Run, values: Mapping[str, Any]) -> Run:
    """Write dotted keys into the config Axolotl reads after register and return the Run with them,
    so the two never differ (the plugin's fills, the autostarted server's address)."""
    load.set_keys(cfg, values)
    return run.updated(values)


def read_plugin(cfg: Any) -> GRPOPluginSettings:
    """The `grpo_plugin:` settings alone, for the code Axolotl calls with its validated config and
    nothing else (the dataset transforms): the Run's own parser, checked at register."""
    return cfg.plugin if isinstance(cfg, Run) else settings(cfg or {})


def read_run(cfg: Any) -> Run:
    """The config read into a Run, or GRPOConfigError listing every wrong value at once."""
    if isinstance(cfg, Run):
        return cfg
    problems: list[Problem] = []
    try:
        plugin = settings(cfg)
    except GRPOConfigError as exc:
        problems, plugin = list(exc.problems), None
    data = {k: _set(cfg.get(k)) for k in (*Run.model_fields, defaults.CONFIG_PATH_KEY)
            if k != "plugin" and cfg.get(k) is not None}
    try:
        run = Run.model_validate(data)
    except ValidationError as exc:
        raise GRPOConfigError(problems + invalid.problems(exc, Run, data)) from None
    if problems:
        raise GRPOConfigError(problems)
    return run.model_copy(update={"plugin": plugin})
