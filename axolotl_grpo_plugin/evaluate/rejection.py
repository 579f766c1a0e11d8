"""R1's rejection-sampling round: SFT rows from a model's own replies that are in format.

After the cold start a small model still loops under greedy decoding on some prompts, while
some of its sampled replies to the same prompts end in format. Fine-tuning it on one in-format
reply per prompt (a correct one first, else a sampled one before the greedy one) teaches it
the replies it can finish. DeepSeek-R1 kept only correct samples; a 135M model is rarely
correct, so the format decides and correctness only ranks (docs/real-model.md).

    axolotl-grpo evaluate CONFIG --model SFT_DIR --split train --limit 512 --samples 4 \\
        --keep-replies rs.jsonl          # then SFT on rs.jsonl (type: chat_template)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import PluginError
from ..system.safe_files import write_atomic


def kept_replies(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `{"messages": [...prompt, assistant reply]}` row per problem that has an in-format
    reply, from `evaluate`'s records (the greedy record carries the prompt's messages)."""
    prompts: dict[int, list] = {}
    replies: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("kind") == "greedy" and record.get("messages") is not None:
            if not isinstance(record["messages"], list):
                raise PluginError(
                    f"--keep-replies: problem {record['problem']}'s prompt is plain text "
                    f"({str(record['messages'])[:60]!r}...), not chat turns, so its reply cannot "
                    "become a chat SFT row. Fix: a dataset transform whose `prompt` is a list of "
                    "{role, content} messages (as the GSM8K transforms return)")
            prompts[record["problem"]] = record["messages"]
        if record.get("strict_format"):
            replies.setdefault(record["problem"], []).append(record)
    rows = []
    for problem, candidates in replies.items():
        if problem not in prompts:
            continue
        best = min(candidates, key=lambda r: (not r.get("correct"), r.get("kind") == "greedy"))
        rows.append({"messages": [*prompts[problem], {"role": "assistant", "content": best["completion"]}],
                     "correct": bool(best.get("correct"))})
    return rows


def write_replies(records: Iterable[dict[str, Any]], path: str | Path) -> tuple[Path, int, int]:
    """`kept_replies` as jsonl at `path` (written whole or not at all): the path, rows, correct rows."""
    rows = kept_replies(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path, len(rows), sum(row["correct"] for row in rows)
