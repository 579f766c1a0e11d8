"""The config layer: every key the plugin reads and `read_run` (`run`), the `grpo_plugin:` schema (`args`),
reading the file (`load`), a wrong value as a Problem (`invalid`), TRL/Axolotl facts (`defaults`), the batch
arithmetic (`batching`), the GPU layout (`gpus`), Axolotl's schema fields (`schema`), unknown keys
(`unknown_keys`), TRL pass-through (`trl_args`)."""
