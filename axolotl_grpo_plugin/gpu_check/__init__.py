"""The GPU check: measure on a real GPU what `axolotl-grpo plan` predicts (commands/__init__.py)."""
