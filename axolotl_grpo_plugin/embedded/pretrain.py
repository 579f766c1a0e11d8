"""Pre-train the embedded tiny model into an *imperfect* base, as R1-zero runs start from.

A random model never writes a tag, so GRPO sees all-zero rewards and learns
nothing. A real base model sometimes follows the requested format and often
gets the answer wrong; this module reproduces that at toy scale in about two
minutes on one CPU core: a plain causal-LM loop over generated chat-formatted
(prompt, response) pairs on the demo's two-step problems, where

* only a quarter of the responses use ``<reasoning>…</reasoning><answer>…</answer>``
  (the rest are plain text opening with "Let's think step by step.", or
  half-tagged), so the layout is GRPO's to teach; and
* a little over half of the solutions stop one step short: they write the first
  step and report its result as the answer ("The boxes hold 3*4 = 12 apples. The
  answer is 12."), the careless-solver mistake of answering before the reasoning
  is finished. The other solutions write both steps and are right.

Every response writes out at least one step, so every example teaches the model
to copy the question's numbers and do single-digit arithmetic; that is what makes
the base able to finish a problem when it does not stop. Greedy decoding follows
the majority and stops short (any-layout accuracy near zero), while sampling
finishes the problem a quarter of the time or more, and gets many of those right:
pass@k far above pass@1, which is the gap GRPO's correctness reward closes.
Only strict responses write one step per line; the others run their steps
together on one line. Prompts are rendered exactly as the ``gsm8k`` transform +
the tokenizer's chat template render them, so the base sees the real prompt
distribution. The demo's GRPO prompts and held-out problems are never used.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .builder import DEFAULT_OUT, EMBEDDED_VERSION, STAMP_FILE, VARIANTS, BuildResult, build_once
from .problems import DEMO_TEMPLATES, final_answer, generate_problems
from .sample_data import DATA_DIR, DEMO_TEST_FILE, DEMO_TRAIN_FILE


BASE_DIR_NAME = "tiny-qwen2-base"
# Bump when the corpus, model shape or training recipe changes: cached bases are rebuilt.
BASE_VERSION = 5

_ANNOTATION = re.compile(r"<<[^>]*>>")
_RESULT = re.compile(r"= ([\d,]+)")


@dataclass(frozen=True)
class PretrainSettings:
    """The recipe. Defaults: a base that never answers in the strict format greedily and
    stops one step short greedily, but samples both the format and a finished solution,
    built in about two minutes on one CPU core."""

    examples: int = 16000
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    hidden_size: int = 96
    layers: int = 3
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 192
    strict_share: float = 0.25  # responses in the exact R1 format
    broken_share: float = 0.20  # tags present but misplaced / unclosed
    stop_short_share: float = 0.55  # solutions that answer with the first step's result

    def stamp(self) -> dict:
        return dict(self.__dict__)


PLAIN_OPENING = "Let's think step by step."


def _steps_and_answer(row: dict) -> tuple[list[str], str]:
    steps = _ANNOTATION.sub("", row["answer"].rsplit("####", 1)[0].strip()).split("\n")
    return steps, final_answer(row)


def stop_short(steps: list[str]) -> tuple[list[str], str]:
    """The first step alone and its result: a solution that answers one step too early."""
    return steps[:1], _RESULT.findall(steps[0])[-1].replace(",", "")


def _plain(steps: list[str], answer: str) -> str:
    """Plain text opening with the same phrase, as real bases have a favourite opening, so
    greedy decoding starts plain and the format is GRPO's to teach."""
    return f"{PLAIN_OPENING} {' '.join(steps)} The answer is {answer}."


def _broken(steps: list[str], answer: str) -> str:
    """Tags used, but not in the requested layout."""
    return f"{_plain(steps, answer)}\n<answer>\n{answer}\n</answer>\n"


def _strict(steps: list[str], answer: str) -> str:
    return f"<reasoning>\n{chr(10).join(steps)}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


def response_for(row: dict, rng: random.Random, settings: PretrainSettings) -> str:
    """One imperfect response to ``row``: its layout and whether it stops short are drawn at random."""
    steps, answer = _steps_and_answer(row)
    if len(steps) > 1 and rng.random() < settings.stop_short_share:
        steps, answer = stop_short(steps)
    draw = rng.random()
    style: Callable[[list[str], str], str]
    if draw < settings.strict_share:
        style = _strict
    elif draw < settings.strict_share + settings.broken_share:
        style = _broken
    else:
        style = _plain
    return style(steps, answer)


def _questions(path: Path) -> set[str]:
    with path.open(encoding="utf-8") as handle:
        return {json.loads(line)["question"] for line in handle if line.strip()}


def unseen_questions() -> set[str]:
    """The demo's GRPO prompts and held-out problems: never in the pre-training corpus."""
    return _questions(DATA_DIR / DEMO_TRAIN_FILE) | _questions(DATA_DIR / DEMO_TEST_FILE)


def corpus(settings: PretrainSettings, seed: int) -> list[tuple[list[dict], str]]:
    """(chat prompt, response) pairs; prompts exactly as the ``gsm8k`` transform builds them."""
    from ..transforms.gsm8k import build_prompt

    rng = random.Random(seed)
    rows = generate_problems(settings.examples, seed=10_000 + seed, exclude=unseen_questions(),
                             templates=DEMO_TEMPLATES)
    return [(build_prompt(row["question"]), response_for(row, rng, settings)) for row in rows]


def _encode(tokenizer, pairs: list[tuple[list[dict], str]]) -> list[tuple[list[int], int]]:
    """Token ids of prompt+response+eos, and where the response starts (loss only after it)."""
    encoded = []
    for messages, response in pairs:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        encoded.append((prompt_ids + response_ids + [tokenizer.eos_token_id], len(prompt_ids)))
    return encoded


def _batches(encoded, batch_size: int, pad_id: int, rng: random.Random):
    """Endless shuffled batches as (input_ids, labels) tensors; prompt and padding masked.

    Not sorted by length: batches of like lengths cut padding (20% faster steps) but hold
    like problems (a length is nearly a template and whether it stops short), and a base
    trained on them copied only 47% of the question's numbers right against 99%."""
    import torch

    order = list(range(len(encoded)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            chunk = [encoded[i] for i in order[start:start + batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            for row, (ids, response_start) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, response_start: len(ids)] = torch.tensor(ids[response_start:])
            yield input_ids, labels


def response_loss(model, input_ids, labels):
    """The causal-LM loss of ``model(input_ids, labels=labels)``, with the output layer applied
    only where a label is: the prompt is two thirds of every example and needs no logits."""
    import torch.nn.functional as F

    hidden = model.model(input_ids=input_ids).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    scored = targets != -100
    return F.cross_entropy(model.lm_head(hidden[scored]), targets[scored])


def pretrain(model, tokenizer, settings: PretrainSettings, seed: int, progress: bool = True) -> list[float]:
    """Train ``model`` in place on the imperfect corpus; returns the per-step losses."""
    import torch

    encoded = _encode(tokenizer, corpus(settings, seed))
    batches = _batches(encoded, settings.batch_size, tokenizer.pad_token_id, random.Random(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        done = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    losses: list[float] = []
    model.train()
    bar = _progress(settings.steps, progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(settings.steps):
            input_ids, labels = next(batches)
            loss = response_loss(model, input_ids, labels)  # right padding: causal mask suffices
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            bar.update()
    bar.close()
    model.eval()
    return losses


@contextmanager
def one_thread():
    """Run torch single-threaded: at this model size the matrices are so small that a
    second thread costs more in synchronisation than it saves (measured 5x slower per
    step on a busy 2-core machine)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    from ..system.quiet import terminal

    return tqdm(total=total, desc="pre-training base", unit="step", disable=not enabled, file=terminal())


def write_base(target: Path, seed: int, settings: PretrainSettings, progress: bool = True) -> dict:
    """Build tokenizer + tiny model, pre-train it and save both into ``target``; return stats."""

    from .model import build_tiny_model
    from .tokenizer import build_tokenizer

    start = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_tiny_model(
        tokenizer, target, seed=seed, hidden_size=settings.hidden_size, layers=settings.layers,
        heads=settings.heads, kv_heads=settings.kv_heads, intermediate_size=settings.intermediate_size,
    )
    with one_thread():
        losses = pretrain(model, tokenizer, settings, seed, progress=progress)
    model.save_pretrained(str(target))
    tail = losses[-20:]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": round(sum(tail) / len(tail), 4),
        "train_seconds": round(time.perf_counter() - start, 1),
    }


def _base_stamp(seed: int, settings: PretrainSettings) -> dict:
    return {"seed": seed, "base_version": BASE_VERSION, "embedded_version": EMBEDDED_VERSION,
            "settings": settings.stamp()}


def is_base_built(model_dir: Path, seed: int, settings: PretrainSettings = PretrainSettings()) -> bool:
    """True when ``model_dir`` holds a finished base for this seed, recipe and code version."""
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    return {key: stamp.get(key) for key in _base_stamp(seed, settings)} == _base_stamp(seed, settings)


def made_by(path: str) -> str | None:
    """The command that writes a folder named like one of the embedded models (a config's
    `base_model: .cache/embedded/tiny-qwen2` in a fresh checkout), for a missing folder's fix."""
    name = Path(path).name
    commands = {dir_name: "axolotl-grpo embedded build" + ("" if variant == "default" else f" --variant {variant}")
                for variant, (dir_name, _) in VARIANTS.items()}
    return (commands | {BASE_DIR_NAME: "axolotl-grpo demo"}).get(name)


def build_base(
    out: str | Path = DEFAULT_OUT,
    seed: int = 0,
    force: bool = False,
    settings: PretrainSettings = PretrainSettings(),
    progress: bool = True,
) -> BuildResult:
    """Ensure ``out/tiny-qwen2-base`` holds the pre-trained imperfect base for ``seed``.

    Cached like :func:`build`: a stamp (seed, recipe, versions) written last makes
    repeat calls return at once; the directory is built elsewhere and renamed in.
    """
    model_dir = Path(out) / BASE_DIR_NAME

    def write(staging: Path) -> tuple[None, int]:
        stats = write_base(staging, seed, settings, progress=progress)
        (staging / STAMP_FILE).write_text(json.dumps(_base_stamp(seed, settings) | stats, indent=2) + "\n")
        return None, stats["parameters"]

    return build_once(model_dir, lambda: is_base_built(model_dir, seed, settings), write, force)
