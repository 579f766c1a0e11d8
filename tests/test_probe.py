"""The pre-flight probe: its arithmetic against hand-computed cases, and real probes of the
embedded models (CPU, transformers) with a too-short completion length and a constant reward."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import cli_exit

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.names import load_config
from axolotl_grpo_plugin.probe import arithmetic
from axolotl_grpo_plugin.probe.core import ProbeResult, Sample


REPO = Path(__file__).resolve().parents[1]


# --- arithmetic -------------------------------------------------------------------

def test_zero_variance_binary_matches_hand_computation():
    # p = 0.5, G = 4: all pass 1/16 + all fail 1/16 = 1/8
    assert arithmetic.zero_variance_binary(0.5, 4) == pytest.approx(0.125)
    # p = 0.1, G = 8: 0.1^8 + 0.9^8 = 0.43046722 (+1e-8)
    assert arithmetic.zero_variance_binary(0.1, 8) == pytest.approx(0.43046722 + 1e-8)
    assert arithmetic.zero_variance_binary(0.0, 16) == 1.0


def test_zero_variance_from_samples_is_the_unbiased_estimate():
    # 8 samples, 4 pass: groups of 4 drawn from them are all-equal with 2 x C(4,4)/C(8,4) = 2/70
    values = [1, 1, 1, 1, 0, 0, 0, 0]
    assert arithmetic.zero_variance_chance(values, 4) == pytest.approx(2 / 70)
    # G = n: one group, the observed one, which is mixed
    assert arithmetic.zero_variance_chance(values, 8) == 0.0
    # three reward values, 6 samples {0.5: 3, 1: 2, 0: 1}, G = 2: (3 + 1 + 0) / 15
    assert arithmetic.zero_variance_chance([0.5, 0.5, 0.5, 1, 1, 0], 2) == pytest.approx(4 / 15)
    # G > n: the plug-in p^G + (1-p)^G (extrapolated)
    assert arithmetic.zero_variance_chance([1, 0], 4) == pytest.approx(arithmetic.zero_variance_binary(0.5, 4))
    # many samples: the unbiased estimate converges to the formula
    many = [1] * 300 + [0] * 700
    assert arithmetic.zero_variance_chance(many, 8) == pytest.approx(arithmetic.zero_variance_binary(0.3, 8), rel=0.02)


def _sample(prompt: int, correct: bool, tokens: int = 10) -> Sample:
    value = float(correct)
    return Sample(prompt, tokens, True, {"correct": value}, value, correct, False)


def test_probe_result_shares_over_prompts():
    # prompt 0: 2 of 4 pass; prompt 1: never; prompt 2: always. G = 2:
    # prompt 0: 2 x C(2,2)/C(4,2) = 1/3; prompts 1 and 2: 1. Mean zero-variance = (1/3 + 2) / 3 = 7/9
    samples = ([_sample(0, c) for c in (True, True, False, False)]
               + [_sample(1, False)] * 4 + [_sample(2, True)] * 4)
    result = ProbeResult(config="x", model="m", backend="t", prompts=3, samples_per_prompt=4,
                         dataset_rows=30, max_completion_length=16, budget=32, temperature=1.0,
                         num_generations=2, prompts_per_step=3, correct_reward="correct",
                         reward_names=["correct"], samples=samples, problem_indices=[0, 1, 2], run=read_run({}))
    assert result.pass_rates() == [0.5, 0.0, 1.0]
    assert result.zero_variance_share(2) == pytest.approx(7 / 9)
    from axolotl_grpo_plugin.probe.findings import generation_table, pass_rate_bins

    assert pass_rate_bins(result.pass_rates()) == {"0": 1, "(0, .25)": 0, "[.25, .5)": 0,
                                                   "[.5, .75)": 1, "[.75, 1)": 0, "1": 1}
    row = generation_table(result)[0]
    assert row["G"] == 2 and row["signal_share"] == pytest.approx(2 / 9)
    # 10 steps of 3 prompts: a step is silent when all 3 groups are: (7/9)^3
    assert arithmetic.signal_steps(7 / 9, 3, 10) == pytest.approx(10 * (1 - (7 / 9) ** 3))


def test_recommend_length_removes_the_truncation():
    lengths = [5] * 50 + [40] * 45 + [70] * 5
    ended = [True] * 100
    assert arithmetic.truncation_rate(lengths, ended, 32) == pytest.approx(0.5)
    assert arithmetic.recommend_length(lengths, ended, budget=128) == (96, 0.0)
    # a completion exactly at the limit without EOS was cut; with EOS it fits
    assert arithmetic.truncation_rate([32], [False], 32) == 1.0
    assert arithmetic.truncation_rate([32], [True], 32) == 0.0
    # nothing fits in the budget: the budget and its rate
    assert arithmetic.recommend_length([128] * 4, [False] * 4, budget=128) == (128, 1.0)


# --- real probes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_base() -> Path:
    """The demo's pre-trained tiny base (cached by the demo; built here when absent): unlike
    the untrained embedded model its completions end, so a length can be recommended."""
    from axolotl_grpo_plugin.embedded.pretrain import build_base

    return Path(build_base(REPO / ".cache" / "embedded", progress=False).model_dir)


def _config(tmp_path: Path, base: Path, source: str = "demo.yaml", keys: dict | None = None, **trl) -> Path:
    """configs/`source` on `base` with its data path absolute, `keys` and `trl` keys set."""
    cfg = yaml.safe_load((REPO / "configs" / source).read_text())
    cfg.update(base_model=str(base), **(keys or {}))
    cfg["datasets"][0]["path"] = str(REPO / cfg["datasets"][0]["path"])
    cfg["trl"].update(trl)
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_too_short_completion_length_is_named_with_a_length_that_fixes_it(demo_base, tmp_path, capsys):
    import torch

    from axolotl_grpo_plugin.commands.probe import main

    torch.set_num_threads(1)
    short = _config(tmp_path, demo_base, max_completion_length=8, num_generations=4)
    out = tmp_path / "short.json"
    assert main([str(short), "--prompts", "8", "--budget", "128", "--json", "--no-progress",
                 "--plot", str(tmp_path / "p.png")]) == 0
    data = json.loads(capsys.readouterr().out)
    out.write_text(json.dumps(data))
    assert data["truncation_rate"] > 0.5
    assert not data["verdict"]["learns"]
    assert "max_completion_length 8" in data["verdict"]["line"]
    recommended = data["recommended_max_completion_length"]
    assert recommended > 8 and f"max_completion_length: {recommended}" in data["verdict"]["line"]
    assert (tmp_path / "p.png").stat().st_size > 1000
    # the recommendation, probed again on other prompts and samples, no longer truncates
    fixed = _config(tmp_path, demo_base, max_completion_length=recommended, num_generations=4)
    assert main([str(fixed), "--prompts", "8", "--seed", "1", "--json", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["truncation_rate"] <= 0.10
    assert not any("max_completion_length" in b for b in again["verdict"]["because"])


def test_constant_reward_is_flagged(embedded_model_dir, tmp_path, capsys):
    """The untrained embedded model never writes an answer: correctness is 0 on every sample."""
    import torch

    from axolotl_grpo_plugin.commands.probe import main

    torch.set_num_threads(1)
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(REPO / cfg["datasets"][0]["path"])
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main([str(path), "--prompts", "4", "--budget", "32", "--no-progress"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("correctness_reward_func"))
    assert "constant" in line
    assert "note: reward correctness_reward_func is constant (0)" in text
    # xmlcount pays per tag fragment and varies: not flagged
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("xmlcount_reward_func"))
    assert ("constant" in line) == (float(line.split()[2]) == 0)


def test_write_filtered_keeps_prompts_strictly_between(demo_base, tmp_path, capsys):
    import torch

    from axolotl_grpo_plugin.probe.core import probe
    from axolotl_grpo_plugin.probe.findings import write_filtered

    torch.set_num_threads(1)
    path = _config(tmp_path, demo_base, num_generations=4)
    result = probe(str(path), prompts=12, progress=False)
    out = tmp_path / "filtered.jsonl"
    n = write_filtered(result, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = sum(1 for p in result.pass_rates() if 0 < p < 1)
    assert n == len(rows) == expected
    source = [json.loads(line) for line in
              (REPO / "axolotl_grpo_plugin/data/demo_train.jsonl").read_text().splitlines()]
    for row in rows:
        assert row in source  # raw rows: the config's `type:` reads them again
    assert not math.isnan(result.format_compliance())


def test_bad_flags_exit_2(tmp_path, capsys):
    from axolotl_grpo_plugin.commands.probe import main

    with pytest.raises(SystemExit) as exit_:
        main([str(REPO / "configs" / "smoke.yaml"), "--generations", "1", "--no-progress"])
    assert exit_.value.code == 2
    assert "argument --generations: '1' must be at least 2. Fix: GRPO compares" in capsys.readouterr().err


def test_a_wrong_band_is_named_before_any_prompt_is_sampled(tmp_path, capsys, monkeypatch):
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.probe import core

    monkeypatch.setattr(core, "probe", lambda *a, **k: pytest.fail("the probe ran before --band was checked"))
    argv = [str(REPO / "configs" / "smoke.yaml"), "--band", "0.8", "0.2", "--write-filtered",
            str(tmp_path / "f.jsonl"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --band 0.8 0.2: need 0 <= LO < HI <= 1. Fix: ") and "--band 0.2 0.8" in err
    assert not (tmp_path / "f.jsonl").exists()


@pytest.mark.parametrize(("where", "said"), [
    ("smoke.yaml/p.png", "{tmp}/smoke.yaml is a file, not a folder"),
    ("smoke.yaml/sub/p.png", "cannot make its folder {tmp}/smoke.yaml/sub (Not a directory)"),
    (".", "is a folder"),
    ("link.png", "is a symlink"),
])
def test_an_unwritable_plot_path_is_named_before_any_prompt_is_sampled(tmp_path, capsys, monkeypatch, where, said):
    """`--plot` was written after sampling: a bad path failed then, with a traceback."""
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.probe import core

    monkeypatch.setattr(core, "probe", lambda *a, **k: pytest.fail("the probe ran before --plot was checked"))
    (tmp_path / "smoke.yaml").write_text((REPO / "configs" / "smoke.yaml").read_text())
    (tmp_path / "link.png").symlink_to(tmp_path / "elsewhere.png")
    target = str(tmp_path / where)
    assert main([str(tmp_path / "smoke.yaml"), "--plot", target, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --plot = {target!r}: {said.format(tmp=tmp_path)}. Fix: name a file (not a folder "
                   "or a symlink) in a folder you can write, e.g. --plot probe.png\n")
    assert not (tmp_path / "elsewhere.png").exists()


def test_a_plot_in_a_missing_folder_is_written_and_its_folder_made(tmp_path, capsys, monkeypatch):
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.probe import core

    samples = [_sample(0, True), _sample(0, False), _sample(1, False), _sample(1, False)]
    result = ProbeResult(config="x", model="m", backend="t", prompts=2, samples_per_prompt=2,
                         dataset_rows=2, max_completion_length=16, budget=32, temperature=1.0,
                         num_generations=2, prompts_per_step=1, correct_reward="correct",
                         reward_names=["correct"], samples=samples, problem_indices=[0, 1], run=read_run({}))
    monkeypatch.setattr(core, "probe", lambda *a, **k: result)
    target = tmp_path / "sub" / "dir" / "p.png"
    assert main([str(REPO / "configs" / "smoke.yaml"), "--plot", str(target), "--no-progress", "--verbose"]) == 0
    assert target.read_bytes().startswith(b"\x89PNG") and f"wrote {target}" in capsys.readouterr().out


def test_a_missing_model_is_named_as_evaluate_names_it(tmp_path, capsys):
    from axolotl_grpo_plugin.commands.probe import main

    missing = str(tmp_path / "no-model")
    assert main([str(REPO / "configs" / "smoke.yaml"), "--model", missing, "--no-progress"]) == 2
    assert capsys.readouterr().err == (f"error: --model = {missing!r}: no local folder {missing} (relative paths start "
                                          f"at {Path.cwd()}). Fix: pass a checkpoint directory or a Hub id "
                                          "(org/name) as --model\n")


@pytest.mark.parametrize("percent, cores, torch_threads, expected", [
    (0.0, 2, 2, 2),     # an idle 2-core machine: both (the load average could still say 1.0)
    (50.0, 2, 2, 1),    # one core busy
    (100.0, 2, 2, 1),   # all busy: at least one
    (10.0, 8, 4, 4),    # never above torch's own default
])
def test_probe_threads_follow_the_cores_idle_now(monkeypatch, percent, cores, torch_threads, expected):
    import psutil
    import torch

    from axolotl_grpo_plugin.commands import probe as cli

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: percent)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch, "get_num_threads", lambda: torch_threads)
    assert cli.free_threads() == expected


# --- outputs and flags checked before sampling ----------------------------------------

def _tmp_smoke(tmp_path) -> Path:
    """smoke.yaml with its dataset copied into tmp_path as data.jsonl (an absolute path)."""
    data = tmp_path / "data.jsonl"
    data.write_bytes((REPO / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl").read_bytes())
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["datasets"][0]["path"] = str(data)
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "smoke.yaml"


@pytest.mark.parametrize(("target", "said"), [
    ("data.jsonl", "is its dataset datasets[0].path, which this command reads"),
    ("smoke.yaml", "is the config, which this command reads"),
    ("afile/f.jsonl", "{tmp}/afile is a file, not a folder"),
    ("adir", "is a folder"),
])
def test_write_filtered_is_checked_before_any_prompt_is_sampled(tmp_path, capsys, monkeypatch, target, said):
    """`--write-filtered` naming the training dataset truncated it (and advised training on it);
    a folder or an unwritable path failed with a traceback after the sampling."""
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.probe import core

    monkeypatch.setattr(core, "probe", lambda *a, **k: pytest.fail("the probe ran before --write-filtered was checked"))
    config = _tmp_smoke(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main([str(config), "--write-filtered", str(tmp_path / target), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --write-filtered {tmp_path / target}: {said.format(tmp=tmp_path)}")
    assert "Traceback" not in err and err.count("Fix:") == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_no_prompt_in_the_band_writes_nothing_and_keeps_the_file(tmp_path, capsys, monkeypatch):
    """`--band 0.99 1` selecting 0 rows truncated an existing GOOD.jsonl to 0 bytes."""
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.probe import core

    rows = len((REPO / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl").read_text().splitlines())
    samples = [_sample(0, True), _sample(0, False), _sample(1, False), _sample(1, False)]
    config = _tmp_smoke(tmp_path)
    result = ProbeResult(config="x", model="m", backend="t", prompts=2, samples_per_prompt=2,
                         dataset_rows=rows, max_completion_length=16, budget=32, temperature=1.0,
                         num_generations=2, prompts_per_step=1, correct_reward="correct",
                         reward_names=["correct"], samples=samples, problem_indices=[0, 1], rendered=rows,
                         run=read_run(load_config(config)))
    monkeypatch.setattr(core, "probe", lambda *a, **k: result)
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "kept"}\n')
    argv = [str(config), "--write-filtered", str(good), "--band", "0.99", "1", "--no-progress",
            "--verbose"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert good.read_text() == '{"question": "kept"}\n'
    assert f"wrote nothing to {good} (the file already there is kept)" in out and "point the config" not in out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["filtered"] == {"path": str(good), "rows": 0, "band": [0.99, 1.0],
                                                               "written": False}


@pytest.mark.parametrize(("argv", "said"), [
    (["--batch-size", "0"], "argument --batch-size: '0' must be at least 1. Fix: "),
    (["--batch-size", "-1"], "argument --batch-size: '-1' must be at least 1. Fix: "),
    (["--threads", "0"], "argument --threads: '0' must be at least 1. Fix: "),
    (["--threads", "-2"], "argument --threads: '-2' must be at least 1. Fix: "),
    (["--prompts", "0"], "argument --prompts: '0' must be at least 1. Fix: "),
    (["--device", "nope"], "--device = 'nope': unknown device. Fix: use auto, cpu, cuda or cuda:N"),
])
def test_probe_bad_numbers_are_refused_at_parsing(argv, said, capsys, monkeypatch):
    from axolotl_grpo_plugin.commands import flags
    from axolotl_grpo_plugin.commands.probe import main

    monkeypatch.setattr(flags, "run_quietly", lambda *a, **k: pytest.fail("refused only after parsing"))
    assert cli_exit(main, [str(REPO / "configs" / "smoke.yaml"), *argv]) == 2
    assert f"error: {said}" in capsys.readouterr().err.splitlines()[-1]
