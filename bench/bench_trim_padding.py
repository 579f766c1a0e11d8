"""The trainer's forward and backward of GRPO steps with and without the padding trim
(axolotl_grpo_plugin/training/trim_padding.py), on the real completion lengths of a run.

    python bench/bench_trim_padding.py --model PATH/qwen2.5-coder-0.5b \
        --rollouts OUT/grpo-s0/rollouts.jsonl [--steps 8] [--from-step 1] [--micro-batch 2] [--bf16 auto]

Each step of the rollout log becomes what TRL hands its micro-batches: that step's completions at
their logged lengths, right-padded to the longest of them, behind prompts of their logged
lengths, left-padded; rows shuffled, split into micro-batches. Each micro-batch then runs TRL's own
`_get_per_token_logps_and_entropies` and a backward of the masked log-prob sum, once as TRL runs it
and once trimmed, alternating step by step in one process (the same machine state for both).
Token ids are random: the cost depends on the shapes alone (a prompt's length is its logged text
tokenized, without the chat template's special tokens). No optimizer step (the same for
both). Prints one JSON line per step and a summary; the ratio is the figure to quote.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from axolotl_grpo_plugin.training import cpu_bf16, trim_padding  # noqa: E402


class TrainerShell:
    """What TRL's log-prob method reads from its trainer, with that method (TRL's code)."""

    use_liger_kernel = False
    _entropy_bonus_enabled = False

    def __init__(self, model, temperature: float):
        from trl import GRPOTrainer

        self.temperature = temperature
        self.model_kwarg_keys = inspect.signature(model.forward).parameters.keys()
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        for name in (trim_padding.METHOD, "_full_logits_logps"):  # TRL 1.14 splits it in two
            if hasattr(GRPOTrainer, name):
                setattr(self, name, getattr(GRPOTrainer, name).__get__(self))


def steps_of(rollouts: Path, prompt_tokens, limit: int, first: int = 1) -> list[tuple[int, list[tuple[int, int]]]]:
    """(prompt length, completion length) of each training completion, step by step, from step
    `first` on."""
    by_step: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for line in rollouts.read_text().splitlines():
        record = json.loads(line)
        if record.get("mode") == "train" and "length" in record and "prompt" in record:
            by_step[record["step"]].append((prompt_tokens(record["prompt"]), int(record["length"])))
    return [(step, by_step[step]) for step in sorted(s for s in by_step if s >= first)[:limit]]


def generation_batch(rows: list[tuple[int, int]], vocab: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    prompt_width, completion_width = max(p for p, _ in rows), max(max(c for _, c in rows), 1)
    ids = torch.randint(1, vocab, (len(rows), prompt_width + completion_width), generator=generator)
    mask = torch.zeros_like(ids)
    for row, (prompt, completion) in enumerate(rows):
        mask[row, prompt_width - prompt:prompt_width + completion] = 1
    order = torch.randperm(len(rows), generator=generator)  # TRL shuffles before it splits
    return ids[order], mask[order], completion_width


def one_step(shell, model, ids, mask, completion_width: int, micro_batch: int, autocast: bool) -> float:
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    started = time.perf_counter()
    for start in range(0, ids.size(0), micro_batch):
        chunk_ids, chunk_mask = ids[start:start + micro_batch], mask[start:start + micro_batch]
        with context:
            logps, _, _ = shell._get_per_token_logps_and_entropies(
                model, chunk_ids, chunk_mask, completion_width, compute_entropy=True)
        (logps * chunk_mask[:, -completion_width:]).sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (transformers)")
    parser.add_argument("--rollouts", type=Path, required=True, help="a run's rollouts.jsonl (lengths per step)")
    parser.add_argument("--steps", type=int, default=8, help="how many of its steps (default 8)")
    parser.add_argument("--from-step", type=int, default=1, help="the first of them (default 1)")
    parser.add_argument("--micro-batch", type=int, default=2, help="micro_batch_size (default 2)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--bf16", choices=["auto", "true", "false"], default="auto",
                        help="bfloat16 autocast as grpo_plugin.cpu_bf16 (default auto: where the CPU has units)")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    model.train()
    setting = {"auto": "auto", "true": True, "false": False}[args.bf16]
    autocast = cpu_bf16.wanted(setting, cpu_bf16.bf16_units())
    if autocast:
        cpu_bf16.float32_output_layer(model)  # as the plugin runs it: logits in float32
    steps = steps_of(args.rollouts, lambda text: len(tokenizer(text).input_ids), args.steps, args.from_step)
    plain, trimmed = TrainerShell(model, args.temperature), TrainerShell(model, args.temperature)
    trim_padding.install(trimmed)
    totals = {"plain": 0.0, "trimmed": 0.0}
    for index, (step, rows) in enumerate(steps):
        ids, mask, width = generation_batch(rows, model.config.vocab_size, seed=index)
        order = (("plain", plain), ("trimmed", trimmed)) if index % 2 == 0 else (("trimmed", trimmed), ("plain", plain))
        shares = trimmed._metrics["train"][trim_padding.METRIC]
        before = len(shares)
        seconds = {name: one_step(shell, model, ids, mask, width, args.micro_batch, autocast) for name, shell in order}
        share = sum(shares[before:]) / max(1, len(shares) - before)  # micro-batches of equal rows: a plain mean
        for name in totals:
            totals[name] += seconds[name]
        lengths = [c for _, c in rows]
        print(json.dumps({"step": step, "completions": len(rows), "mean_length": round(sum(lengths) / len(lengths), 1),
                          "longest": max(lengths), "plain_s": round(seconds["plain"], 2),
                          "trimmed_s": round(seconds["trimmed"], 2),
                          "trimmed_share": round(share, 3)}), flush=True)
    print(json.dumps({"steps": len(steps), "bf16_autocast": autocast, "plain_s": round(totals["plain"], 3),
                      "trimmed_s": round(totals["trimmed"], 3),
                      "speedup": round(totals["plain"] / totals["trimmed"], 2) if totals["trimmed"] else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
