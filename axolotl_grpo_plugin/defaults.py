"""The TRL and Axolotl facts the plugin relies on, in one place.

Each value is what the named upstream version does when a key is unset; a
test compares them with the installed TRL and Axolotl, so an upgrade that
changes one fails there instead of silently changing our arithmetic.
"""

from __future__ import annotations


# trl.GRPOConfig defaults (TRL 1.9).
TRL_VERSION_READ = "1.9"
MAX_COMPLETION_LENGTH = 256          # GRPOConfig.max_completion_length
NUM_GENERATIONS = 8                  # GRPOConfig.num_generations
VLLM_SERVER_TIMEOUT_S = 240.0        # GRPOConfig.vllm_server_timeout
# axolotl vllm-serve / `vllm:` section defaults (Axolotl 0.19): the server binds 0.0.0.0 on
# VLLM_PORT; a trainer on the same machine connects to VLLM_HOST.
VLLM_HOST = "127.0.0.1"
VLLM_PORT = 8000                     # VllmConfig.port

# Keys people put where Axolotl 0.19 does not read them, with where they belong. Used for
# `trl.KEY` (Axolotl's `trl:` schema lacks them) and `grpo_plugin.trl_args.KEY` (Axolotl
# sets the GRPOConfig field itself, so passing it too would conflict).
SET_ELSEWHERE = {
    "vllm_max_model_len": "set `vllm.max_model_len` instead (`python stats.py CONFIG` sizes it)",
    "vllm_max_model_length": "set `vllm.max_model_len` instead (`python stats.py CONFIG` sizes it)",
    "vllm_gpu_memory_utilization": "set `vllm.gpu_memory_utilization` instead",
    "vllm_tensor_parallel_size": "set `vllm.tensor_parallel_size` instead",
    "max_prompt_length": "Axolotl 0.19 has no GRPO prompt cap; size prompts with "
    "`python stats.py CONFIG` and set `vllm.max_model_len`",
    "per_device_train_batch_size": "set top-level `micro_batch_size` instead",
    "gradient_accumulation_steps": "set top-level `gradient_accumulation_steps` instead",
    "learning_rate": "set top-level `learning_rate` instead",
    "steps_per_generation": "set `trl.generation_batch_size` instead (Axolotl 0.19 does not pass "
    "steps_per_generation, and TRL refuses both)",
}
