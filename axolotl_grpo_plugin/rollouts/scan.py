"""The audit's families recognised in a run's rollout log: completions GRPO reinforced (positive
advantage, or a reward above the step's mean when the log has no advantage) that look
degenerate, step by step, so a run that started to hack its reward shows when.

Signs, each linear in the completion's length:
- repetition: the text compresses to under REPETITION_RATIO of its size (zlib), or one line
  of 10+ characters makes up half of it;
- numbers spam: the answer block (or, without one, the completion) lists NUMBERS_SPAM or more
  numbers;
- several answers: more than one answer block, with different contents;
- tags repeated: a reasoning or answer tag appears 3 or more times;
- prompt copied: half or more of the completion's 8-word shingles are in its prompt;
- at the length cap: the completion's token length reached max_completion_length (counted
  only with another sign: a run with much truncation is the doctor's `truncation`, not a hack).

Used by `axolotl-grpo audit --rollouts OUTPUT_DIR`, the HTML report and the run doctor.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from axolotl_grpo_rewards.gsm8k import extract_answer


REPETITION_RATIO = 0.12
MIN_REPETITION_CHARS = 200
NUMBERS_SPAM = 8
SHINGLE = 8
SUSPECT_SHARE = 0.25   # share of a step's reinforced completions that look degenerate
SUSPECT_MIN = 2        # ... and at least this many of them
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_TAG = re.compile(r"</?(?:answer|reasoning|think)>")
SIGNS = ("repetition", "numbers spam", "several answers", "tags repeated", "prompt copied", "at the length cap")


def signs(completion: str, prompt: str = "", length: float | None = None, cap: int | None = None) -> list[str]:
    """The degenerate signs one completion shows (empty list: none)."""
    if not isinstance(completion, str):
        return []
    found = []
    if _repetitive(completion):
        found.append("repetition")
    answer = extract_answer(completion) if "<answer>" in completion else completion
    if len(_NUMBER.findall(answer)) >= NUMBERS_SPAM:
        found.append("numbers spam")
    blocks = completion.split("<answer>")[1:]
    if len({b.split("</answer>")[0].strip() for b in blocks}) > 1:
        found.append("several answers")
    counts = Counter(_TAG.findall(completion))
    if any(n >= 3 for n in counts.values()):
        found.append("tags repeated")
    if isinstance(prompt, str) and prompt and _copied(completion, prompt):
        found.append("prompt copied")
    if cap and length is not None and length >= cap:
        found.append("at the length cap")
    return found


def looks_degenerate(found: list[str]) -> bool:
    """Any sign but the length cap alone."""
    return any(sign != "at the length cap" for sign in found)


def _repetitive(text: str) -> bool:
    if len(text) < MIN_REPETITION_CHARS:
        return False
    data = text.encode("utf-8", "replace")
    if len(zlib.compress(data, 6)) < REPETITION_RATIO * len(data):
        return True
    lines = [line.strip() for line in text.splitlines() if len(line.strip()) >= 10]
    if not lines:
        return False
    line, count = Counter(lines).most_common(1)[0]
    return count >= 3 and count * len(line) >= 0.5 * len(text)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _copied(completion: str, prompt: str) -> bool:
    mine = _shingles(completion)
    return len(mine) >= 3 and len(mine & _shingles(prompt)) >= 0.5 * len(mine)


@dataclass
class StepFinding:
    """One training step: how many completions GRPO reinforced, how many of them look degenerate."""

    step: int
    reinforced: int = 0
    degenerate: int = 0
    signs: Counter = field(default_factory=Counter)
    example: str | None = None
    example_reward: float | None = None

    @property
    def share(self) -> float:
        return self.degenerate / self.reinforced if self.reinforced else 0.0

    @property
    def suspected(self) -> bool:
        return self.degenerate >= SUSPECT_MIN and self.share >= SUSPECT_SHARE

    def message(self) -> str:
        top = ", ".join(f"{name} ({n})" for name, n in self.signs.most_common(3))
        example = (self.example or "").replace("\n", "\\n")
        example = example if len(example) <= 160 else example[:160] + "..."
        return (f"reward hacking suspected at step {self.step}: {self.degenerate} of the {self.reinforced} "
                f"completions GRPO reinforced look degenerate ({top}); e.g. reward "
                f"{_fmt(self.example_reward)}: {example!r}. Fix: `axolotl-grpo audit CONFIG` names the reward "
                "that pays them and how to close it")

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "reinforced": self.reinforced, "degenerate": self.degenerate,
                "share": round(self.share, 4), "signs": dict(self.signs), "suspected": self.suspected,
                "example": self.example, "example_reward": self.example_reward}


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class Scanner:
    """Reads rollout records one at a time (the report's single pass) and keeps per step only the
    counts, one example and the lengths of the degenerate ones. Records without an advantage
    (older logs) are kept per step until the step's mean reward is known."""

    def __init__(self, cap: int | None = None):
        self.cap = cap
        self.steps: dict[int, StepFinding] = {}
        self.lengths: Counter = Counter()
        self._degenerate_lengths: dict[int, list[float]] = defaultdict(list)
        self._unjudged: dict[int, list[tuple[dict, float | None]]] = defaultdict(list)

    def add(self, record: Any) -> None:
        if not isinstance(record, dict) or (record.get("mode") or "train") != "train":
            return
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or not isinstance(record.get("completion"), str):
            return
        finding = self.steps.setdefault(step, StepFinding(step))
        length = _number(record.get("length"))
        if length is not None:
            self.lengths[int(length)] += 1
        advantage = _number(record.get("advantage"))
        if advantage is None:
            self._unjudged[step].append((record, _number(record.get("reward"))))
        elif advantage > 0:
            self._judge(finding, record, _number(record.get("reward")))

    def _judge(self, finding: StepFinding, record: dict, reward: float | None) -> None:
        finding.reinforced += 1
        found = signs(record["completion"], record.get("prompt") or "")
        if not looks_degenerate(found):
            return
        finding.degenerate += 1
        finding.signs.update(found)
        length = _number(record.get("length"))
        if length is not None:
            self._degenerate_lengths[finding.step].append(length)
        if finding.example is None or (reward or 0) > (finding.example_reward or 0):
            finding.example, finding.example_reward = record["completion"], reward

    def findings(self) -> list[StepFinding]:
        """Per training step, in order; `at the length cap` counted with the config's cap, or the
        longest length logged when 1 % or more of the completions pile up exactly there."""
        for step, rows in self._unjudged.items():
            known = [r for _, r in rows if r is not None]
            mean = sum(known) / len(known) if known else 0.0
            for record, reward in rows:
                if reward is not None and reward > mean:
                    self._judge(self.steps[step], record, reward)
        self._unjudged.clear()
        cap = self.cap if self.cap is not None else inferred_cap(self.lengths)
        for step, lengths in self._degenerate_lengths.items():
            at_cap = sum(1 for n in lengths if cap and n >= cap)
            if at_cap:
                self.steps[step].signs["at the length cap"] = at_cap
        self._degenerate_lengths.clear()
        return [self.steps[s] for s in sorted(self.steps)]


def scan(records: Iterable[dict], cap: int | None = None) -> list[StepFinding]:
    """Per training step, the reinforced completions that look degenerate (see Scanner)."""
    scanner = Scanner(cap)
    for record in records:
        scanner.add(record)
    return scanner.findings()


def inferred_cap(lengths: Counter) -> int | None:
    """The longest length logged, when 1 % or more of the completions (2 at least) stop exactly there."""
    if not lengths:
        return None
    top = max(lengths)
    return top if lengths[top] >= max(2, 0.01 * sum(lengths.values())) else None


def first_suspected(findings: list[StepFinding]) -> StepFinding | None:
    return next((f for f in findings if f.suspected), None)


def step_share(completions: list[str], prompts: list[str], lengths: list[Any], advantages: list[Any],
               cap: int | None) -> float:
    """One generation batch: the share of completions with positive advantage that look degenerate
    (the run doctor's `observe/degenerate_reinforced`); NaN when none was reinforced."""
    reinforced = degenerate = 0
    for text, prompt, length, advantage in zip(completions, prompts, lengths, advantages):
        value = _number(advantage)
        if value is None or value <= 0:
            continue
        reinforced += 1
        degenerate += looks_degenerate(signs(text, prompt if isinstance(prompt, str) else "", _number(length), cap))
    return degenerate / reinforced if reinforced else math.nan
