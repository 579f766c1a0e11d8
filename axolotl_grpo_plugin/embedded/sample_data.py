"""The bundled GSM8K-style sample shipped in ``axolotl_grpo_plugin/data``.

The files are generated, never edited: tests regenerate them from the
constants here and compare, so the committed copies cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..system.safe_files import write_atomic
from .problems import DEMO_TEMPLATES, generate_problems


DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TRAIN_FILE = "gsm8k_sample.jsonl"
TEST_FILE = "gsm8k_sample_test.jsonl"
TRAIN_ROWS, TRAIN_SEED = 512, 0
TEST_ROWS, TEST_SEED = 128, 1
# The embedded demo's task: two-step problems on single digits a tiny model can learn (DEMO_TEMPLATES).
DEMO_TRAIN_FILE = "demo_train.jsonl"
DEMO_TEST_FILE = "demo_test.jsonl"
DEMO_TRAIN_ROWS, DEMO_TRAIN_SEED = 1024, 2
DEMO_TEST_ROWS, DEMO_TEST_SEED = 256, 3


def sample_splits() -> tuple[list[dict], list[dict]]:
    """Train and held-out rows; the held-out questions never appear in train."""
    train = generate_problems(TRAIN_ROWS, TRAIN_SEED)
    test = generate_problems(TEST_ROWS, TEST_SEED, exclude=(row["question"] for row in train))
    return train, test


def demo_splits() -> tuple[list[dict], list[dict]]:
    """The demo's GRPO prompts and its held-out problems (disjoint questions)."""
    train = generate_problems(DEMO_TRAIN_ROWS, DEMO_TRAIN_SEED, templates=DEMO_TEMPLATES)
    test = generate_problems(DEMO_TEST_ROWS, DEMO_TEST_SEED, exclude=(row["question"] for row in train),
                             templates=DEMO_TEMPLATES)
    return train, test


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_sample_data(out_dir: str | Path = DATA_DIR) -> list[Path]:
    """(Re)write the sample and demo jsonl files into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = sample_splits()
    demo_train, demo_test = demo_splits()
    written = []
    for name, rows in ((TRAIN_FILE, train), (TEST_FILE, test),
                       (DEMO_TRAIN_FILE, demo_train), (DEMO_TEST_FILE, demo_test)):
        path = out / name
        written.append(write_atomic(path, to_jsonl(rows)))
    return written
