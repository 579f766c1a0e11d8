"""Each forward of the trainer runs on its own rows' length, not the whole generation's.

Why: TRL pads every completion of a generation batch to the longest one, then splits the batch
into micro-batches (and the old/ref log-prob passes into chunks) that keep that width. One
completion cut at `max_completion_length` makes every micro-batch of the step run the full
length, most of it padding: on a CPU the forward and backward are most of a GRPO step, and they
cost in proportion to the tokens they see (docs/benchmarks.md, "Padding trimmed per micro-batch").

So `_get_per_token_logps_and_entropies` is wrapped: each chunk of rows drops the trailing columns
that no row of the chunk attends to, runs as before, and its per-token outputs are padded back
with zeros to the width TRL expects. The columns dropped are padding every kept token ignores
(causal or not, an attention mask of 0 hides them), so each kept token's log-prob is the one
computed without the trim. Multimodal inputs (images, tiles) pass through untouched. Each step
logs `padding/trimmed_share`: each call's share of positions skipped, averaged over the step's calls.
"""

from __future__ import annotations

import inspect
from types import MethodType
from typing import Any


METHOD = "_get_per_token_logps_and_entropies"
# keyword arguments that say nothing about the rows' layout; any other one that is set (pixel
# values, image grids, token types) leaves the call as TRL makes it
TEXT_ONLY = frozenset({"compute_entropy", "compute_aux_loss"})
# each call's share of the padded positions skipped, averaged over the step's calls (0: nothing to trim)
METRIC = "padding/trimmed_share"


def install(trainer: Any) -> bool:
    """Wraps the trainer's per-token log-prob method (once). False where TRL's method does not
    take (model, input_ids, attention_mask, logits_to_keep) first: left as it is."""
    original = getattr(trainer, METHOD, None)
    if original is None or getattr(original, "trims_padding", False):
        return False
    names = list(inspect.signature(original).parameters)
    if names[:1] != ["model"] or "batch_size" not in names:
        return False
    setattr(trainer, METHOD, MethodType(_trimmed(original), trainer))
    return True


def trailing_padding(attention_mask) -> int:
    """How many last columns no row of `attention_mask` attends to."""
    attended = attention_mask.any(dim=0).nonzero()
    return attention_mask.size(1) - (int(attended.max()) + 1 if attended.numel() else 0)


def _trimmed(original):
    def per_token_logps(self, model, input_ids, attention_mask, logits_to_keep, *rest, batch_size=None, **kwargs):
        if len(rest) == 1 and (rest[0] is None or isinstance(rest[0], int)):  # Axolotl passes it by position
            batch_size, rest = rest[0], ()
        if rest or any(value is not None for key, value in kwargs.items() if key not in TEXT_ONLY):
            return original(model, input_ids, attention_mask, logits_to_keep, *rest, batch_size=batch_size, **kwargs)
        import torch
        import torch.nn.functional as F

        size = batch_size or input_ids.size(0)
        chunks, ran = [], 0
        for start in range(0, input_ids.size(0), size):
            ids, mask = input_ids[start:start + size], attention_mask[start:start + size]
            cut = min(trailing_padding(mask), logits_to_keep - 1)  # at least one completion column stays
            width = ids.size(1) - cut
            ran += width * ids.size(0)
            # TRL returns (log-probs, entropies, aux loss); Axolotl's async trainer (log-probs, entropies)
            out = original(model, ids[:, :width], mask[:, :width], logits_to_keep - cut, batch_size=None, **kwargs)
            logps, entropies = out[0], out[1]
            if cut:
                logps, entropies = F.pad(logps, (0, cut)), None if entropies is None else F.pad(entropies, (0, cut))
            chunks.append((logps, entropies, *out[2:]))
        metrics = getattr(self, "_metrics", None)
        if metrics is not None and input_ids.numel():
            metrics["train" if model.training else "eval"][METRIC].append(1 - ran / input_ids.numel())
        logps = torch.cat([chunk[0] for chunk in chunks], dim=0)
        entropies = None if chunks[0][1] is None else torch.cat([chunk[1] for chunk in chunks], dim=0)
        if len(chunks[0]) == 2:
            return logps, entropies
        aux = [chunk[2] for chunk in chunks if chunk[2] is not None]
        return logps, entropies, torch.stack(aux).mean() if aux else None

    per_token_logps.trims_padding = True
    return per_token_logps
