"""The reward audit: what degenerate completions score with a config's rewards, before training.

`axolotl-grpo audit CONFIG` (see `--help`): families.py builds the completions, core.py scores
and judges them, rollouts.py recognises the same families in a run's rollout log (used by the
HTML report and the run doctor), check.py is the cheap part `axolotl-grpo check` runs.
"""
