"""Reward functions for R1-style GRPO, in TRL's reward-function convention.

Pure Python and stdlib only, so that they can be imported, tested and benchmarked
without torch, transformers or axolotl. Import the task modules directly
(``rewards.gsm8k``); nothing is imported here.
"""
