"""Pre-train the embedded tiny model into an *imperfect* base, as R1-zero runs start from.

A random model never writes a tag, so GRPO sees all-zero rewards and learns
nothing. A real base model sometimes follows the requested format and often
gets the answer wrong; this module reproduces that at toy scale in about a
minute on 2 CPU cores: a plain causal-LM loop over generated chat-formatted
(prompt, response) pairs on the demo's easy problems, where

* only a quarter of the responses use ``<reasoning>…</reasoning><answer>…</answer>``
  (the rest are plain-text solutions, most opening with the same phrase, or
  half-tagged ones), and
* the final answer is sometimes deliberately wrong (an intermediate result or a
  mistyped digit), on top of the arithmetic the tiny model gets wrong by itself,

so both format and accuracy leave GRPO room. Only strict responses write one
step per line; the others run their steps together on one line. That keeps the
layout decision local (a tiny model cannot carry "I opened with <reasoning>"
across 30 tokens after a minute of training): whether the base answers in the
format is decided by its first token. Greedy decoding starts with the common
plain opening, sampling opens with ``<reasoning>`` about a quarter of the time,
and that share is what GRPO shifts. Prompts are rendered exactly as the
``gsm8k`` transform + the tokenizer's chat template render them, so the base
sees the real prompt distribution. The demo's GRPO prompts and held-out
problems are never used.
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

from .builder import DEFAULT_OUT, EMBEDDED_VERSION, STAMP_FILE, BuildResult, write_atomically
from .problems import EASY_TEMPLATES, final_answer, generate_problems
from .sample_data import DATA_DIR, DEMO_TEST_FILE, DEMO_TRAIN_FILE


BASE_DIR_NAME = "tiny-qwen2-base"
# Bump when the corpus, model shape or training recipe changes: cached bases are rebuilt.
BASE_VERSION = 4

_ANNOTATION = re.compile(r"<<[^>]*>>")
_RESULT = re.compile(r"= ([\d,]+)")


@dataclass(frozen=True)
class PretrainSettings:
    """The recipe. Defaults: a base that never answers in the strict format greedily but
    samples it about a quarter of the time, built in about a minute on one CPU core."""

    examples: int = 9600
    steps: int = 300
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
    wrong_answer_share: float = 0.20  # final answer is an intermediate result or a typo

    def stamp(self) -> dict:
        return dict(self.__dict__)


def _steps_and_answer(row: dict) -> tuple[list[str], str]:
    steps = _ANNOTATION.sub("", row["answer"].rsplit("####", 1)[0].strip()).split("\n")
    return steps, final_answer(row)


def _noisy_answer(steps: list[str], answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: an earlier step's result, or one digit mistyped."""
    earlier = [m.replace(",", "") for step in steps[:-1] for m in _RESULT.findall(step)]
    if earlier and rng.random() < 0.6:
        return rng.choice(earlier)
    digits = list(answer)
    position = rng.randrange(len(digits))
    digits[position] = rng.choice([d for d in "0123456789" if d != digits[position]])
    wrong = "".join(digits).lstrip("0") or "0"
    return wrong if wrong != answer else str(int(answer) + 1)


PLAIN_OPENING = "Let's think step by step."


def _plain(steps: list[str], answer: str, rng: random.Random) -> str:
    """Chatty plain text; most open with the same phrase, as real bases have a favourite
    opening, so greedy decoding starts plain and the format is GRPO's to teach."""
    ending = rng.choice(["The answer is {}.", "So the answer is {}.", "Answer: {}"])
    opening = PLAIN_OPENING + " " if rng.random() < 0.7 else ""
    return opening + " ".join(steps) + " " + ending.format(answer)


def _broken(steps: list[str], answer: str, rng: random.Random) -> str:
    """Tags used, but not in the requested layout."""
    body = " ".join(steps)
    variants = [
        f"{body}\n<answer>\n{answer}\n</answer>\n",
        f"{body}\n</reasoning>\n<answer>\n{answer}\n</answer>\n",
        f"{body} The answer is <answer>{answer}</answer>.",
    ]
    return rng.choice(variants)


def _strict(steps: list[str], answer: str, rng: random.Random) -> str:
    return f"<reasoning>\n{chr(10).join(steps)}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


def response_for(row: dict, rng: random.Random, settings: PretrainSettings) -> str:
    """One imperfect response to ``row``: its layout and answer correctness are drawn at random."""
    steps, answer = _steps_and_answer(row)
    if rng.random() < settings.wrong_answer_share:
        answer = _noisy_answer(steps, answer, rng)
    draw = rng.random()
    style: Callable[[list[str], str, random.Random], str]
    if draw < settings.strict_share:
        style = _strict
    elif draw < settings.strict_share + settings.broken_share:
        style = _broken
    else:
        style = _plain
    return style(steps, answer, rng)


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
                             templates=EASY_TEMPLATES)
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
    """Endless shuffled batches as (input_ids, labels) tensors; prompt and padding masked."""
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
            loss = model(input_ids=input_ids, labels=labels).loss  # right padding: causal mask suffices
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

    return tqdm(total=total, desc="pre-training base", unit="step", disable=not enabled)


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
    start = time.perf_counter()
    model_dir = Path(out) / BASE_DIR_NAME
    if not force and is_base_built(model_dir, seed, settings):
        return BuildResult(model_dir, cached=True, seconds=time.perf_counter() - start)

    def write(staging: Path) -> dict:
        stats = write_base(staging, seed, settings, progress=progress)
        (staging / STAMP_FILE).write_text(json.dumps(_base_stamp(seed, settings) | stats, indent=2) + "\n")
        return stats

    stats = write_atomically(model_dir, write)
    return BuildResult(model_dir, False, time.perf_counter() - start, None, stats["parameters"])
