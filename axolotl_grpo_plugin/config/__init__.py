"""Everything about a training config before the model loads: reading it (`load`), resolving
registered names (`names`), the checks `check` and `axolotl train` share (`checks`), the batch
arithmetic (`batching`), Axolotl's schema fields (`schema`) and TRL pass-through (`trl_args`)."""
