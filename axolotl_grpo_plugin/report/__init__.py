"""One self-contained HTML report over a run's rollout log: curves and browsable rollouts.

`axolotl-grpo report OUTPUT_DIR` (see `--help`). The page needs
no network: plots are inline PNGs, the rollouts are embedded JSON, the viewer is
plain JavaScript that renders only the rows in view.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

from ..system.safe_files import replacing
from .data import (
    ReportData,
    clean_text,
    collect,
    columns,
    curves,
    eval_curves,
    findings_by_curve,
    sampling_summary,
    step_time_shares,
)
from .plots import plot_png, stacked_png


DEFAULT_MAX_ROLLOUTS = 100_000
CHUNK_ROWS = 2000  # rows per compressed text block: what the page inflates to show a screenful


def _packed(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")


def notices(data: ReportData, interrupted: dict | None = None, read_skipped: int = 0) -> list[str]:
    """The page's warnings: an interrupted run (its INTERRUPTED marker) and skipped log lines."""
    out = []
    if interrupted is not None:
        step, when = interrupted.get("step"), interrupted.get("time")
        out.append("This run was interrupted (Ctrl-C / SIGINT)"
                   + (f" at step {step}" if isinstance(step, int) else "")
                   + (f", {when}" if isinstance(when, str) else "")
                   + ": the curves stop there and the saved model is the one from that moment.")
    for name, c in data.remote.items():  # docs/remote-rewards.md
        answered = c["samples"] - c["cached"]
        latency = f", {c['latency_ms'] / answered:.0f} ms per sample" if answered else ""
        out.append(f"Remote reward {name}: {c['samples']:.0f} samples, {c['calls']:.0f} calls, "
                   f"{c['cached']:.0f} from the cache, {c['failed']:.0f} failed (scored None), "
                   f"{c['unscored']:.0f} without a usable score{latency}.")
    skipped = data.skipped + read_skipped
    if skipped:
        out.append(f"{skipped:,} log lines were skipped: unreadable (torn, not JSON, nested too deep) "
                   "or not a rollout (no integer step).")
    return out


def render_html(data: ReportData, title: str, notes: Iterable[str] = ()) -> str:
    """The page for collected data: plots for the train curves, the rows as embedded JSON;
    `notes` are shown as warnings above them."""
    plots = []
    marks = findings_by_curve(data)
    train = [("total reward" if name == "reward" else name, xs, ys, marks.get(name))
             for name, (xs, ys) in curves(data, "train").items() if xs]
    held_out = [(f"held-out {name}", xs, ys, None)  # the evaluation every N steps (eval_every)
                for name, (xs, ys) in eval_curves(data).items() if xs]
    for label, xs, ys, found in train + held_out:
        try:
            png = plot_png(label, xs, ys, found)
        except (ValueError, OverflowError, ArithmeticError) as exc:  # e.g. values near 1e308
            plots.append(f"<p>No plot of {html.escape(label)}: its values cannot be drawn "
                         f"({html.escape(type(exc).__name__)}: {html.escape(str(exc)[:200])}).</p>")
            continue
        plots.append(f'<img alt="{html.escape(label)}" title="{html.escape(label)}" '
                     f'src="data:image/png;base64,{png}">')
    if not train:
        plots.insert(0, "<p>No training steps logged yet.</p>")
    meta, completions, prompts = columns(data)
    meta["chunkRows"] = CHUNK_ROWS
    # "<" only occurs inside JSON strings, where \u003c is the same character: no "</script>" break-out
    payload = json.dumps(meta, ensure_ascii=False, allow_nan=False,
                         separators=(",", ":")).replace("<", "\\u003c")
    # texts: gzipped, base64'd chunks (no "<" possible) that the page inflates on demand
    chunks = [_packed("".join(completions[i:i + CHUNK_ROWS]))
              for i in range(0, len(completions), CHUNK_ROWS)]
    texts = "\n".join(f'<script class="report-chunk" type="application/octet-stream">{c}</script>'
                      for c in chunks)
    texts += f'\n<script id="report-prompts" type="application/octet-stream">{_packed("".join(prompts))}</script>'
    template = resources.files("axolotl_grpo_plugin").joinpath("templates/report.html").read_text("utf-8")
    banners = "".join(f'<div class="notice">{html.escape(clean_text(n))}</div>\n  ' for n in notes)
    fills = {"__TITLE__": html.escape(clean_text(title)), "__PLOTS__": "\n".join(plots), "__NOTICES__": banners,
             "__FINDINGS__": _findings_html(data), "__STEP_TIME__": step_time_html(data),
             "__SAMPLING__": sampling_html(data),
             "__DATA__": payload, "__TEXTS__": texts}
    # one pass, so a placeholder-like string inside the data is never substituted
    return re.sub("|".join(fills), lambda m: fills[m.group(0)], template)


def step_time_html(data: ReportData) -> str:
    """Where each step's time went (observe/step_time.py): a stacked bar per step and the mean
    share of each part; empty when the log has no `step_time` records."""
    shares, count = step_time_shares(data)
    if not count:
        return ""
    xs = list(data.step_times)
    parts = {p: [data.step_times[x][p] for x in xs] for p in shares}
    items = "".join(f"<li>{html.escape(p)}: {share * 100:.1f} %</li>" for p, share in shares.items())
    first = " (step 1 left out: it includes warm-up)" if len(xs) > count else ""
    try:
        plot = f'<img alt="step time" title="step time" src="data:image/png;base64,{stacked_png("seconds per step", xs, parts)}">'
    except (ValueError, OverflowError, ArithmeticError) as exc:
        plot = f"<p>No plot of the step time ({html.escape(type(exc).__name__)}).</p>"
    return (f'<section id="step-time"><h2>Step time</h2><p>Mean share of each step over {count} '
            f"steps{first}:</p><ul>{items}</ul>{plot}</section>")


def sampling_html(data: ReportData) -> str:
    """Dynamic sampling's share of set-aside groups (training/dynamic_sampling.py), with its curve
    per step; empty when the log has no `sampling` records."""
    summary = sampling_summary(data)
    if summary is None:
        return ""
    xs = list(data.sampling)
    shares = [s["discarded"] / (s["kept"] + s["discarded"]) if s["kept"] + s["discarded"] else 0.0
              for s in data.sampling.values()]
    try:
        plot = (f'<img alt="groups set aside" title="groups set aside" '
                f'src="data:image/png;base64,{plot_png("share of generated groups set aside", xs, shares)}">')
    except (ValueError, OverflowError, ArithmeticError) as exc:
        plot = f"<p>No plot of the groups set aside ({html.escape(type(exc).__name__)}).</p>"
    cap = (f"; {summary['cap_hits']} reached max_rounds and trained groups without spread"
           if summary["cap_hits"] else "")
    return (f'<section id="dynamic-sampling"><h2>Dynamic sampling</h2><p>Over {summary["steps"]} steps, '
            f"{summary['set_aside'] * 100:.1f} % of the generated groups were set aside (no reward spread), "
            f"{summary['rounds']:.2f} generation rounds per step; "
            f"{summary['zero_std_trained'] * 100:.1f} % of the trained groups had no spread{cap}; "
            f"{summary['carried']:.0f} groups with spread were carried into the next step's batch. The curves "
            "above count every generated rollout, set-aside ones included; each rollout below shows its round "
            f"and fate (∅: set aside).</p>{plot}</section>")


def _findings_html(data: ReportData) -> str:
    """The run doctor's diagnoses, each with its step (also marked on the curves), the vLLM
    server's restarts, and the steps whose reinforced completions look degenerate (rollouts/scan.py)."""
    out = ""
    if data.findings:
        items = "".join(f"<li><b>step {html.escape(clean_text(str(f.get('step'))))}</b>: "
                        f"{html.escape(clean_text(str(f.get('message', ''))))}</li>" for f in data.findings)
        out += f'<section id="doctor"><h2>Run doctor</h2><ul>{items}</ul></section>'
    if data.restarts:
        items = "".join(f"<li><b>step {html.escape(clean_text(str(r.get('step'))))}</b>, "
                        f"{html.escape(clean_text(str(r.get('time', ''))))}: "
                        f"{html.escape(clean_text(str(r.get('cause', ''))))}; back in "
                        f"{html.escape(clean_text(str(r.get('took_s'))))} s (dead server's log: "
                        f"{html.escape(clean_text(str(r.get('log', ''))))})</li>" for r in data.restarts)
        out += (f'<section id="restarts"><h2>vLLM server restarts ({len(data.restarts)})</h2>'
                f"<p>The server died or stalled; it was restarted, the weights pushed again and the "
                f"generation redone (grpo_plugin.vllm_max_restarts).</p><ul>{items}</ul></section>")
    suspected = [f for f in data.hacking if f.suspected]
    if suspected:
        rows = "".join(f"<tr><td>{f.step}</td><td>{f.degenerate} / {f.reinforced}</td><td>"
                       f"{html.escape(', '.join(f'{k} {n}' for k, n in f.signs.most_common()))}</td></tr>"
                       for f in suspected)
        out += (f'<section id="hacking"><h2>Reward hacking</h2><p>{html.escape(clean_text(suspected[0].message()))}'
                f"</p><table><tr><th>step</th><th>degenerate / reinforced</th><th>signs</th></tr>{rows}</table>"
                "</section>")
    return out


def write_report(
    records: Iterable[dict],
    out: str | os.PathLike,
    title: str,
    max_rollouts: int = DEFAULT_MAX_ROLLOUTS,
    phrases: list[str] | None = None,
    seed: int = 0,
    interrupted: dict | None = None,
    read_skipped: int | Callable[[], int] = 0,
) -> ReportData:
    """Collect, render, and write atomically (a fresh temp file, then rename: a symlink at
    `out` is replaced, not followed; a failure leaves no temp file). `read_skipped` counts
    lines the reader dropped (a callable: read after `records` is consumed). No rollout, no
    page: a report of nothing must not replace a good one (`data.total` is 0 then)."""
    data = collect(records, max_rollouts=max_rollouts, seed=seed, phrases=phrases)
    if not data.total:
        return data
    read = read_skipped() if callable(read_skipped) else read_skipped
    page = render_html(data, title, notices(data, interrupted, read))
    with replacing(Path(out), "w") as handle:
        handle.write(page)
    return data


__all__ = ["DEFAULT_MAX_ROLLOUTS", "ReportData", "collect", "notices", "render_html", "write_report"]
