"""No registered reward can raise, hang, miscount or execute model text.

Property tests run every registered reward, as Axolotl loads it (through the
registry's containment wrapper), on adversarial completions: random unicode,
0 to 1 MB, nested, repeated and unbalanced tags, None and non-string content,
chat and plain shapes.
"""

from __future__ import annotations

import logging
import math
import pickle
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axolotl_grpo_plugin.registry import BUILTIN_REWARDS, REWARDS, bound_name
from axolotl_grpo_plugin.registry.containment import INLINE, PROCESS, ContainedReward
from axolotl_grpo_rewards import countdown
from axolotl_grpo_rewards.errors import RewardConfigError, RewardContractError


# Each built-in reward's range; a new built-in must add its own here.
RANGES = {
    "correctness": (0.0, 2.0),
    "int": (0.0, 0.5),
    "strict_format": (0.0, 0.5),
    "soft_format": (0.0, 0.25),
    "xmlcount": (-0.5, 0.501),  # a text ending right at </answer> gets 0.501 (docs/rewards.md)
    "countdown": (0.0, 1.0),
    "math_boxed": (0.0, 1.0),
    "by_data_source": (0.0, 2.0),
    "soft_overlong": (-1.0, 0.0),  # built from lengths: checked bound to LENGTHS
    "code_pass_rate": (0.0, 1.0),
    "code_all_pass": (0.0, 1.0),
}
LENGTHS = (64, 16)  # max_completion_length, overlong_cache for the rewards built from them
SOURCES = ["gsm8k", "countdown", "math"]
TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", "\\boxed{", "}", "{", "$", "**", "(", ")",
        "```python\n", "```", "assert ", "def f():\n    return 1\n"]
MB = 1 << 20

# -- strategies -----------------------------------------------------------------

pieces = st.one_of(
    st.text(max_size=40),
    st.sampled_from(TAGS),
    st.from_regex(r"[0-9+\-*/() =.,$]{1,20}", fullmatch=True),
)


@st.composite
def texts(draw) -> str:
    """Short random text, or a piece repeated up to 1 MB (nested/repeated/unbalanced tags)."""
    parts = draw(st.lists(pieces, max_size=12))
    text = "".join(parts)
    if text and draw(st.integers(0, 9)) == 0:
        text = (text * (MB // len(text) + 1))[: draw(st.integers(0, MB))]
    if draw(st.booleans()):
        depth = draw(st.integers(0, 50))
        text = "<answer>" * depth + text + "</answer>" * draw(st.integers(0, depth))
    return text


contents = st.one_of(texts(), st.none(), st.integers(), st.lists(st.text(max_size=5), max_size=2))
messages = st.fixed_dictionaries({"role": st.sampled_from(["assistant", "user", None]), "content": contents})
completions = st.one_of(
    texts(),
    st.lists(messages, max_size=3),
    messages,
    st.none(),
    st.integers(),
)
gold = st.one_of(st.none(), st.integers(-10**6, 10**6), st.text(max_size=30), texts(), st.floats())


code_tests = st.one_of(st.none(), st.just(["assert f() == 1"]), st.text(max_size=20), st.lists(st.text(max_size=10), max_size=2),
                       st.just('[{"input": "", "output": "1"}]'), st.integers())


@st.composite
def batches(draw, size: int = 4, exact: bool = False) -> dict:
    n = size if exact else draw(st.integers(0, size))
    return {
        "prompts": [[{"role": "user", "content": "q"}]] * n,
        "completions": draw(st.lists(completions, min_size=n, max_size=n)),
        "answer": draw(st.lists(gold, min_size=n, max_size=n)),
        "numbers": draw(st.lists(st.one_of(st.none(), st.lists(st.integers(-5, 10**7), max_size=9)),
                                 min_size=n, max_size=n)),
        "target": draw(st.lists(st.one_of(st.none(), st.integers(-10, 10**7), st.text(max_size=4)),
                                min_size=n, max_size=n)),
        "data_source": draw(st.lists(st.sampled_from(SOURCES), min_size=n, max_size=n)),
        "completion_ids": draw(st.lists(st.lists(st.integers(0, 9), max_size=100), min_size=n, max_size=n)),
        "tests": draw(st.lists(code_tests, min_size=n, max_size=n)),
    }


def check_all_rewards(batch: dict) -> None:
    n = len(batch["completions"])
    for name in REWARDS.names():
        built = name in BUILTIN_REWARDS and BUILTIN_REWARDS[name].lengths
        reward = REWARDS.load(bound_name(name, *LENGTHS) if built else name)
        errors, timeouts = reward.errors, reward.timeouts
        values = reward(**batch)
        assert len(values) == n, name
        low, high = RANGES[name]
        for value in values:
            assert value is None or (math.isfinite(value) and low <= value <= high), (name, value)
        if reward.isolation == INLINE:  # linear by construction: must never need a budget
            assert reward.timeouts == timeouts, f"{name} ran over its budget"
        # An isolated reward (math_boxed) may time out on hostile LaTeX: it is then killed
        # at its budget, scored 0 and counted (test_time_budget_works_in_a_worker_thread).
        assert reward.errors == errors, f"{name} raised on model output (contained, but a bug)"


def test_every_registered_reward_has_a_declared_range():
    assert set(REWARDS.names()) <= set(RANGES)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_rewards_are_total_bounded_and_in_range(batch):
    check_all_rewards(batch)


@pytest.mark.slow
@settings(max_examples=3200, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches(size=32, exact=True))
def test_rewards_on_100k_generated_completions(batch):
    """3,200 batches of 32: 102,400 generated completions, each scored by every registered reward."""
    check_all_rewards(batch)


def test_one_megabyte_completions_of_every_shape():
    big = "<reasoning>\n" + "<answer>1</answer>\n" * (MB // 18) + "\n</reasoning>\n<answer>\n7\n</answer>\n"
    batch = {
        "completions": [big, [{"role": "assistant", "content": big}], "(" * MB, "\\boxed{" * (MB // 7)],
        "answer": ["7", "7", "7", "7"],
        "numbers": [[1, 2]] * 4, "target": [3] * 4, "data_source": ["gsm8k", "countdown", "math", "gsm8k"],
        "completion_ids": [[1] * MB, [], [2] * 60, [3]],
        "tests": [["assert f() == 1"]] * 4,
    }
    check_all_rewards(batch)
    assert REWARDS.load("correctness")(**batch)[:2] == [2.0, 2.0]


# -- containment ------------------------------------------------------------------


def raises_on_boom(completions, **kwargs):
    if any(c == "boom" for c in completions):
        raise ValueError("boom")
    return [1.0 for _ in completions]


def returns_too_few(completions, **kwargs):
    return [1.0]


def returns_junk(completions, **kwargs):
    return ["1.0", float("inf"), float("nan"), True]


def hangs_on_hang(completions, **kwargs):
    """A reward that never returns for the completion "hang" (busy loop, so no signal would help)."""
    if completions == ["hang"]:
        while True:
            pass
    return [0.5 for _ in completions]


def contained(fn, isolation=INLINE, **budgets) -> ContainedReward:
    target = f"{fn.__module__}:{fn.__name__}"
    return ContainedReward(fn, fn.__name__, target, isolation, **budgets)


def warm(reward: ContainedReward, **columns) -> list:
    """Start the reward's worker under a generous call budget, so that a loaded machine's slow worker
    start is never charged to the tight budget a test then measures."""
    tight, reward.call_budget_s = reward.call_budget_s, 120.0
    try:
        return reward(**columns)
    finally:
        reward.call_budget_s = tight


def test_an_exception_scores_only_its_sample_is_logged_once_and_counted(caplog):
    reward = contained(raises_on_boom)
    metrics = []
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin.rewards"):
        values = reward(completions=["a", "boom", "b"], log_metric=lambda k, v: metrics.append((k, v)))
        reward(completions=["boom"])
    assert values == [1.0, 0.0, 1.0]
    assert reward.errors == 2
    sample_logs = [r.getMessage() for r in caplog.records if "on sample" in r.getMessage()]
    assert len(sample_logs) == 1 and "sample 1" in sample_logs[0]
    assert ("rewards/raises_on_boom/errors", 1.0) in metrics


def test_wrong_number_of_values_is_an_error_naming_the_function():
    with pytest.raises(RewardContractError, match="returns_too_few.*returned 1 values for 3 completions"):
        contained(returns_too_few)(completions=["a", "b", "c"])


def test_values_that_are_not_finite_numbers_are_contained():
    reward = contained(returns_junk)
    assert reward(completions=["a", "b", "c", "d"]) == [0.0, 0.0, None, 1.0]
    assert reward.errors == 2


def test_keeps_the_name_trl_uses_and_pickles_by_registered_name():
    reward = REWARDS.load("correctness")
    assert reward.__name__ == "correctness_reward_func"
    assert pickle.loads(pickle.dumps(reward)) is reward
    assert "completions" in __import__("inspect").signature(reward).parameters


def test_time_budget_works_in_a_worker_thread():
    """Busy loop in a reward, called off the main thread: signal.alarm could not stop it."""
    reward = contained(hangs_on_hang, PROCESS, sample_budget_s=1.0, call_budget_s=30.0)
    result = {}

    def score():
        result["values"] = reward(completions=["a", "hang", "b"])

    worker = threading.Thread(target=score)
    worker.start()
    worker.join(timeout=60)
    reward.close()
    assert not worker.is_alive()
    assert result["values"] == [0.5, 0.0, 0.5]
    assert reward.timeouts == 1


def test_samples_the_spent_call_budget_left_unscored_score_none():
    """Hanging samples that spend the call budget cost the samples after them their score, not
    their correctness: those were never scored, so None (TRL's "no score"), where they scored 0.0."""
    reward = contained(hangs_on_hang, PROCESS, sample_budget_s=0.3, call_budget_s=1.0)
    try:
        assert warm(reward, completions=["warm"]) == [0.5]  # the first worker's start is not charged below
        values = reward(completions=["hang"] * 5 + ["a", "b"])
    finally:
        reward.close()
    assert values[0] == 0.0  # over its own 0.3 s: a timeout, scored as wrong
    assert values[-2:] == [None, None]  # never reached before the 1 s call budget ran out
    assert set(values) <= {0.0, None}
    assert (reward.timeouts, reward.errors) == (7, 0)  # a worker start cut short by the budget is no error


def test_a_sample_the_call_deadline_cuts_short_of_its_own_budget_is_unscored():
    reward = contained(hangs_on_hang, PROCESS, sample_budget_s=30.0, call_budget_s=0.5)
    try:
        assert warm(reward, completions=["warm"]) == [0.5]
        values = reward(completions=["hang", "a"])  # "hang" had 0.5 s of its 30: not a timeout of its own
    finally:
        reward.close()
    assert values == [None, None]
    assert reward.timeouts == 2


def test_math_verify_blow_up_is_stopped_in_a_worker_thread():
    """What math_boxed's screen lets through still costs at most its sample budget: (x+y)^{499} is just
    under its expansion bound (500 terms) and verify takes 2.4 s on it (math-verify alone, 2-core CI
    machine). The tower and the 60th power of a multinomial, once timeouts too, are screened."""
    reward = ContainedReward(REWARDS.load_unwrapped("math_boxed"), "math_boxed",
                             REWARDS.targets["math_boxed"], PROCESS, sample_budget_s=1.0)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        v=reward(completions=["\\boxed{(x+y)^{499}}", "\\boxed{9^{9^{9^{9^{9}}}}}",
                              "\\boxed{\\frac{10}{12}}"],
                 answer=["5", "5", "\\frac{5}{6}"])))
    worker.start()
    worker.join(timeout=120)
    reward.close()
    assert result["v"] == [0.0, 0.0, 1.0]
    assert reward.timeouts == 1


def test_answers_too_large_to_compute_cost_no_timeouts_and_spare_the_good_samples():
    """The fuzz run's batch: 28 `9**9**9` before 4 right answers took the whole 60 s call budget (each
    hang its 2 s budget plus a worker restart) and scored all 32 0.0. Screened, they cost nothing."""
    reward = ContainedReward(REWARDS.load_unwrapped("math_boxed"), "math_boxed",
                             REWARDS.targets["math_boxed"], PROCESS, sample_budget_s=1.0, call_budget_s=6.0)
    try:
        assert warm(reward, completions=["\\boxed{72}"], answer=["72"]) == [1.0]  # sympy's import is not charged
        values = reward(completions=["The answer is 9**9**9"] * 28 + ["\\boxed{72}"] * 4, answer=["72"] * 32)
    finally:
        reward.close()
    assert values == [0.0] * 28 + [1.0] * 4
    assert (reward.timeouts, reward.errors) == (0, 0)


def test_a_config_error_is_not_contained():
    with pytest.raises(RewardConfigError, match="data_source='wikipedia'.*Known data sources: .*countdown"):
        REWARDS.load("by_data_source")(completions=["x"], data_source=["wikipedia"])


def test_reasoning_prefill_column_is_consumed_once():
    strict = REWARDS.load("strict_format")
    body = "2 + 2\n</reasoning>\n<answer>\n4\n</answer>\n"
    assert strict(completions=[body]) == [0.0]
    assert strict(completions=[body, [{"role": "assistant", "content": body}]],
                  reasoning_prefill=["<reasoning>\n"] * 2) == [0.5, 0.5]
    routed = REWARDS.load("by_data_source")
    assert routed(completions=["<answer>4</answer>"], data_source=["gsm8k"], answer=["4"],
                  reasoning_prefill=["<reasoning>\n"]) == [2.0]


# -- tasks ----------------------------------------------------------------------------

MALICIOUS = [
    "__import__('os').system('touch /tmp/pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: 1)()",
    "1 + 2 + 3 if True else 0",
    "9**9**9**9",
    "2 ** 100000",
    "1" * 10_000,
    "(" * 100_000 + "1" + ")" * 100_000,
    "(1 + 2) * 3; import os",
    "open('/etc/passwd').read()",
    "1+2+3+4+5+6+7+8+9+10",
    "10**1000 / 1",
    "(1 - 1) / (2 - 2) + 3",
    "[1, 2, 3]",
    "exec('x=1')",
]


def test_countdown_refuses_malicious_payloads_and_executes_nothing(monkeypatch):
    events = []
    hook = lambda event, args: events.append(event) if event in ("exec", "import", "os.system", "open") else None  # noqa: E731
    sys.addaudithook(hook)
    monkeypatch.setattr("builtins.eval", lambda *a, **k: pytest.fail("eval called"))
    reward = REWARDS.load("countdown")
    completions = [f"<answer>{p}</answer>" for p in MALICIOUS]
    before = len(events)
    values = reward(completions=completions, numbers=[[1, 2, 3]] * len(MALICIOUS), target=[6] * len(MALICIOUS))
    assert values == [0.0] * len(MALICIOUS)
    assert events[before:] == []
    assert reward.errors == 0


def test_countdown_parser_never_sees_oversized_text(monkeypatch):
    monkeypatch.setattr(countdown.ast, "parse", lambda *a, **k: pytest.fail("parsed"))
    assert countdown.parse_equation("1+" * countdown.MAX_EQUATION_CHARS) is None


@pytest.mark.parametrize(
    ("answer", "numbers", "target", "expected"),
    [
        ("(1 + 2) * 3", [1, 2, 3], 9, 1.0),
        ("3 * (2 + 1) = 9", [3, 1, 2], 9, 1.0),
        ("6 / (1 - 1/2)", [6, 1, 1, 2], 12, 1.0),
        ("(1 + 2) * 3", [1, 2, 3, 4], 9, 0.0),  # a number unused
        ("(1 + 1) * 3", [1, 2, 3], 6, 0.0),  # a number used twice
        ("3 / (2 - 2) + 1", [1, 2, 2, 3], 4, 0.0),  # division by zero
        ("-1 + 4", [1, 4], 3, 0.0),  # unary minus is a new operation
    ],
)
def test_countdown_scoring(answer, numbers, target, expected):
    assert countdown.countdown_reward_func([f"<answer>{answer}</answer>"], [numbers], [target]) == [expected]


def test_generated_countdown_problems_are_solvable_and_the_bundle_is_current(tmp_path):
    from axolotl_grpo_plugin.embedded.countdown import DATA_FILE, generate_countdown, write_sample

    rows = generate_countdown(200, seed=7)
    assert all(countdown.solves(r["solution"], r["numbers"], r["target"]) for r in rows)
    assert write_sample(tmp_path / "c.jsonl").read_text() == DATA_FILE.read_text()


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("<answer>\\boxed{\\frac{10}{12}}</answer>", "\\frac{5}{6}", 1.0),
        ("so \\boxed{0.5}", "1/2", 1.0),
        ("\\boxed{3}", "4", 0.0),
        ("\\boxed{3}", "", None),
        ("\\boxed{3}", "$$", None),
        ("\\boxed{3}", "\\boxed{}", None),
    ],
)
def test_math_boxed(completion, gold, expected):
    from axolotl_grpo_rewards.math_boxed import math_boxed_reward_func

    assert math_boxed_reward_func([completion], [gold]) == [expected]


def test_bundled_math_sample_is_current_and_its_solutions_score_one(tmp_path):
    from axolotl_grpo_plugin.embedded.math_problems import DATA_FILE, generate_math, write_sample
    from axolotl_grpo_plugin.transforms.math_boxed import transform_row
    from axolotl_grpo_rewards.math_boxed import math_boxed_reward_func

    assert write_sample(tmp_path / "m.jsonl").read_text() == DATA_FILE.read_text()
    rows = generate_math(12, seed=5)
    golds = [transform_row(r)["answer"] for r in rows]
    assert math_boxed_reward_func([r["solution"] for r in rows], golds) == [1.0] * 12
    assert math_boxed_reward_func([r["solution"] for r in rows[1:]] + [rows[0]["solution"]], golds).count(1.0) < 12


def test_transforms_write_data_source_and_prefill_when_asked():
    from axolotl_grpo_plugin.transforms import countdown as cd_transform
    from axolotl_grpo_plugin.transforms import math_boxed as math_transform

    cfg = {"grpo_plugin": {"prefilled_reasoning_tag": True}}
    row_fn, _ = cd_transform.load(cfg)
    row = row_fn({"nums": [1, 2, 3], "target": 6})
    assert (row["numbers"], row["target"], row["data_source"]) == ([1, 2, 3], 6, "countdown")
    assert row["reasoning_prefill"] == "<reasoning>\n"
    row_fn, _ = math_transform.load({})
    row = row_fn({"problem": "1/2+1/3?", "solution": "so \\boxed{\\frac{5}{6}}."})
    assert (row["answer"], row["data_source"]) == ("\\frac{5}{6}", "math")
    assert "reasoning_prefill" not in row
    with pytest.raises(math_transform.MathRowError, match="expected `problem`"):
        row_fn({"question": "x"})


# -- routing through axolotl train ------------------------------------------------------


@pytest.mark.integration
def test_mixed_dataset_trains_with_one_routed_reward(tmp_path, repo_root, embedded_model_dir):
    import yaml
    from conftest import run_axolotl_train

    data = repo_root / "axolotl_grpo_plugin" / "data"
    files = {}  # 4 rows per source: 12 prompts, all seen in 4 steps of 3 prompts
    for name, source in (("gsm8k", "gsm8k_sample.jsonl"), ("countdown", "countdown_sample.jsonl"),
                         ("math", "math_sample.jsonl")):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join((data / source).read_text().splitlines(keepends=True)[:4]))
    config = yaml.safe_load((repo_root / "configs" / "mixed_smoke.yaml").read_text())
    config.update(
        base_model=str(embedded_model_dir),
        datasets=[{"path": str(files[t]), "type": t} for t in ("gsm8k", "countdown", "math")],
        output_dir=str(tmp_path / "out"),
        micro_batch_size=12,
        max_steps=4,
    )
    assert config["trl"]["reward_funcs"][0] == "by_data_source"
    config["grpo_plugin"] = {"prefilled_reasoning_tag": True}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(config))

    proc, steps = run_axolotl_train(path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(steps) == 4
    keys = set().union(*steps)
    assert "rewards/by_data_source/mean" in keys
    for task_reward in ("correctness_reward_func", "countdown_reward_func", "math_boxed_reward_func"):
        assert f"rewards/{task_reward}/errors" in keys, task_reward  # every source was routed
    assert all(v == 0 for s in steps for k, v in s.items() if k.endswith(("/errors", "/timeouts")))
