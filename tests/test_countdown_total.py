"""The raw `countdown` reward is total (issue 15): whatever the dataset columns hold (inf,
NaN, huge integers, strings, nesting), it scores and never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards.countdown import countdown_reward_func, solves


RIGHT = "<answer>(25 - 5) * 3</answer>"
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**5000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["inf", "nan", "1e999", "9" * 5000, "\ud800", " 60 "]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=10)
# the shapes TRL passes (one list of numbers and one target per completion), and anything else
NUMERIC = st.one_of(st.integers(0, 100), st.floats(allow_nan=True, allow_infinity=True))
NUMBERS = st.one_of(st.lists(st.lists(NUMERIC, max_size=4), max_size=4),
                    st.lists(st.lists(SCALARS, max_size=4), max_size=4), VALUES)
TARGETS = st.one_of(st.lists(st.integers(0, 1000), max_size=4), st.lists(SCALARS, max_size=4), VALUES)
COMPLETIONS = st.one_of(st.text(max_size=60), st.sampled_from([RIGHT, "<answer>1/0</answer>"]),
                        st.lists(st.fixed_dictionaries({"role": st.just("assistant"),
                                                        "content": st.text(max_size=40)}), max_size=2),
                        VALUES)


def test_inf_and_nan_among_the_numbers_score_zero_instead_of_raising():
    for bad in (float("inf"), float("-inf"), float("nan")):
        assert countdown_reward_func([RIGHT], numbers=[[3, 5, bad]], target=[60]) == [0.0]
        assert countdown_reward_func([RIGHT], numbers=[[3, 5, 25]], target=[bad]) == [0.0]
    assert countdown_reward_func([RIGHT], numbers=[[3, 5, 25]], target=[60]) == [1.0]


@settings(max_examples=400, deadline=None)
@given(completions=st.lists(COMPLETIONS, max_size=4), numbers=NUMBERS, target=TARGETS,
       kwargs=st.dictionaries(st.sampled_from(["prompts", "answer", "x"]), VALUES, max_size=2))
def test_countdown_never_raises_and_scores_each_completion(completions, numbers, target, kwargs):
    scores = countdown_reward_func(completions, numbers=numbers, target=target, **kwargs)
    assert len(scores) == len(completions) and set(scores) <= {0.0, 1.0}


@settings(max_examples=400, deadline=None)
@given(expression=st.one_of(st.text(max_size=40), st.just("(25 - 5) * 3")),
       numbers=VALUES, target=VALUES)
def test_solves_is_a_plain_boolean_on_any_input(expression, numbers, target):
    assert solves(expression, numbers, target) in (True, False)
