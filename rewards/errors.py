"""The two reward errors that are allowed to stop training.

Everything a reward does with model output is contained (see
``axolotl_grpo_plugin.containment``): exceptions become a score, never a crash.
These two are different: they are mistakes in the config or in a reward's code,
the same on every batch and every rank, so stopping at the first batch with a
message that names the fix is kinder than training on wrong rewards.
"""

from __future__ import annotations


class RewardConfigError(ValueError):
    """The data or config cannot be scored at all, e.g. a `data_source` no reward handles."""


class RewardContractError(TypeError):
    """A reward broke TRL's contract: not one value (a float or None) per completion."""
