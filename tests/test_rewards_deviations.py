"""Our GSM8K rewards against the published example's semantics (bench/reference.py, the Axolotl
cookbook's GRPO example): each row of docs/rewards.md's "Deviations" table is run on both, and on a
broad generated corpus the two agree to 1e-9 wherever no row of the table applies."""

import ast
import itertools
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_rewards.gsm8k import REWARD_FUNCS, XMLCOUNT_MIN, gold_number


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import reference  # noqa: E402


STRICT_DOTALL = re.compile(reference.STRICT.pattern, re.DOTALL)


# --- the table ---------------------------------------------------------------------------------


def deviation_rows(path: Path) -> list[dict]:
    """The rows of the first table whose header starts with `| reward | case |`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| reward | case |"))
    header = [cell.strip() for cell in lines[start].strip("|").split(" | ")]
    rows = []
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:]):
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


_LITERAL_NODES = (ast.Expression, ast.Constant, ast.BinOp, ast.Add, ast.Mult, ast.List, ast.Dict, ast.Load)


def example_value(cell: str):
    """A cell such as `"<answer>72</answer>" + "z" * 5`: literals joined by + and *, nothing else."""
    tree = ast.parse(cell.strip("`"), mode="eval")
    assert all(isinstance(node, _LITERAL_NODES) for node in ast.walk(tree)), cell
    return eval(compile(tree, "<table>", "eval"), {"__builtins__": {}})


DOC_ROWS = deviation_rows(REPO / "docs" / "rewards.md")
SHAPES = {"plain": lambda c: c, "chat": lambda c: [{"role": "assistant", "content": c}]}


def test_the_docs_list_the_deviations_once():
    assert len(DOC_ROWS) >= 10
    assert not any(line.startswith("| reward | case |") for line in (REPO / "README.md").read_text().splitlines())


@pytest.mark.parametrize("row", DOC_ROWS, ids=[f"{r['reward']}: {r['case']}" for r in DOC_ROWS])
def test_each_documented_deviation_holds(row):
    ours_func, theirs_func = REWARD_FUNCS[row["reward"]], reference.REWARD_FUNCS[row["reward"]]
    completion = example_value(row["completion"])
    golds = [] if row["gold"] == "—" else [example_value(row["gold"])]
    shapes = SHAPES.values() if isinstance(completion, str) else [lambda c: c]
    for shape in shapes:
        completions = [shape(completion)]
        assert ours_func(completions=completions, answer=golds) == [pytest.approx(float(row["ours"]))]
        if row["cookbook"] == "raises TypeError":
            with pytest.raises(TypeError):
                theirs_func(completions=completions, answer=golds)
        elif row["cookbook"] == "no score":
            assert theirs_func(completions=completions, answer=golds) == []
        else:
            assert theirs_func(completions=completions, answer=golds) == [pytest.approx(float(row["cookbook"]))]


# --- everywhere else: equal --------------------------------------------------------------------


def example_answer(text: str) -> str:
    return reference.answer_of(text)


def no_answer_tag(text, gold):
    return "<answer>" not in text


# When one of these holds, the documented row may apply and the values may differ.
DEVIATIONS = {
    ("strict_format", "sections span lines"):
        lambda text, gold: bool(STRICT_DOTALL.match(text)) and not reference.STRICT.match(text),
    ("strict_format", "a tag repeated in a section"):
        lambda text, gold: any(text.count(tag) != 1 for tag in reference.TAGS),
    ("correctness", "numbers spelled differently"): lambda text, gold: example_answer(text) != gold,
    ("correctness", "gold given as a number or a solution"):
        lambda text, gold: not isinstance(gold, str) or "####" in gold,
    ("correctness", "gold that is not a number"): lambda text, gold: gold_number(gold) is None,
    ("correctness", "no `<answer>` tag"): no_answer_tag,
    ("int", "no `<answer>` tag"): no_answer_tag,
    ("int", "negative"): lambda text, gold: example_answer(text).startswith("-"),
    ("int", "not ASCII digits"): lambda text, gold: not example_answer(text).isascii(),
    ("xmlcount", "long text after `</answer>`"): lambda text, gold: reference.count_xml(text) < XMLCOUNT_MIN,
}
# Rows about the shape of the call, which the corpus (one string or one message each) never has.
SHAPE_ROWS = {("correctness", "`answer` column shorter than completions"), ("correctness", "several messages"),
              ("correctness", "not a string or a message list")}


def test_every_documented_row_is_known_to_the_golden_test():
    assert {(row["reward"], row["case"]) for row in DOC_ROWS} == set(DEVIATIONS) | SHAPE_ROWS


def assert_equal_outside_deviations(texts: list[str], golds: list) -> int:
    """Compare all five rewards on plain and chat shapes; returns how many values were compared."""
    compared = 0
    for name, ours_func in REWARD_FUNCS.items():
        excused = [key for key in DEVIATIONS if key[0] == name]
        for shape in SHAPES.values():
            completions = [shape(text) for text in texts]
            ours = ours_func(completions=completions, answer=golds)
            theirs = reference.REWARD_FUNCS[name](completions=completions, answer=golds)
            for text, gold, a, b in zip(texts, golds, ours, theirs):
                if any(DEVIATIONS[key](text, gold) for key in excused):
                    continue
                assert abs(a - b) <= 1e-9, (name, text, gold, a, b)
                compared += 1
    return compared


REASONINGS = ["", "48 / 2 = 24 clips in May.", "Step 1: 48 / 2 = 24.\nStep 2: 48 + 24 = 72.",
              "use <answer> tags", " spaced ", "a</reasoning>b"]
ANSWERS = ["72", "-3", "1,000", "$72", "72.0", "7.5", "seventy-two", "", " 72 ", "²", "0", "1000"]
ENDINGS = ["", "\n", " ", "\n\n", " \n", "  ", "\t\n", "\nThe end.", "z" * 5]
LAYOUTS = {
    "well_formed": "<reasoning>\n{r}\n</reasoning>\n<answer>\n{a}\n</answer>{e}",
    "one_line": "<reasoning>{r}</reasoning> <answer>{a}</answer>{e}",
    "tight": "<reasoning>{r}</reasoning><answer>{a}</answer>{e}",
    "newline_between": "<reasoning>{r}</reasoning>\n<answer>{a}</answer>{e}",
    "two_newlines_between": "<reasoning>{r}</reasoning>\n\n<answer>{a}</answer>{e}",
    "unclosed_answer": "<reasoning>\n{r}\n</reasoning>\n<answer>\n{a}{e}",
    "no_reasoning": "<answer>\n{a}\n</answer>{e}",
    "no_tags": "{r} The answer is {a}.{e}",
    "bare_answer": "{a}{e}",
    "leading_text": "Sure!\n<reasoning>\n{r}\n</reasoning>\n<answer>\n{a}\n</answer>{e}",
    "twice": "<reasoning>\n{r}\n</reasoning>\n<answer>\n{a}\n</answer>\n<answer>\n{a}\n</answer>{e}",
    "long_tail": "<reasoning>\n{r}\n</reasoning>\n<answer>\n{a}\n</answer>\n" + "z" * 1200 + "{e}",
}
GOLDS = ["72", "1000", "-3", "7.5", "0", "seventy-two", "#### 72", 72]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_generated_corpus_equals_the_example_outside_the_table(layout):
    texts = [LAYOUTS[layout].format(r=r, a=a, e=e)
             for r, a, e in itertools.product(REASONINGS, ANSWERS, ENDINGS)]
    cases = [(text, gold) for text in texts for gold in GOLDS]
    compared = assert_equal_outside_deviations([t for t, _ in cases], [g for _, g in cases])
    assert compared > len(cases)  # most values are compared, not excused


def test_the_corpus_meets_every_deviation():
    """Each predicate above fires on some generated case, so none is dead weight."""
    cases = [(LAYOUTS[layout].format(r=r, a=a, e=e), gold)
             for layout in LAYOUTS for r, a, e in itertools.product(REASONINGS, ANSWERS, ENDINGS[:3])
             for gold in GOLDS]
    for key, applies in DEVIATIONS.items():
        assert any(applies(text, gold) for text, gold in cases), key


FRAGMENTS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", " ", "\t", "72", "-3",
             "$1,000", "1.5", "²", "<reasoning>\n", "\n</answer>\n", "\n</reasoning>\n<answer>\n"]
texts_st = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=24).map("".join)
golds_st = st.one_of(st.sampled_from(["72", "-3", "1000", "1.5", "", "n/a"]), texts_st, st.integers())


@settings(max_examples=400, deadline=None)
@given(cases=st.lists(st.tuples(texts_st, golds_st), min_size=1, max_size=8))
def test_random_completions_equal_the_example_outside_the_table(cases):
    assert_equal_outside_deviations([t for t, _ in cases], [g for _, g in cases])
