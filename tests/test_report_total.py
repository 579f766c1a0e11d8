"""The report builder is total over anything a log line may hold (issue 15): odd-but-valid
JSON, wrong types in every field, torn and garbage lines are coerced or skipped and counted,
never a crash; a report that fails leaves no temp file behind."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from axolotl_grpo_plugin.commands.report import main as report_main
from axolotl_grpo_plugin.report import collect, render_html
from axolotl_grpo_plugin.report.data import columns
from axolotl_grpo_plugin.rollouts.log import read_rollouts


GOOD = {"step": 1, "mode": "train", "group": 0, "prompt": "Q", "completion": "wait, 4",
        "rewards": {"correctness": 2.0}, "reward": 2.0, "advantage": 0.5, "length": 7}
DEEP = "[" * 100_000 + "]" * 100_000

ODD_LINES = [  # (line, is a rollout the report keeps)
    ('{"step": 1, "completion": "\\ud800 lone surrogate", "prompt": "\\udfff"}', True),
    ('{"step": 1, "group": NaN, "reward": Infinity, "advantage": -Infinity}', True),
    ('{"step": 1, "reward": 1' + "0" * 400 + ', "length": 1' + "0" * 400 + "}", True),
    ('{"step": 1' + "0" * 400 + "}", False),  # a step no page can show exactly
    ('{"step": 1, "group": 1' + "0" * 400 + ', "answer": 1' + "0" * 400 + "}", True),
    ('{"step": 1, "rewards": {"a": 1.7e308, "b": -1.7e308}, "reward": 1.7e308}', True),
    ('{"step": 1, "rewards": {"a": 1.7e308}, "reward": 1.7e308, "length": 1e308}', True),
    ('{"step": 1, "completion": ' + DEEP + "}", False),  # json cannot parse it: skipped, counted
    (DEEP, False),
    ('{"step": 1, "answer": ' + DEEP + ', "mode": ' + DEEP + "}", False),
    ('{"step": "1", "reward": 1}', False),
    ('{"step": true}', False),
    ('{"step": 2, "mode": 5, "group": "g", "prompt": [1], "completion": {"a": 1}, "rewards": [1, 2],'
     ' "reward": "1", "advantage": null, "length": "7", "answer": {"x": 1}, "reflection": "wait"}', True),
    ('{"step": 2, "rewards": {"a": "1", "b": null, "c": [1], "d": true}, "reflection": [5, 2]}', True),
    ('{"step": 2, "reflection": [0, 99999999999999999999], "completion": "wait"}', True),
    ('{"step": -3, "mode": "", "completion": "", "prompt": ""}', True),
    ("[1, 2, 3]", False),
    ('"just a string"', False),
    ("null", False),
    ('{"step": 3, "compl', False),  # torn
]


def write_log(directory, lines: list[str | bytes]) -> None:
    with open(directory / "rollouts.jsonl", "wb") as f:
        for line in lines:
            f.write((line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")) + b"\n")


def test_every_odd_line_is_kept_or_counted_and_the_page_is_written(tmp_path, capsys):
    lines = [json.dumps(GOOD)] + [line for line, _ in ODD_LINES] + [b"\xff\xfe not utf-8", b"   "]
    write_log(tmp_path, lines)
    assert report_main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    kept = 1 + sum(keep for _, keep in ODD_LINES)
    skipped = len(ODD_LINES) - sum(keep for _, keep in ODD_LINES) + 1  # + the bytes line
    assert f"{kept} rollouts" in printed and f"{skipped} unreadable log lines skipped" in printed
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"{skipped} log lines were skipped" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "rollouts.jsonl"]


def test_a_deeply_nested_record_given_directly_is_skipped_not_a_crash():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    data = collect([{**GOOD, "completion": deep, "answer": deep, "mode": deep, "rewards": {"a": deep}},
                    {"step": 1, "group": deep}])
    meta, completions, _ = columns(data)
    assert data.total == 2 and completions == ["", ""] and meta["modes"] == ["train"]


def test_wrong_types_become_missing_values_not_wrong_numbers():
    records = [json.loads(line) for line, keep in ODD_LINES[:7] if keep]
    data = collect([GOOD, *records, {"step": 2, "reward": "9", "length": "7", "group": "g"}])
    meta, completions, _ = columns(data)
    cols = meta["cols"]
    assert cols["reward"][-1] is None and cols["len"][-1] is None and cols["group"][-1] is None
    assert all(v is None or math.isfinite(v) for v in cols["reward"] + cols["adv"] + cols["len"])
    assert all(isinstance(c, str) for c in completions)
    json.dumps(meta, allow_nan=False)  # the page payload is strict JSON


# --- property: any JSON-ish line ---------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\U0001f642"])
TEXT = st.one_of(st.text(max_size=20), SURROGATES)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), TEXT,
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
FIELDS = ("step", "mode", "group", "prompt", "completion", "answer", "rewards", "reward",
          "advantage", "length", "reflection")
RECORDS = st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), VALUES, max_size=8)


def _line(value, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


LINES = st.one_of(
    st.builds(_line, st.one_of(RECORDS, RECORDS.map(lambda r: {**r, "step": 1})), st.booleans()),
    st.builds(_line, VALUES, st.booleans()),
    st.builds(lambda r, cut: _line(r, True)[:cut], RECORDS, st.integers(0, 40)),  # torn
    st.binary(max_size=30),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(lines=st.lists(LINES, max_size=12))
def test_collect_and_render_never_crash_on_any_log(tmp_path_factory, lines, monkeypatch_plots):
    directory = tmp_path_factory.mktemp("log")
    write_log(directory, [line.replace(b"\n", b" ") for line in lines])
    counts = {}
    data = collect(read_rollouts(directory, counts))
    # every non-blank line is a rollout, or counted as skipped by the reader or by collect
    assert data.total + data.skipped + counts.get("skipped", 0) == sum(
        bool(line.replace(b"\n", b" ").strip()) for line in lines)
    page = render_html(data, "run \ud800")
    page.encode("utf-8")  # the page is writable as UTF-8
    meta, _, _ = columns(data)
    json.dumps(meta, allow_nan=False)


@pytest.fixture(scope="module")
def monkeypatch_plots():
    """Plots are drawn for real in the odd-lines test; here they are skipped for speed, and
    the values they would get are checked instead (finite or NaN, never inf)."""
    from axolotl_grpo_plugin import report

    real = report.plot_png

    def check_only(title, xs, ys, marks=None):
        assert all(isinstance(x, int) for x in xs) and not any(math.isinf(y) for y in ys)
        return ""

    report.plot_png = check_only
    yield
    report.plot_png = real


@settings(max_examples=300, deadline=None)
@given(records=st.lists(st.one_of(RECORDS, RECORDS.map(lambda r: {**r, "step": 2}), VALUES), max_size=8))
@example(records=[{"type": []}, {"kind": {"a": 1}}])  # a kind that is not text (once found by CI)
def test_collect_is_total_over_python_values(records):
    data = collect(records)
    assert data.total + data.skipped == len(records)
    meta, completions, prompts = columns(data)
    json.dumps(meta, allow_nan=False)
    "".join(completions + prompts).encode("utf-8")
