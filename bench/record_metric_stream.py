"""Record the metrics a real `axolotl train` logs each step, as JSON lines: the run doctor's
test fixtures (tests/fixtures/doctor/*.jsonl) come from this script.

    python bench/record_metric_stream.py CONFIG OUT.jsonl [key=value ...]

`key=value` overrides top-level or `trl.`/`grpo_plugin.` keys of the config (yaml values),
e.g. `trl.reward_funcs=[correctness]` or `learning_rate=10`. output_dir goes to a temp dir.
Only the numeric keys of each training step's log line are kept.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


REPO = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"\{'loss'[^{}]*\}")
# what the doctor and a reader of the fixture need; the rest (clip ratios, per-reward std) is dropped
KEEP = re.compile(r"^(loss|grad_norm|reward|reward_std|frac_reward_zero_std|entropy|kl|step_time|"
                  r"completions/(mean_length|clipped_ratio|mean_terminated_length)|"
                  r"rewards/[^/]+/mean|observe/.*|sampling/.*)$")


def main(argv: list[str]) -> int:
    config, out, *overrides = argv
    cfg = yaml.safe_load(Path(config).read_text())
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    with tempfile.TemporaryDirectory() as tmp:
        cfg["output_dir"] = str(Path(tmp) / "out")
        cfg["dataset_prepared_path"] = str(Path(tmp) / "prepared")
        for key in ("base_model",):
            if str(cfg.get(key, "")).startswith("."):
                cfg[key] = str(REPO / cfg[key])
        for entry in cfg.get("datasets", []):
            if not Path(entry["path"]).is_absolute():
                entry["path"] = str(REPO / entry["path"])
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(cfg))
        sys.path.insert(0, str(REPO))
        from axolotl_grpo_plugin.system.childenv import offline_child_env

        proc = subprocess.run([str(Path(sys.executable).parent / "axolotl"), "train", str(path)],
                              cwd=tmp, env=offline_child_env(REPO), capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    rows = []
    for match in LOG_LINE.findall(text):
        row = {}
        for k, v in ast.literal_eval(match).items():
            if not KEEP.match(k):
                continue
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        rows.append({k: (v if v == v and abs(v) != float("inf") else str(v)) for k, v in row.items()})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} steps -> {out} (exit {proc.returncode})")
    if proc.returncode:
        print(text[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
