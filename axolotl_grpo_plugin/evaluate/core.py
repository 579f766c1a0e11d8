"""`evaluate()`: one checkpoint on held-out prompts, scored with the training rewards.

Greedy decoding gives accuracy, format compliance, mean length and the reward
means; `samples` sampled completions per problem give pass@k. "Correct" means
the correctness reward (see `scoring.correctness_reward`) is above zero. Beside it,
any-layout accuracy: the greedy answer's final number wherever it is written (a
model not yet in the R1 layout is often right in its own), where the rows have a
numeric `answer`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..sampling.generation import Generator, SamplingSettings
from ..sampling.prompts import EvalError, Problem, named
from ..sampling.sampler import Sampler, SampleRequest
from ..sampling.tool_loop import Rollout, tool_stats
from . import passk


@dataclass
class EvalResult:
    """Summary numbers, per-problem scores (for paired comparisons) and every sample."""

    model: str
    split: str
    n_problems: int
    samples: int
    seed: int
    backend: str
    max_new_tokens: int
    temperature: float
    correct_reward: str
    accuracy: float
    pass_at_k: dict[str, float]
    format_compliance: float
    mean_length: float
    reward_means: dict[str, float]
    reward_mean: float
    per_problem: dict[str, list[float]] = field(default_factory=dict, repr=False)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    tools: dict[str, float] = field(default_factory=dict)  # greedy answers' tool use, with grpo_plugin.tools
    # the greedy answer's final number (\boxed{}, <answer> or last number) is the numeric gold;
    # an answer cut at max_new_tokens never counts; NaN when no row has a numeric answer
    any_layout_accuracy: float = float("nan")

    def summary(self) -> dict[str, Any]:
        """Everything but the per-sample records (what the JSON summary holds)."""
        out = asdict(self)
        out.pop("records")
        return out

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """Flat scalar metrics named like TRL's (`rewards/NAME/mean`), `prefix` prepended."""
        flat = {
            "accuracy": self.accuracy,
            "format_compliance": self.format_compliance,
            **({} if math.isnan(self.any_layout_accuracy) else {"any_layout_accuracy": self.any_layout_accuracy}),
            "mean_length": self.mean_length,
            "reward": self.reward_mean,
            **self.pass_at_k,
            **{f"rewards/{k}/mean": v for k, v in self.reward_means.items()},
            **{f"tools/{k}": v for k, v in self.tools.items()},
        }
        return {f"{prefix}{k}": v for k, v in flat.items()}


def evaluate(
    config: Any,
    model: Any,
    *,
    samples: int = 1,
    max_new_tokens: int | None = None,
    problems: list[Problem] | None = None,
    generator: Generator | None = None,
    **request: Any,
) -> EvalResult:
    """Evaluate `model` (a directory, Hub id or loaded model) on the config's `split`.

    `samples` sampled completions per problem (at the config's `trl.temperature`)
    give pass@k for k = 1, 2, 4, ... up to `samples`; 0 skips sampling. `problems`
    (from `Sampler.problems`) skips reading the split again: the periodic
    evaluation builds its fixed slice once and scores it every N steps. `generator` replaces
    the one `backend` would build (the periodic evaluation passes the trainer's vLLM engine).
    `request`: the other fields of sampling/sampler.SampleRequest (split, dataset, limit, seed,
    backend, device, batch_size, correct_reward, tokenizer, progress; `flags`: errors name the
    CLI's flags, `--correct-reward`, as the user typed them).
    """
    flags = request.get("flags", False)
    if samples < 0:
        raise EvalError(f"{named('samples', flags)} = {samples}: must be 0 (greedy only) or more")
    sampler = Sampler(SampleRequest(config, model, tokenizer_fix=(
        "pass --model DIR with a tokenizer (tokenizer.json or vocab+merges) in it, or set "
        "`tokenizer_config:` in the config to one" if flags else None), **request)).prepare()
    label = model if isinstance(model, (str, Path)) else getattr(
        getattr(model, "config", None), "_name_or_path", type(model).__name__)
    if problems is None:
        problems = sampler.problems()
    base = SamplingSettings.of(sampler.run, seed=sampler.request.seed,
                               **({"max_new_tokens": int(max_new_tokens)} if max_new_tokens else {}))
    greedy, sampled = replace(base, temperature=0.0, n=1), replace(base, n=samples)
    out = sampler.generate(problems, [greedy, sampled], generator=generator,
                           desc=f"evaluating {Path(str(label)).name}")
    greedy_out = [group[0] for group in out.completions[0]]
    result = _summarise(sampler, str(label), out.backend, greedy, sampled, problems, greedy_out, out.completions[1])
    if out.rollouts[0] is not None:  # with the run's tools: the greedy answers' calls
        greedy_calls = [group[0].calls for group in out.rollouts[0]]
        result.tools = tool_stats([[Rollout([], [], calls)] for calls in greedy_calls])
        greedy_records = [r for r in result.records if r["kind"] == "greedy"]
        for record, calls in zip(greedy_records, greedy_calls, strict=True):
            record["tool_calls"] = calls
    return result


def _summarise(sampler: Sampler, label: str, backend: str, greedy: SamplingSettings, sampled: SamplingSettings,
               problems: list[Problem], greedy_out, sampled_out) -> EvalResult:
    from axolotl_grpo_rewards.gsm8k import is_strict_format

    records: list[dict[str, Any]] = []
    per = {"accuracy": [], "format_compliance": [], "any_layout": [], "length": []}
    ks = passk.report_ks(sampled.n)
    per.update({f"pass@{k}": [] for k in ks})
    greedy_rewards: dict[str, list[float]] = {r.name: [] for r in sampler.rewards}
    totals: list[float] = []
    for problem, first, group in zip(problems, greedy_out, sampled_out):
        texts = [first[0]] + [t for t, _ in group]
        token_ids = [first[1]] + [i for _, i in group]
        values, total = sampler.score(problem, texts, token_ids)
        correct = sampler.correct(values)
        for j, (text, ids) in enumerate(zip(texts, token_ids)):
            record = {
                "problem": problem.index,
                "kind": "greedy" if j == 0 else "sample",
                "sample": max(0, j - 1),
                **{k: v for k, v in problem.columns.items() if _jsonable(v)},
                "completion": text,
                "tokens": len(ids),
                "rewards": {name: vals[j] for name, vals in values.items()},
                "reward": total[j],
                "correct": correct[j],
                "strict_format": is_strict_format(text),
                "any_layout": _any_layout(problem, text, len(ids), greedy.max_new_tokens),
            }
            if "tests" in problem.columns:  # a code row: its program and each test's verdict
                record.update(code_report(text, problem.columns["tests"]))
            if j == 0:
                greedy_any_layout = record["any_layout"]
                record["prompt"] = problem.text
                if _jsonable(problem.messages):  # the chat, for rows built from these records
                    record["messages"] = problem.messages
            records.append(record)
        per["accuracy"].append(float(correct[0]))
        per["format_compliance"].append(float(is_strict_format(texts[0])))
        per["any_layout"].append(float("nan") if greedy_any_layout is None else float(greedy_any_layout))
        per["length"].append(float(len(token_ids[0])))
        for name in greedy_rewards:
            greedy_rewards[name].append(values[name][0])
        totals.append(total[0])
        n, c = len(group), sum(correct[1:])
        for k in ks:
            per[f"pass@{k}"].append(passk.pass_at_k(n, c, k))
    return EvalResult(
        model=label, split=sampler.request.split, n_problems=len(problems), samples=sampled.n,
        seed=sampler.request.seed, backend=backend, max_new_tokens=greedy.max_new_tokens,
        temperature=sampled.temperature, correct_reward=sampler.judge.name,
        accuracy=_mean(per["accuracy"]),
        pass_at_k={f"pass@{k}": _mean(per[f"pass@{k}"]) for k in ks},
        format_compliance=_mean(per["format_compliance"]),
        any_layout_accuracy=_mean(per["any_layout"]),
        mean_length=_mean(per["length"]),
        reward_means={name: _mean(v) for name, v in greedy_rewards.items()},
        reward_mean=_mean(totals),
        per_problem=per,
        records=records,
    )


def _any_layout(problem: Problem, text: str, tokens: int, max_new_tokens: int) -> bool | None:
    """Is the final number, wherever written, the row's numeric `answer`? None without one; an
    answer cut at the token limit has no final number (its last is mid-sentence)."""
    from axolotl_grpo_rewards.gsm8k import final_number, gold_number

    gold = gold_number(problem.columns.get("answer"))
    if gold is None:
        return None
    return tokens < max_new_tokens and final_number(text) == gold


def code_report(text: str, tests: Any) -> dict[str, Any]:
    """The program the code rewards ran for `text`, and each test's verdict (from their last scoring)."""
    from axolotl_grpo_rewards.code import recent_result

    program, result = recent_result(text, tests)
    if program is None:
        return {"program": None, "tests_run": []}
    if result is None:
        return {"program": program, "tests_run": None}
    return {"program": program,
            "tests_run": [{"passed": t.passed, "detail": t.detail, "seconds": t.seconds} for t in result.tests]}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


def env_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not launched)."""
    from ..system.launch import global_rank

    return global_rank()
