"""The bundled GSM8K-style sample shipped in ``axolotl_grpo_plugin/data``.

The files are generated, never edited: tests regenerate them from the
constants here and compare, so the committed copies cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from .problems import generate_problems

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TRAIN_FILE = "gsm8k_sample.jsonl"
TEST_FILE = "gsm8k_sample_test.jsonl"
TRAIN_ROWS, TRAIN_SEED = 512, 0
TEST_ROWS, TEST_SEED = 128, 1


def sample_splits() -> tuple[list[dict], list[dict]]:
    """Train and held-out rows; the held-out questions never appear in train."""
    train = generate_problems(TRAIN_ROWS, TRAIN_SEED)
    test = generate_problems(TEST_ROWS, TEST_SEED, exclude=(row["question"] for row in train))
    return train, test


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_sample_data(out_dir: str | Path = DATA_DIR) -> list[Path]:
    """(Re)write both jsonl files into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = sample_splits()
    written = []
    for name, rows in ((TRAIN_FILE, train), (TEST_FILE, test)):
        path = out / name
        path.write_text(to_jsonl(rows), encoding="utf-8")
        written.append(path)
    return written
