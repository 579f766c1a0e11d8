"""A rejection round's SFT rows saved without the dataset's text, and rebuilt from it.

bench_real_model.py's third stage trains on rows a GRPO model wrote (OUT/rlK-rs.jsonl: the
prompt's chat turns plus the model's reply). Those rows repeat GSM8K's questions; the file kept
in this repository holds only what the model wrote, keyed by a hash of the question it answered,
and the rows are rebuilt from the user's own GSM8K train file and the GRPO config's transform:

    python bench/saved_rows.py OUT/rl-rs.jsonl --train-data PATH/gsm8k/train.jsonl \\
        --out bench/data/smollm2-gsm8k-rl1-replies.jsonl

    python bench/bench_real_model.py ... --train-data PATH/gsm8k/train.jsonl \\
        --rl-rows bench/data/smollm2-gsm8k-rl1-replies.jsonl --rl-rows-from 0 --rl-rounds 2

A replies row: {"question_sha1": first 16 hex digits of sha1(question), "reply": ..., "correct": ...}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def question_key(question: str) -> str:
    return hashlib.sha1(question.encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def is_replies_file(path: Path) -> bool:
    """A file of replies keyed by question (this module's), not of whole chat rows."""
    with path.open() as f:
        first = f.readline()
    return '"question_sha1"' in first and '"reply"' in first


def strip_to_replies(rows: list[dict], questions: list[str]) -> list[dict]:
    """Chat rows -> replies keyed by the train question their user turn ends with."""
    replies = []
    for n, row in enumerate(rows, 1):
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        match = [q for q in questions if user.endswith(q)]
        if not match:
            raise SystemExit(f"row {n}: its user turn ends with none of --train-data's questions "
                             f"({user[-80:]!r}): pass the GSM8K train file the rows were sampled from")
        question = max(match, key=len)
        replies.append({"question_sha1": question_key(question), "reply": row["messages"][-1]["content"],
                        "correct": bool(row.get("correct"))})
    return replies


def rebuild_rows(replies_path: Path, train_data: Path, grpo_config: Path, out: Path) -> Path:
    """`replies_path`'s replies as chat SFT rows at `out`: each question from `train_data`, turned
    into the prompt by `grpo_config`'s dataset transform (as the rejection round prompted it)."""
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.sampling.prompts import dataset_entries, load_config, load_rows, transform_rows
    from axolotl_grpo_plugin.system.safe_files import write_atomic

    replies = read_jsonl(replies_path)
    by_key = {question_key(row["question"]): row for row in read_jsonl(train_data)}
    missing = [r["question_sha1"] for r in replies if r["question_sha1"] not in by_key]
    if missing:
        raise SystemExit(f"{replies_path}: {len(missing)} of {len(replies)} replies answer questions that "
                         f"{train_data} does not hold (first: {missing[0]}): pass GSM8K's train split "
                         "(openai/gsm8k, main) as --train-data")
    cfg = load_config(grpo_config)
    with tempfile.TemporaryDirectory() as tmp:
        chosen = Path(tmp) / "questions.jsonl"
        chosen.write_text("".join(json.dumps(by_key[r["question_sha1"]]) + "\n" for r in replies))
        (spec,) = dataset_entries(read_run(cfg), "train", dataset=str(chosen))
        prompts = [row["prompt"] for row in transform_rows(cfg, spec, 0, load_rows(spec, "train"))]
    rows = [{"messages": [*prompt, {"role": "assistant", "content": r["reply"]}], "correct": r["correct"]}
            for prompt, r in zip(prompts, replies, strict=True)]
    write_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=Path, help="a rejection round's chat rows (OUT/rlK-rs.jsonl)")
    parser.add_argument("--train-data", type=Path, required=True, help="the GSM8K train jsonl they were sampled from")
    parser.add_argument("--out", type=Path, required=True, help="the replies file to write")
    args = parser.parse_args(argv)
    questions = [row["question"] for row in read_jsonl(args.train_data)]
    replies = strip_to_replies(read_jsonl(args.rows), questions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in replies))
    print(f"{len(replies)} replies ({sum(r['correct'] for r in replies)} correct) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
