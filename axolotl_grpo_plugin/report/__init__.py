"""One self-contained HTML report over a run's rollout log: curves and browsable rollouts.

`python -m axolotl_grpo_plugin.report OUTPUT_DIR` (see `--help`). The page needs
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
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from .data import ReportData, collect, columns, curves, eval_curves
from .plots import plot_png


DEFAULT_MAX_ROLLOUTS = 100_000
CHUNK_ROWS = 2000  # rows per compressed text block: what the page inflates to show a screenful


def _packed(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")


def render_html(data: ReportData, title: str) -> str:
    """The page for collected data: plots for the train curves, the rows as embedded JSON."""
    plots = []
    for name, (xs, ys) in curves(data, "train").items():
        if xs:
            label = "total reward" if name == "reward" else name
            plots.append(f'<img alt="{html.escape(label)}" title="{html.escape(label)}" '
                         f'src="data:image/png;base64,{plot_png(label, xs, ys)}">')
    if not plots:
        plots.append("<p>No training steps logged yet.</p>")
    for name, (xs, ys) in eval_curves(data).items():  # the held-out evaluation every N steps
        if xs:
            label = f"held-out {name}"
            plots.append(f'<img alt="{html.escape(label)}" title="{html.escape(label)}" '
                         f'src="data:image/png;base64,{plot_png(label, xs, ys)}">')
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
    fills = {"__TITLE__": html.escape(title), "__PLOTS__": "\n".join(plots),
             "__DATA__": payload, "__TEXTS__": texts}
    # one pass, so a placeholder-like string inside the data is never substituted
    return re.sub("|".join(fills), lambda m: fills[m.group(0)], template)


def write_report(
    records: Iterable[dict],
    out: str | os.PathLike,
    title: str,
    max_rollouts: int = DEFAULT_MAX_ROLLOUTS,
    phrases: list[str] | None = None,
    seed: int = 0,
) -> ReportData:
    """Collect, render, and write atomically (temp file, then rename)."""
    data = collect(records, max_rollouts=max_rollouts, seed=seed, phrases=phrases)
    page = render_html(data, title)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return data


__all__ = ["DEFAULT_MAX_ROLLOUTS", "ReportData", "collect", "render_html", "write_report"]
