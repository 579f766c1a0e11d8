"""Greedy held-out evaluation scored with the very reward functions GRPO trained on.

Before/after numbers only mean something if "format" and "correct" are judged
exactly as during training, so the scorer loads the rewards by the same short
names from the plugin's registry that the demo config lists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rewards.gsm8k import is_strict_format

from ..embedded.pretrain import one_thread
from ..embedded.sample_data import DATA_DIR, DEMO_TEST_FILE
from ..registry import REWARDS
from ..transforms.gsm8k import transform_row

HELDOUT_FILE = DATA_DIR / DEMO_TEST_FILE
REWARD_NAMES = ("correctness", "int", "strict_format", "soft_format", "xmlcount")
MAX_NEW_TOKENS = 64  # = max_completion_length of configs/demo.yaml (a test keeps them equal)
_NUMBER = re.compile(r"\d+")


def reward_functions(names=REWARD_NAMES) -> dict:
    """name -> the registered function (the same objects `axolotl train` calls)."""
    return {name: REWARDS.load(name) for name in names}


@dataclass(frozen=True)
class Scores:
    """Held-out summary: shares in [0, 1] and the mean of the summed rewards.

    ``accuracy`` is the training reward's verdict (the answer must sit in ``<answer>``);
    ``any_layout_accuracy`` takes the last number of the text in whatever layout, so
    a reader can tell format gains from arithmetic gains.
    """

    problems: int
    format_compliance: float
    accuracy: float
    mean_total_reward: float
    any_layout_accuracy: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def load_heldout(path: str | Path = HELDOUT_FILE) -> list[dict]:
    """Rows as the ``gsm8k`` transform makes them: chat prompt + normalised answer."""
    with Path(path).open(encoding="utf-8") as handle:
        return [transform_row(json.loads(line)) for line in handle if line.strip()]


def last_number(text: str) -> str | None:
    """The last integer written in ``text`` (thousands separators ignored)."""
    numbers = _NUMBER.findall(text.replace(",", ""))
    return (numbers[-1].lstrip("0") or "0") if numbers else None


def score(completions: list[str], answers: list[str]) -> Scores:
    """Format share, accuracy (correctness reward > 0), mean total reward, any-layout accuracy."""
    funcs = reward_functions()
    per_func = {name: fn(completions=completions, answer=answers) for name, fn in funcs.items()}
    totals = [sum(values) for values in zip(*per_func.values())]
    n = max(1, len(completions))
    return Scores(
        problems=len(completions),
        format_compliance=sum(is_strict_format(text) for text in completions) / n,
        accuracy=sum(value > 0 for value in per_func["correctness"]) / n,
        mean_total_reward=sum(totals) / n,
        any_layout_accuracy=sum(last_number(text) == answer for text, answer in zip(completions, answers)) / n,
    )


def generate(model_dir: str | Path, rows: list[dict], device: str = "cpu", batch_size: int = 64,
             max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Greedy completions for the rows' prompts, decoded like TRL does (no special tokens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
    prompts = [tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
               for row in rows]
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


def evaluate(model_dir: str | Path, path: str | Path = HELDOUT_FILE, device: str = "cpu") -> tuple[Scores, list[str]]:
    """Greedy-decode every held-out problem with ``model_dir`` and score it."""
    rows = load_heldout(path)
    with one_thread():
        completions = generate(model_dir, rows, device=device)
    return score(completions, [row["answer"] for row in rows]), completions
