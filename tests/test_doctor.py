"""The run doctor on metric streams recorded from real CPU runs (tests/fixtures/doctor/, made by
bench/record_metric_stream.py), and stop-and-save in a real short `axolotl train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_axolotl_train

from axolotl_grpo_plugin.config.args import DoctorSettings
from axolotl_grpo_plugin.observe.doctor import CLIPPED, ZERO_STD, Doctor, resolve


FIXTURES = Path(__file__).parent / "fixtures" / "doctor"


def stream(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def replay(logs: list[dict], **settings) -> list[tuple[int, str]]:
    """(logging step index, signature) of every finding over the stream."""
    doctor = Doctor(DoctorSettings(**settings))
    fired = []
    for i, entry in enumerate(logs):
        fired += [(i, f.signature) for f in doctor.observe(entry, i + 1)]
    return fired


def onset(logs: list[dict], test) -> int:
    return next(i for i, entry in enumerate(logs) if test(entry))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncation_fires_k_steps_after_onset(k):
    """configs/smoke.yaml: the untrained model never ends within 32 tokens."""
    logs = stream("smoke.jsonl")
    start = onset(logs, lambda e: e[CLIPPED] >= 0.9)
    fired = {sig: i for i, sig in replay(logs, steps=k)}
    assert fired["truncation"] == start + k - 1


def test_constant_reward_fires_zero_variance_and_zero_gradients():
    """Only the correctness reward, which the untrained model never earns: every group ties."""
    logs = stream("constant_reward.jsonl")
    assert all(e[ZERO_STD] == 1.0 for e in logs)
    fired = {sig: i for i, sig in replay(logs, steps=3)}
    assert fired["zero_variance"] == 2
    assert fired["zero_gradients"] == 2  # beta 0 and advantage 0: the gradient is exactly 0


def test_a_dead_model_fires_zero_gradients_although_groups_differ():
    """smoke at learning_rate 1000: after one update grad_norm is 0 on every step, also on
    steps whose groups had different rewards (frac_reward_zero_std 0)."""
    logs = stream("lr_1000.jsonl")
    assert any(e[ZERO_STD] == 0 and e["grad_norm"] == 0 for e in logs)
    start = onset(logs, lambda e: e["grad_norm"] == 0)
    fired = {sig: i for i, sig in replay(logs, steps=3)}
    assert fired["zero_gradients"] == start + 2


def test_format_without_correctness_on_a_format_only_run():
    """The demo's base trained on the three format rewards only (lr 1e-3, beta 0): format
    reaches 0.94 at step 11 and stays >= 0.9 for 6 steps while accuracy stays at 0-0.03."""
    logs = stream("format_only.jsonl")
    fired = {sig: i for i, sig in replay(logs)}
    assert fired["format_without_correctness"] == 14
    assert "observe/accuracy" in logs[0]


def test_healthy_demo_run_raises_no_alarm():
    """The demo's 70 steps (configs/demo.yaml, which learns) at the default thresholds."""
    logs = stream("demo.jsonl")
    assert len(logs) >= 60
    assert replay(logs) == []


def test_each_finding_fires_once_and_names_the_fix():
    doctor = Doctor(DoctorSettings(steps=2))
    messages = []
    for i, entry in enumerate(stream("smoke.jsonl")):
        messages += [f.message for f in doctor.observe(entry, i + 1)]
    trunc = [m for m in messages if "[truncation]" in m]
    assert len(trunc) == 1
    assert "Fix: raise `trl.max_completion_length`" in trunc[0] and "2 logging steps" in trunc[0]


def test_streams_without_the_metrics_are_ignored():
    doctor = Doctor()
    assert doctor.observe({"eval_loss": 1.0}) == []
    assert doctor.observe({"train_runtime": 10.0, "train_loss": float("nan")}) == []


def test_settings_resolve_and_reject_bad_values():
    assert resolve(False) is None and resolve(None) == DoctorSettings()
    assert resolve({"steps": 5}).steps == 5
    from axolotl_grpo_plugin.config.args import settings
    from axolotl_grpo_plugin.errors import GRPOConfigError

    with pytest.raises(GRPOConfigError, match="grpo_plugin.doctor"):
        settings({"grpo_plugin": {"doctor": {"steps": 0}}})


# --- a real run -------------------------------------------------------------------

def test_stop_and_save_in_a_real_run(embedded_model_dir, tmp_path, repo_root):
    """configs/smoke.yaml with `doctor.stop: true`: truncation is diagnosed at step 2, the run
    stops there with a checkpoint, and the diagnosis is in the log, the rollout log and the report."""
    cfg = yaml.safe_load((repo_root / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"),
               dataset_prepared_path=str(tmp_path / "prepared"), max_steps=6)
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["grpo_plugin"] = {"doctor": {"stop": True, "steps": 2}}
    path = tmp_path / "stop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(steps) == 2, steps
    text = proc.stdout + proc.stderr
    assert "run doctor [truncation]" in text and "Stopping the run" in text
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    records = list(read_rollouts(tmp_path / "out", everything=True))
    assert not [r for r in read_rollouts(tmp_path / "out") if r.get("type") == "doctor"]  # rollouts only
    found = [r for r in records if r.get("type") == "doctor"]
    assert [r["signature"] for r in found][:1] == ["truncation"] and found[0]["step"] == 2
    from axolotl_grpo_plugin.report import write_report

    data = write_report(records, tmp_path / "report.html", "stop")
    page = (tmp_path / "report.html").read_text()
    assert "Run doctor" in page and "run doctor [truncation]" in page
    assert data.total == sum(1 for r in records if "type" not in r)  # doctor and step_time lines are not rollouts


# --- signatures no short CPU run produced: the demo's real stream, with the failure grafted on

def _grafted(key: str, values: list[float], at: int = 20) -> list[dict]:
    """The healthy demo stream with `key` replaced from step `at` on (everything else real)."""
    logs = [dict(e) for e in stream("demo.jsonl")]
    for offset, value in enumerate(values):
        logs[at + offset][key] = value
    return logs


def test_entropy_collapse_fires_k_steps_after_the_entropy_falls():
    first = stream("demo.jsonl")[0]["entropy"]
    collapsed = _grafted("entropy", [first * 0.05] * 6)
    assert {s: i for i, s in replay(collapsed)} == {"entropy_collapse": 22}
    # a dip to 0.2x is not a collapse at the default ratio 0.1
    assert replay(_grafted("entropy", [first * 0.2] * 6)) == []


def test_length_runaway_needs_growth_and_clipping():
    logs = stream("demo.jsonl")
    first = logs[0]["completions/mean_length"]
    grown = _grafted("completions/mean_length", [first * 2.2] * 5)
    assert replay(grown) == []  # longer but not cut off: not a runaway
    for e in grown[20:25]:
        e["completions/clipped_ratio"] = 0.4
    assert {s: i for i, s in replay(grown)} == {"length_runaway": 22}


def test_report_marks_findings_on_their_curves():
    from axolotl_grpo_plugin.report.data import collect, findings_by_curve

    records = [{"step": s, "mode": "train", "prompt": "p", "completion": "c", "rewards": {"r": 1.0},
                "reward": 1.0, "length": 3} for s in (1, 2, 3)]
    records.append({"type": "doctor", "step": 3, "signature": "truncation", "message": "m"})
    records.append({"type": "doctor", "step": 2, "signature": "zero_variance", "message": "m"})
    data = collect(records)
    assert data.total == 3 and len(data.findings) == 2
    assert findings_by_curve(data) == {"completion length": [(3, "truncation")],
                                       "reward": [(2, "zero_variance")]}


def test_nan_gradients_fire_at_the_first_step():
    """No CPU run logs a NaN step: at learning_rate 1e20 the next transformers generation
    crashes first ("probability tensor contains either inf, nan"). A NaN logged as TRL's
    logger writes it (the string 'nan' in the recorded stream) fires at once, k = 3 or not."""
    logs = _grafted("grad_norm", ["nan"], at=30)
    assert {s: i for i, s in replay(logs)} == {"nan_gradients": 30}
    logs = _grafted("loss", [float("inf")], at=10)
    assert {s: i for i, s in replay(logs)} == {"nan_gradients": 10}


def test_reward_hacking_fires_when_degenerate_completions_keep_being_reinforced():
    """`observe/degenerate_reinforced` (the audit's families in each batch, observe/trainer_hook.py):
    a share at or above `degenerate_share` for `steps` logging steps names the step."""
    from axolotl_grpo_plugin.observe.doctor import DEGENERATE

    logs = _grafted(DEGENERATE, [0.0] * 10, at=0)
    for e in logs[10:]:
        e[DEGENERATE] = 0.1
    assert replay(logs) == []  # a few stray reinforced oddities are not a hack
    for e in logs[30:34]:
        e[DEGENERATE] = 0.6
    assert {s: i for i, s in replay(logs)} == {"reward_hacking": 32}
    doctor = Doctor()
    found = [f for i, e in enumerate(logs) for f in doctor.observe(e, i + 1)]
    assert found[0].message.startswith("run doctor [reward_hacking]: reward hacking suspected at step 33:")
    assert "axolotl-grpo audit" in found[0].message


def test_the_trainer_metric_counts_only_reinforced_degenerate_completions():
    from axolotl_grpo_plugin.rollouts.scan import step_share

    spam = "<answer>" + ", ".join(map(str, range(30))) + "</answer>"
    good = "<reasoning>three and four</reasoning><answer>7</answer>"
    assert step_share([spam, good, spam, good], ["p"] * 4, [10] * 4, [1.0, 1.0, -1.0, -1.0], 512) == 0.5
    assert step_share([spam, good], ["p"] * 2, [10] * 2, [-1.0, 1.0], 512) == 0.0


def _with_tools(calls: list[float], failures: list[float], error_rate: list[float] | None = None) -> list[dict]:
    """The healthy demo stream as a tool run: TRL's tool metrics (and the plugin's error rate) each step."""
    logs = [dict(e) for e in stream("demo.jsonl")]
    for i, entry in enumerate(logs):
        entry["tools/call_frequency"] = calls[min(i, len(calls) - 1)]
        entry["tools/failure_frequency"] = failures[min(i, len(failures) - 1)]
        if error_rate is not None:
            entry["tools/error_rate"] = error_rate[min(i, len(error_rate) - 1)]
    return logs


def test_a_model_that_never_calls_its_tools_is_diagnosed_with_the_cold_start():
    doctor = Doctor(DoctorSettings())
    findings = [f for i, e in enumerate(_with_tools([0.0], [0.0])) for f in doctor.observe(e, i + 1)]
    (never,) = [f for f in findings if f.signature == "tools_never_called"]
    assert never.step == 3 and "never calls its tools" in never.message and "gsm8k_tools" in never.message
    # calls on one step in three restart the count: no finding
    assert ("tools_never_called" not in
            {s for _, s in replay(_with_tools([0.0, 0.0, 0.5] * 20, [0.0]))})


def test_most_tool_calls_failing_is_diagnosed_from_either_rate():
    calling = [1.5]
    assert {s for _, s in replay(_with_tools(calling, [0.6]))} == {"tool_calls_fail"}  # unknown tool names
    assert {s for _, s in replay(_with_tools(calling, [0.0], [0.7]))} == {"tool_calls_fail"}  # error results
    assert replay(_with_tools(calling, [0.1], [0.2])) == []  # a few failures are the model learning
    # no calls: a stale error rate is not "most calls fail"; the missing calls are the finding
    assert {s for _, s in replay(_with_tools([0.0], [0.0], [0.9]))} == {"tools_never_called"}
