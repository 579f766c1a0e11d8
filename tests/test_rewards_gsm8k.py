"""Behaviour of the GSM8K rewards, and where (and why) they deviate from the published example
(bench/reference.py, the Axolotl cookbook's semantics)."""

import math
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards import gsm8k
from axolotl_grpo_rewards.gsm8k import (
    REWARD_FUNCS,
    SYSTEM_PROMPT,
    correctness_reward_func,
    extract_answer,
    final_number,
    int_reward_func,
    soft_format_reward_func,
    strict_format_reward_func,
)
from axolotl_grpo_rewards.text import completion_text, normalize_number, parse_number


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import reference  # noqa: E402


RANGES = {  # documented in docs/rewards.md
    "correctness": {0.0, 2.0},
    "int": {0.0, 0.5},
    "strict_format": {0.0, 0.5},
    "soft_format": {0.0, 0.25},
    "xmlcount": (-0.5, 0.501),
}


def well_formed(reasoning: str, answer: str, ending: str = "\n") -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>{ending}"


def chat(text):
    return [{"role": "assistant", "content": text}]


def score(name, text, gold="72"):
    """One completion's reward under REWARD_FUNCS[name], as TRL would call it."""
    return REWARD_FUNCS[name](completions=[text], answer=[gold], prompts=["q"])[0]


PERFECT = well_formed("48 / 2 = 24 clips in May.", "72")


# --- text helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("plain", "plain"),
        (chat("hi"), "hi"),
        ([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}], "b"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}], "a"),
        ([{"role": "user", "content": "u"}, {"content": "last"}], "last"),
        ({"role": "assistant", "content": "single"}, "single"),
        (None, ""),
        (42, ""),
        (b"bytes", ""),
        ([], ""),
        ([None, 3, "str"], ""),
        (chat(None), ""),
        (chat(["not", "a", "string"]), ""),
        ([{"role": "assistant"}], ""),
        ({"no": "content"}, ""),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


@pytest.mark.parametrize(
    "text", ["1000", "1000.0", "$1,000", " 1000 ", "1,000.00", "**1000**", "1000.", "+1000", "$1000"]
)
def test_parse_number_equal_spellings_of_1000(text):
    assert parse_number(text) == 1000


@pytest.mark.parametrize(
    "text, expected",
    [("-3", Decimal(-3)), ("-$3", Decimal(-3)), ("$-3", Decimal(-3)), ("50%", Decimal(50)),
     ("0.5", Decimal("0.5")), (".5", Decimal("0.5")), ("18.5", Decimal("18.5")),
     ("1,234,567", Decimal(1234567))],
)
def test_parse_number_values(text, expected):
    assert parse_number(text) == expected


def test_parse_number_is_exact():
    assert parse_number("18") != parse_number("18.5")
    assert parse_number("12345678901234567890123") != parse_number("12345678901234567890124")


@pytest.mark.parametrize(
    "text",
    ["", "  ", "abc", "72 apples", "1,00", "10,0000", "1.2.3", "5..", ".", "-", "$", "1e3", "--3",
     "- 3", "½", "٣", "²", "nan", "inf", "1" * 101, None, 72, "**", "****"],
)
def test_parse_number_rejects(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [("1000", "1000"), ("$1,000.00", "1000"), ("-3", "-3"), ("0.50", "0.5"), ("-0", "0"),
     ("007", "7"), (".5", "0.5"), ("+4", "4"), ("x", None)],
)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


def test_number_parsing_refuses_long_input_quickly():
    start = time.perf_counter()
    for junk in ("9" * 1_000_000, "1," * 500_000, " " * 1_000_000 + "5"):
        assert parse_number(junk) is None or junk.strip() == "5"
    assert time.perf_counter() - start < 0.5


# --- extract_answer and correctness -------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (PERFECT, "72"),
        ("<answer>1</answer> then <answer> 2 </answer>", "2"),
        ("<answer>1</answer> <answer>\n3", "3"),
        ("no tags at all: 72", ""),
        ("<answer></answer>", ""),
    ],
)
def test_extract_answer_takes_last_block(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("written", ["1000", "1000.0", "$1,000", " 1000 ", "1,000.00", "**1000**"])
@pytest.mark.parametrize("gold", ["1000", "1,000", "#### 1000", "She pays 10*100 = 1000\n#### 1000", 1000, 1000.0])
def test_correctness_numeric_equality(written, gold):
    assert score("correctness", well_formed("r", written), gold) == 2.0


@pytest.mark.parametrize("written, gold", [("18", "18.5"), ("18.5", "18"), ("72", "27"), ("", "0"),
                                           ("seventy-two", "72"), ("72", None), ("72", "n/a")])
def test_correctness_rejects(written, gold):
    assert score("correctness", well_formed("r", written), gold) == 0.0


def test_correctness_last_answer_block_wins():
    first_right = "<answer>72</answer> wait, no: <answer>71</answer>"
    last_right = "<answer>71</answer> wait, no: <answer>72</answer>"
    assert correctness_reward_func(completions=[first_right, last_right], answer=["72", "72"]) == [0.0, 2.0]


def test_correctness_needs_an_answer_block():
    # The reference takes the whole text as the answer when there is no block.
    assert reference.correctness_reward_func(completions=[chat("72")], answer=["72"]) == [2.0]
    assert score("correctness", "72", "72") == 0.0
    assert score("correctness", "The answer is 72", "72") == 0.0


def test_correctness_numeric_equality_is_a_deviation():
    text = well_formed("r", "$1,000")
    assert reference.correctness_reward_func(completions=[chat(text)], answer=["1000"]) == [0.0]
    assert correctness_reward_func(completions=[text], answer=["1000"]) == [2.0]


def test_correctness_short_answer_column_scores_missing_gold_zero():
    completions = [PERFECT, PERFECT, PERFECT]
    assert correctness_reward_func(completions=completions, answer=["72"]) == [2.0, 0.0, 0.0]
    assert correctness_reward_func(completions=completions, answer=None) == [0.0, 0.0, 0.0]
    # no `answer` keyword at all (a dataset without the column): 0.0 each, as countdown and math_boxed
    assert correctness_reward_func(completions=completions) == [0.0, 0.0, 0.0]
    assert correctness_reward_func(completions=completions, prompts=["q"] * 3) == [0.0, 0.0, 0.0]
    # The reference's zip returns too few scores.
    assert len(reference.correctness_reward_func(completions=[chat(PERFECT)] * 3, answer=["72"])) == 1


def test_correctness_long_answer_column_gives_one_score_per_completion():
    assert correctness_reward_func(completions=[PERFECT], answer=["72", "1", "2"]) == [2.0]


# --- int ---------------------------------------------------------------------------


@pytest.mark.parametrize("written, expected", [("72", 0.5), ("-3", 0.5), ("0", 0.5), ("+3", 0.0),
                                               ("3.0", 0.0), ("1,000", 0.0), ("$5", 0.0), ("٣", 0.0),
                                               ("", 0.0), ("-", 0.0), ("72 apples", 0.0),
                                               ("²", 0.0), ("9" * 1000, 0.5)])
def test_int_reward(written, expected):
    assert score("int", well_formed("r", written)) == expected


def test_int_reward_negative_is_a_deviation():
    text = well_formed("r", "-3")
    assert reference.int_reward_func(completions=[chat(text)]) == [0.0]
    assert int_reward_func(completions=[text]) == [0.5]


# --- strict format ----------------------------------------------------------------------------

MULTI_LINE = well_formed("Step 1: 48 / 2 = 24.\nStep 2: 48 + 24 = 72.", "72")


@pytest.mark.parametrize(
    "text, expected",
    [
        (PERFECT, 0.5),
        (MULTI_LINE, 0.5),
        (well_formed("r", "72", ending=""), 0.5),
        (well_formed("r", "72", ending="\n\n"), 0.5),
        (well_formed("", "72"), 0.5),
        (well_formed("r", "72", ending="\nmore"), 0.0),
        (well_formed("r", "72", ending=" "), 0.5),
        (well_formed("r", "72", ending=" \n"), 0.5),
        (well_formed("r", "72", ending="  "), 0.0),
        (well_formed("r", "72", ending="\n\n\n"), 0.0),
        (" " + PERFECT, 0.0),
        ("<reasoning>r</reasoning>\n<answer>\n72\n</answer>\n", 0.0),
        ("<reasoning>\nr\n</reasoning>\n\n<answer>\n72\n</answer>\n", 0.0),
        (PERFECT + PERFECT, 0.0),
        (well_formed("I will use <answer> tags", "72"), 0.0),
        ("<reasoning>\n</reasoning>\n<answer>\n72\n</answer>\n", 0.0),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n</answer>\n", 0.0),
    ],
)
def test_strict_format(text, expected):
    assert score("strict_format", text) == expected


def test_strict_format_multi_line_is_a_deviation():
    assert reference.strict_format_reward_func(completions=[chat(MULTI_LINE)]) == [0.0]
    assert strict_format_reward_func(completions=[MULTI_LINE]) == [0.5]


def test_system_prompt_layout_is_strict_format():
    assert SYSTEM_PROMPT == (
        "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
    )
    layout = SYSTEM_PROMPT.removeprefix("Respond in the following format:\n")
    assert score("strict_format", layout) == 0.5


# --- soft format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<reasoning>r</reasoning><answer>72</answer>", 0.25),
        ("<reasoning>r</reasoning>\n<answer>72</answer> trailing", 0.25),
        ("<reasoning>r</reasoning> \n\t <answer>72</answer>", 0.0),
        (PERFECT, 0.25),
        (MULTI_LINE, 0.25),
        ("<reasoning>a</reasoning>b</reasoning><answer>72</answer>", 0.25),
        ("x<reasoning>r</reasoning><answer>72</answer>", 0.0),
        ("<reasoning>r</reasoning>text<answer>72</answer>", 0.0),
        ("<reasoning>r</reasoning><answer>72", 0.0),
        ("<answer>72</answer><reasoning>r</reasoning>", 0.0),
        ("<reasoning>r<answer>72</answer>", 0.0),
    ],
)
def test_soft_format(text, expected):
    assert score("soft_format", text) == expected


def test_soft_format_allows_one_whitespace_as_the_example_does():
    spaced = "<reasoning>r</reasoning>\n\n<answer>72</answer>"
    assert reference.soft_format_reward_func(completions=[chat(spaced), chat(PERFECT)]) == [0.0, 0.25]
    assert soft_format_reward_func(completions=[spaced, PERFECT]) == [0.0, 0.25]


# --- xmlcount -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (PERFECT, 0.5),  # the closing tag's own newline is free
        (MULTI_LINE, 0.5),
        ("<reasoning>r</reasoning> <answer>72</answer>\n", 0.5),  # bare tags count, not their newlines
        (PERFECT + "abc", 0.5 - 3 * 0.001),
        (PERFECT + "\n", 0.5 - 1 * 0.001),
        (well_formed("r", "72", ending=""), 0.5 + 0.001),  # nothing after the tag: -1 characters
        ("<reasoning>\nr\n</reasoning>\n", 2 * 0.125),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n72", 3 * 0.125),
        ("<answer>\n72\n</answer>\nxy", 2 * 0.125 - 2 * 0.001),
        (PERFECT + PERFECT, 0.0),
        ("<answer></reasoning><reasoning></answer>", 0.5 + 0.001),  # order is the format rewards' job
        ("no tags", 0.0),
        ("", 0.0),
    ],
)
def test_xmlcount_values(text, expected):
    assert score("xmlcount", text) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("junk_chars", [0, 1, 10, 999, 1001])
def test_xmlcount_equals_reference_with_trailing_junk_up_to_the_bound(junk_chars):
    text = PERFECT + "z" * junk_chars
    expected = 0.5 - junk_chars * 0.001
    assert reference.xmlcount_reward_func(completions=[chat(text)]) == [pytest.approx(expected)]
    assert score("xmlcount", text) == pytest.approx(max(expected, -0.5))


def test_xmlcount_clamps_long_junk():
    text = PERFECT + "z" * 1_000_000
    assert reference.count_xml(text) == pytest.approx(0.5 - 1_000_000 * 0.001)
    assert score("xmlcount", text) == -0.5


# --- robustness -------------------------------------------------------------------------------

HOSTILE = [None, "", 0, 3.5, b"<answer>72</answer>", {"content": None}, [], [None],
           chat(None), chat(72), [{"role": "assistant"}], object()]


@pytest.mark.parametrize("name", REWARD_FUNCS)
def test_hostile_completions_score_zero(name):
    scores = REWARD_FUNCS[name](completions=HOSTILE, answer=["72"] * len(HOSTILE))
    assert scores == [0.0] * len(HOSTILE)


@pytest.mark.parametrize("name", REWARD_FUNCS)
def test_completions_not_a_list_give_no_scores(name):
    assert REWARD_FUNCS[name](completions=None, answer=None) == []


MEGABYTE = 1_000_000
LONG_INPUTS = [
    "a" * MEGABYTE,
    "<answer>" * (MEGABYTE // 8),
    "</reasoning> " * (MEGABYTE // 13),
    "<reasoning>" + "</reasoning>" + " " * MEGABYTE,
    "<reasoning>" + "</reasoning> <answer>" * (MEGABYTE // 21),
    "<reasoning>\n" + "\n</reasoning>\n<answer>\n" * (MEGABYTE // 23),
    "<answer>" + "9" * MEGABYTE,
    "<answer>" + "1," * (MEGABYTE // 2) + "</answer>",
]


@pytest.mark.parametrize("name", REWARD_FUNCS)
def test_megabyte_inputs_score_zero_in_linear_time(name):
    start = time.perf_counter()
    scores = REWARD_FUNCS[name](completions=LONG_INPUTS, answer=["1"] * len(LONG_INPUTS))
    elapsed = time.perf_counter() - start
    expected = [0.0] * len(LONG_INPUTS)
    if name == "xmlcount":  # a tag that occurs once earns 0.125; the repeated ones earn nothing
        expected[3:8] = [0.25, 0.125, 0.125, 0.125, 0.25 + 0.001]
    if name == "int":
        expected[6] = 0.5  # a million digits is an integer, read in linear time
    assert scores == expected
    assert elapsed < 0.5  # a bound against quadratic code, not a performance target


def test_megabyte_well_formed_completion_is_scored_normally():
    text = well_formed("x = 1 + 1\n" * (MEGABYTE // 10), "72")
    start = time.perf_counter()
    scores = {name: score(name, text) for name in REWARD_FUNCS}
    assert time.perf_counter() - start < 0.5
    assert scores == {"correctness": 2.0, "int": 0.5, "strict_format": 0.5,
                      "soft_format": 0.25, "xmlcount": 0.5}


@pytest.mark.parametrize("name", REWARD_FUNCS)
def test_chat_and_plain_completions_score_the_same(name):
    texts = [PERFECT, MULTI_LINE, PERFECT + "junk", "<answer>-3</answer>", "nothing", ""]
    golds = ["72", "72", "72", "-3", "1", "1"]
    plain = REWARD_FUNCS[name](completions=texts, answer=golds)
    as_chat = REWARD_FUNCS[name](completions=[chat(t) for t in texts], answer=golds)
    assert plain == as_chat


def test_extra_trl_keywords_are_accepted():
    for func in REWARD_FUNCS.values():
        func(completions=[PERFECT], answer=["72"], prompts=[[{"role": "user", "content": "q"}]],
             completion_ids=[[1, 2]], trainer_state=object(), question=["q"])


# --- properties ---------------------------------------------------------------------------

FRAGMENTS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", " ", "72", "-3",
             "$1,000", "1.5", "**", "#### "]
piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8))
completion_texts = st.lists(piece, max_size=30).map("".join)
completions_st = st.lists(st.one_of(completion_texts, completion_texts.map(chat), st.none()),
                          max_size=5)


@settings(max_examples=300, deadline=None)
@given(completions=completions_st, golds=st.lists(st.one_of(completion_texts, st.integers()), max_size=6))
def test_every_reward_returns_finite_floats_in_range(completions, golds):
    for name, func in REWARD_FUNCS.items():
        scores = func(completions=completions, answer=golds)
        assert len(scores) == len(completions)
        for value in scores:
            assert isinstance(value, float) and math.isfinite(value)
            allowed = RANGES[name]
            if isinstance(allowed, set):
                assert value in allowed
            else:
                assert allowed[0] <= value <= allowed[1]


# --- comparability with the reference --------------------------------------------------------

SINGLE_LINE_REASONINGS = ["", "48 / 2 = 24 clips in May, 48 + 24 = 72.", "Weng earns 12 / 60 = $0.2 a minute."]
ANSWERS = ["72", "10", "0", "1000", "18.5", "abc", "", " 72 "]


@pytest.mark.parametrize("reasoning", SINGLE_LINE_REASONINGS)
@pytest.mark.parametrize("written", ANSWERS)
@pytest.mark.parametrize("gold", ["72", "10", "1000", "18.5"])
@pytest.mark.parametrize("junk", ["", "z", "zz" * 20])
def test_well_formed_single_line_values_equal_reference(reasoning, written, gold, junk):
    text = well_formed(reasoning, written) + junk
    one_line = f"<reasoning>{reasoning}</reasoning> <answer>{written}</answer>{junk}"
    for name in REWARD_FUNCS:
        ours = REWARD_FUNCS[name](completions=[text, one_line], answer=[gold, gold])
        theirs = reference.REWARD_FUNCS[name](completions=[chat(text), chat(one_line)],
                                              answer=[gold, gold])
        assert ours == pytest.approx(theirs, abs=1e-12), name


def test_reference_is_not_registered():
    assert all(func.__module__ == "axolotl_grpo_rewards.gsm8k" for func in gsm8k.REWARD_FUNCS.values())


@pytest.mark.parametrize("text, expected", [
    ("16 - 3 - 4 = 9 eggs; 9 * 2 = $18, so \\boxed{18}. Check: 9 eggs.", Decimal(18)),  # the box beats later numbers
    ("\\boxed{\\frac{3}{4}} hmm, 7", Decimal(4)),              # a box's last number, not the text's
    ("\\boxed{x} so 12", Decimal(12)),                          # a box without a number: the text's
    ("\\boxed{18 and on and on", Decimal(18)),                  # never closed: the text's last number
    ("<reasoning>2 + 3</reasoning><answer>\nThe total is $1,250.\n</answer> 99", Decimal(1250)),
    ("<answer>none</answer> then 41 apples.", Decimal(41)),
    ("It costs 3.50 dollars, then 1,000,", Decimal(1000)),
    ("-7 degrees", Decimal(-7)),
    ("", None),
    ("no digits at all", None),
])
def test_final_number_reads_the_answer_wherever_it_is_written(text, expected):
    value = final_number(text)
    assert value == expected if expected is not None else value is None
    assert final_number([{"role": "assistant", "content": text}]) == value  # chat completions too


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\boxed{}<answer>/ 0123456789,.$-x\n")), max_size=400))
def test_final_number_is_total_on_adversarial_text(text):
    value = final_number(text)
    assert value is None or isinstance(value, Decimal)


def test_final_number_is_linear_on_a_megabyte_of_open_boxes():
    text = "\\boxed{1" * 100_000 + "2" * 200_000 + "," * 300_000
    start = time.perf_counter()
    final_number(text)
    assert time.perf_counter() - start < 5.0
