"""The audit's text output: one table, then what each hackable reward lets through and the fix."""

from __future__ import annotations

from pathlib import Path

from ..errors import counted
from ..rollouts.scan import SUSPECT_MIN, SUSPECT_SHARE, StepFinding, first_suspected
from .core import AuditResult, Verdict
from .families import WRONG_INTEGER


TASKS = {"number": "GSM8K-style number", "countdown": "countdown equation", "math": "MATH \\boxed{}"}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _share(verdict: Verdict) -> str:
    return "-" if verdict.ratio is None else f"{verdict.ratio:.0%}"


def _label(verdict: Verdict) -> str:
    if verdict.unscored:
        return "not judged"
    if verdict.hackable:
        return "HACKABLE"
    return "checks answer" if verdict.answer_sensitive else "answer-blind"


def summary(result: AuditResult) -> str:
    tasks = ", ".join(f"{n} {TASKS.get(t, t)}" for t, n in result.tasks.items())
    rows = [("reward", "correct", "best degenerate", "share", "family", "pays reasoning", "pays length", "verdict")]
    for v in [*result.rewards, result.total]:
        rows.append((v.name if v.weight in (None, 1.0) else f"{v.name} (x{v.weight:g})", _num(v.correct),
                     _num(v.max_degenerate), _share(v), v.family or "-", _num(v.pays_for_reasoning),
                     _num(v.pays_for_length), _label(v)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
    lines = [f"Reward audit of {result.config}: {result.prompts} training prompts ({tasks}), "
             f"{result.wall_s:.1f} s", "", table, ""]
    for v in [*result.rewards, result.total]:
        lines.append(f"{v.name}: {v.why}")
        if v.evidence is not None:
            text = v.evidence.completion.replace("\n", "\\n")
            lines.append(f"    e.g. {text[:200]!r}" + ("..." if len(text) > 200 else ""))
            lines.append(f"    fix: {v.fix}")
        if v is result.total and not v.hackable and v.family == WRONG_INTEGER and v.ratio:
            lines.append(f"    a completion in the format with a wrong integer earns {v.ratio:.0%} of the correct "
                         "score from the format rewards alone: by design, they pay the layout whatever the "
                         "answer (docs/rewards.md)")
        for issue in v.issues:
            lines.append(f"    issue: {issue}")
    hackable = result.hackable + (["total"] if result.total.hackable else [])
    lines.append("")
    lines.append(f"HACKABLE: {', '.join(hackable)}." if hackable else
                 "Nothing hackable: no completion without the gold answer scores as much as the correct one, "
                 "and nothing scores more.")
    return "\n".join(lines)


def rollouts_summary(output_dir: Path, findings: list[StepFinding]) -> str:
    if not findings:
        return f"{output_dir}: the rollout log holds no training step."
    reinforced = sum(f.reinforced for f in findings)
    degenerate = sum(f.degenerate for f in findings)
    looks = f"{degenerate} of them look degenerate" if degenerate else "none of them looks degenerate"
    lines = [f"Rollout audit of {output_dir}: {counted(len(findings), 'training step')}, "
             f"{counted(reinforced, 'reinforced completion')}, {looks}.", ""]
    shown = [f for f in findings if f.degenerate or f.suspected]
    if shown:  # the steps with something to show; none: no empty table
        lines.append("  step  reinforced  degenerate  share  signs")
        for f in shown:
            signs = ", ".join(f"{k} {n}" for k, n in f.signs.most_common())
            lines.append(f"  {f.step:>4}  {f.reinforced:>10}  {f.degenerate:>10}  {f.share:>5.0%}  {signs}"
                         + ("  <- suspected" if f.suspected else ""))
        lines.append("")
    first = first_suspected(findings)
    lines.append(first.message() if first else
                 f"No step suspected (a step is when {SUSPECT_MIN}+ and {SUSPECT_SHARE:.0%}+ of the completions "
                 "GRPO reinforced look degenerate).")
    return "\n".join(lines)
