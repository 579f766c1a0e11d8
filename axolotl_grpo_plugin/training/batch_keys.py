"""The keys of the text batch TRL's GRPO trainer hands its loss, by what a row of each is.

Why here: dynamic sampling restacks rows of several rounds and the zero-advantage skip drops rows
from a micro-batch; both must know which keys hold one entry per row and how each is padded,
and a key neither knows (images, token types) must stop them. TRL 1.9-1.16's
`_generate_and_score_completions` output, text only.
"""

from __future__ import annotations


LEFT_PADDED = ("prompt_ids", "prompt_mask")
RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "sampling_per_token_logps",
                "ref_per_token_logps", "importance_sampling_ratio", "tool_mask")
PER_ROW = ("advantages",)
RECOUNTED = "num_items_in_batch"  # the whole batch's completion tokens: not per row
TOKEN_IDS = ("prompt_ids", "completion_ids")  # padded with the tokenizer's pad id
PAD_ONES = ("tool_mask",)  # TRL pads the tool mask with 1
TEXT_BATCH = frozenset((*LEFT_PADDED, *RIGHT_PADDED, *PER_ROW, RECOUNTED))


def unknown_keys(batch) -> list[str]:
    """The batch's keys outside TRL's text batch, sorted (empty: every key is known)."""
    return sorted(key for key in batch if key not in TEXT_BATCH)
