"""What `axolotl-grpo check` and `axolotl train` refuse before any model loads, one module per thing
checked (batch, hardware, rewards, files, trainer), run in one order by `prepare.prepare_config`;
`command.py` is the `axolotl-grpo check` command (`python -m axolotl_grpo_plugin.check`)."""
