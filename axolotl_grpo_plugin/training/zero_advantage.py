"""Rows whose advantage is 0 skip the trainer's forward and backward.

Why: a group whose completions all score the same gives each of them advantage 0, and with
beta 0 every loss TRL has (grpo, bnpo, dr_grpo, dapo, luspo, cispo, sapo, vespo) is a multiple
of the advantage: such a row adds exactly nothing to the gradient, yet its forward and backward
cost as much as any other's. On a CPU those are most of a GRPO step, and half or more of the
groups have no spread (docs/benchmarks.md: 25-70 % of the Qwen 0.5B's groups of 8).

So TRL's `compute_loss` is wrapped, per micro-batch:

    every row 0    no forward, no backward; the loss is 0, as it would have been. When no
                   gradient exists yet in the accumulation window, the zero is tied to every
                   trainable parameter, so the backward leaves zero gradients as the skipped one
                   would have (AdamW steps a parameter with a zero gradient, not one with none).
    some rows 0    with a loss normalized by the whole batch's token count (dapo, TRL's default;
                   cispo; vespo), no per-micro-batch entropy quantile, Liger off and a text
                   batch: those rows are dropped and the others run. Otherwise all run.

Only where nothing else changes: beta 0 (a KL term is paid by every row), no entropy bonus, no
router loss, TRL's own loss (not a subclass's, nor one set on the trainer). Whole micro-batches
skipped leave the weights bit for bit as before; dropped rows can move the others' float rounding
(the matrix products run on fewer rows). TRL's per-micro-batch metrics (entropy, clip ratios) then
average over the rows that ran. Each step logs `METRIC`: the share of the step's rows skipped (on
more than one process, the main process's rows).

With more than one process, DeepSpeed or FSDP, every process must run a forward and a backward for
every micro-batch (the gradient collectives, ZeRO's and FSDP's gathers and DeepSpeed's count of
micro-steps wait for them, and TRL's loss gathers its metrics across processes): a skipped
micro-batch runs TRL's own loss on one token instead (its first row's last prompt token and first
completion token, advantage 0: a loss and gradients of exactly 0), so every process calls the same
collectives; TRL's entropy and clip-ratio metrics then count that token. A batch with images or
other keys TRL's text batch lacks is not skipped there. Dropping rows is exact there too: dapo's
normalizer is the whole batch's token count over all processes.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

from .batch_keys import LEFT_PADDED, PER_ROW, RECOUNTED, RIGHT_PADDED, unknown_keys


METRIC = "zero_advantage/skipped_share"
# losses normalized by the whole batch's completion tokens (`num_items_in_batch`): a row's share of
# the loss does not depend on which other rows share its micro-batch
BATCH_NORMALIZED = frozenset({"dapo", "cispo", "vespo"})


def why_not(trainer: Any) -> str | None:
    """Why skipping zero-advantage rows could change the training (None: it cannot)."""
    from trl import GRPOTrainer

    if getattr(trainer, "beta", 0.0) != 0.0:
        return f"trl.beta is {trainer.beta}: the KL term is paid by every row, whatever its advantage"
    if getattr(trainer, "_entropy_bonus_enabled", False):
        return "an entropy bonus (trl.entropy_coef) is paid by every row"
    if getattr(trainer, "aux_loss_enabled", False):
        return "the router's auxiliary loss is paid by every row"
    for name in ("compute_loss", "_compute_loss"):
        if getattr(type(trainer), name, None) is not getattr(GRPOTrainer, name):
            return f"{type(trainer).__name__} computes its loss its own way ({name})"
    return None


def rows_can_drop(trainer: Any) -> bool:
    """A zero-advantage row may leave a micro-batch that keeps others: the loss of each row is
    normalized by the whole batch, and nothing is computed across the micro-batch's rows."""
    return (getattr(trainer, "loss_type", None) in BATCH_NORMALIZED
            and getattr(trainer, "top_entropy_quantile", 1.0) >= 1.0
            and not getattr(trainer, "use_liger_kernel", False))


def install(trainer: Any) -> str | None:
    """Wraps the trainer's `compute_loss` (once) where skipping changes nothing; returns why
    not otherwise (None: installed)."""
    reason = why_not(trainer)
    if reason is not None:
        return reason
    original = trainer.compute_loss
    if not getattr(original, "skips_zero_advantage", False):
        trainer.compute_loss = MethodType(
            _skipping(original, rows_can_drop(trainer), collective(trainer.accelerator)), trainer)
    return None


def collective(accelerator: Any) -> str | None:
    """What needs every process to run a forward and a backward for every micro-batch (None: nothing)."""
    kind = str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()
    if "DEEPSPEED" in kind or "FSDP" in kind:
        return kind
    return f"{accelerator.num_processes} processes" if accelerator.num_processes != 1 else None


def zero_rows(advantages) -> Any:
    """A bool per row: every advantage of the row is 0 ((B,) or, for per-token advantages, (B, T))."""
    zero = advantages == 0
    return zero if zero.dim() == 1 else zero.flatten(1).all(dim=1)


def tied_zero(model, device) -> Any:
    """0, tied to every trainable parameter: its backward writes zero gradients."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad and p.numel()]
    if not params or params[0].grad is not None:  # a backward ran in this window already
        return torch.zeros((), device=device, requires_grad=True)
    return torch.stack([(p.reshape(-1)[:1].float() * 0).sum() for p in params]).sum()


def one_token_batch(inputs: dict) -> dict:
    """The micro-batch cut to its first row's last prompt token and first completion token (TRL
    pads prompts on the left, completions on the right); the whole batch's token count kept."""
    def cut(key, value):
        if key in LEFT_PADDED:
            return value[:1, -1:]
        if key in RIGHT_PADDED or (key in PER_ROW and value.dim() == 2):  # per-token advantages too
            return value[:1, :1]
        return value[:1] if key in PER_ROW else value

    return {key: cut(key, value) for key, value in inputs.items()}


def _skipping(original, drop_rows: bool, collectives: str | None = None):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        advantages = inputs.get("advantages") if isinstance(inputs, dict) else None
        # `_compute_loss` replaced on this trainer after the install: not TRL's own loss any more
        own_loss = "_compute_loss" in vars(self)
        if advantages is None or own_loss or return_outputs or not model.training or not advantages.numel():
            return original(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        zero = zero_rows(advantages)
        rows, skipped = zero.numel(), int(zero.sum())
        if 0 < skipped < rows and (not drop_rows or unknown_keys(inputs)):  # the rows stay together
            skipped = 0
        if skipped == rows and collectives and unknown_keys(inputs):  # images: no one-token cut
            skipped = 0
        metrics = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics["train"][METRIC].append(skipped / rows)
        if skipped == rows:
            if not collectives:
                return tied_zero(model, advantages.device)
            # TRL's loss on one token: every forward, backward and gather the other processes
            # wait for, and a loss of exactly 0
            inputs = one_token_batch(inputs)
        elif skipped:
            keep = ~zero
            inputs = {key: value[keep] if key != RECOUNTED and _per_row(value, rows) else value
                      for key, value in inputs.items()}
        return original(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    compute_loss.skips_zero_advantage = True
    return compute_loss


def _per_row(value, rows: int) -> bool:
    return getattr(value, "dim", None) is not None and value.dim() >= 1 and value.size(0) == rows
