"""`grpo_plugin.pass_rate_filter` can train: its file is a pass-rates file, its band is not empty
and keeps rows; and the line that says how many (sources/pass_rates.py)."""

from __future__ import annotations

from ..config.run import Run
from ..errors import PluginError, Problem
from ..sources import pass_rates
from ..system.launch import Launch


KEY = "grpo_plugin.pass_rate_filter"


def _band(run: Run) -> str:
    s = run.plugin.pass_rate_filter
    return f"({s.min:g}, {s.max:g})"


def band_rows(run: Run) -> tuple[int, int]:
    """(rows of the file in the band, rows in the file); raises the file's PluginError."""
    s = run.plugin.pass_rate_filter
    rates = pass_rates.read(s.file)
    return pass_rates.band_count(rates, s.min, s.max), len(rates)


def check_pass_rate_filter(run: Run, launch: Launch) -> list[Problem]:
    s = run.plugin.pass_rate_filter
    if s is None:
        return []
    if not s.min < s.max:
        return [Problem(KEY, {"min": s.min, "max": s.max}, f"the band {_band(run)} holds no pass rate: a row "
                        "trains when min < its pass rate < max.",
                        "set min below max, e.g. `min: 0.0, max: 1.0` (prompts neither always nor never solved)")]
    try:
        kept, rows = band_rows(run)
    except PluginError as exc:
        return exc.problems
    if kept:
        return []
    return [Problem(KEY, {"min": s.min, "max": s.max}, f"no row of {s.file} has a pass rate in {_band(run)} "
                    f"({rows} rows): training would have no prompt.",
                    "widen the band, probe with more generations (`--generations 16` resolves rarer "
                    "successes), or train on easier data")]


def pass_rate_notes(run: Run) -> list[str]:
    """What `check` says of a band that passed: how many rows it keeps."""
    s = run.plugin.pass_rate_filter
    if s is None:
        return []
    kept, rows = band_rows(run)
    return [f"grpo_plugin.pass_rate_filter: the band {_band(run)} keeps {kept} of the {rows} rows of {s.file}; "
            "the training set is filtered to them when the trainer is built (rows without a pass rate are left "
            "out)."]
