"""A pip user's first hour (issue 22): the demo checks its inputs before pre-training and
keeps its output short, third-party chatter stays off the screen, `evaluate` scores as fast
as the demo does, and the reward plot says what it shows."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from axolotl_grpo_plugin.system.quiet import captured_stderr


# --- quiet output ---------------------------------------------------------------------------

def test_captured_stderr_hides_c_level_and_python_writes(capfd, tmp_path):
    log = tmp_path / "noise.log"
    with captured_stderr(log):
        os.write(2, b"Failed to load torchao .so\n")  # what a C extension does
        print("UserWarning: offline", file=sys.stderr)
    print("verdict", file=sys.stderr)
    err = capfd.readouterr().err
    assert err == "verdict\n"
    assert "Failed to load torchao" in log.read_text() and "UserWarning" in log.read_text()


def test_captured_stderr_shows_the_tail_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), captured_stderr():
        os.write(2, b"the reason it failed\n")
        raise RuntimeError("boom")
    assert "the reason it failed" in capfd.readouterr().err


def test_captured_stderr_disabled_is_verbose(capfd):
    with captured_stderr(enabled=False):
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_progress_bars_reach_the_screen_while_stderr_is_captured(capfd, tmp_path):
    from axolotl_grpo_plugin.system.quiet import terminal

    log = tmp_path / "noise.log"
    with captured_stderr(log):
        os.write(2, b"chatter\n")
        print("progress 3/8", file=terminal(), flush=True)
    assert terminal() is sys.stderr  # the capture is over: back to the plain stream
    assert capfd.readouterr().err == "progress 3/8\n"
    assert log.read_text() == "chatter\n"


def test_a_tool_with_an_unwritable_cache_shows_everything_and_still_runs(tmp_path, capfd, monkeypatch):
    from axolotl_grpo_plugin.commands.flags import run_quietly

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(blocker / "cache"))
    assert run_quietly("evaluate", False, lambda: os.write(2, b"chatter\n")) == 0
    out, err = capfd.readouterr()
    assert err == "chatter\n" and "full log" not in out


def test_a_run_time_failure_names_the_log(tmp_path, capfd, monkeypatch):
    from axolotl_grpo_plugin.commands.flags import run_quietly
    from axolotl_grpo_plugin.errors import EXIT_FAILED, PluginError

    class Failed(PluginError):
        exit_code = EXIT_FAILED

    def work():
        os.write(2, b"CUDA out of memory in a library\n")
        raise Failed("the probe failed: RuntimeError: boom")

    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    assert run_quietly("probe", False, work) == EXIT_FAILED
    log = tmp_path / "cache" / "logs" / "probe.log"
    assert capfd.readouterr().err == f"error: the probe failed: RuntimeError: boom\nfull log: {log}\n"
    assert "CUDA out of memory" in log.read_text()


def _chatty(real):
    """`real` (a tool's core function) preceded by what torchao writes at import time."""
    def call(*args, **kwargs):
        os.write(2, b"Failed to load torchao/_C_mxfp8.so\n")
        return real(*args, **kwargs)
    return call


def test_evaluate_keeps_chatter_in_its_log_and_names_the_log(repo_root, embedded_model_dir, tmp_path,
                                                            capfd, monkeypatch):
    from axolotl_grpo_plugin.commands.evaluate import main
    from axolotl_grpo_plugin.evaluate import core

    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(core, "evaluate", _chatty(core.evaluate))
    argv = [str(repo_root / "configs/smoke.yaml"), "--model", str(embedded_model_dir), "--dataset",
            str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl"), "--limit", "2",
            "--samples", "0", "--max-new-tokens", "4", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    log = Path(out.strip().splitlines()[-1].removeprefix("full log: "))
    assert log == tmp_path / "cache" / "logs" / "evaluate.log"
    assert "Failed to load torchao" in log.read_text() and "Failed to load" not in err
    assert "evaluating" in err  # the progress bar is ours: shown
    assert main([*argv, "--verbose"]) == 0
    out, err = capfd.readouterr()
    assert "Failed to load torchao" in err and "full log" not in out


def test_evaluate_errors_stay_one_line_under_the_capture(repo_root, tmp_path, capfd, monkeypatch):
    from axolotl_grpo_plugin.commands.evaluate import main
    from axolotl_grpo_plugin.evaluate import core

    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(core, "evaluate", _chatty(core.evaluate))
    assert main([str(repo_root / "configs/smoke.yaml"), "--model", "./no/such/model"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: --model = './no/such/model': no local folder") and "\n" not in err


def test_probe_keeps_chatter_in_its_log(repo_root, embedded_model_dir, tmp_path, capfd, monkeypatch):
    import yaml

    from axolotl_grpo_plugin.commands import probe as probe_main
    from axolotl_grpo_plugin.probe import core as probe_core

    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe_core, "probe", _chatty(probe_core.probe))
    cfg = yaml.safe_load((repo_root / "configs/smoke.yaml").read_text())
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert probe_main.main([str(path), "--prompts", "2", "--budget", "32", "--threads", "1"]) == 0
    out, err = capfd.readouterr()
    log = tmp_path / "cache" / "logs" / "probe.log"
    assert out.strip().splitlines()[-1] == f"full log: {log}"
    assert "Failed to load torchao" in log.read_text() and "Failed to load" not in err
    assert "probe: sampling" in err


# --- the demo -------------------------------------------------------------------------------

def test_demo_stops_on_bad_inputs_before_pretraining(tmp_path, monkeypatch):
    from axolotl_grpo_plugin.demo import run

    monkeypatch.setattr(run, "build_base", lambda *a, **k: pytest.fail("pre-trained despite bad inputs"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(run.DemoInputError) as err:
        run.run_demo(output_dir=blocker / "out", base_out=tmp_path / "base")
    assert err.value.problems[0].key == "--output-dir" and "not writable" in err.value.problems[0].message


def test_demo_inputs_resolve_to_the_packaged_data(tmp_path):
    from axolotl_grpo_plugin.demo import DEMO_CONFIG, run

    cfg = run.check_inputs(DEMO_CONFIG, tmp_path / "out", tmp_path / "base")
    assert all(Path(d["path"]).is_file() and Path(d["path"]).is_absolute() for d in cfg["datasets"])


def test_the_demo_command_prints_each_stage_as_it_starts(tmp_path, monkeypatch, capsys):
    """run_demo hands its stage lines to the command (a library does not print): the user still
    sees them, in order, before the table, with the train log's path."""
    from types import SimpleNamespace

    from axolotl_grpo_plugin.commands import demo as command
    from axolotl_grpo_plugin.demo import run

    out = tmp_path / "out"
    monkeypatch.setattr(run, "check_inputs", lambda *a: {"max_steps": 2})
    monkeypatch.setattr(run, "pick_device", lambda device: "cpu")
    monkeypatch.setattr(run, "build_base_quietly", lambda *a: SimpleNamespace(model_dir=tmp_path / "base"))
    monkeypatch.setattr(run, "write_run_config", lambda *a: tmp_path / "run.yaml")
    monkeypatch.setattr(run.heldout, "evaluate", lambda *a, **k: (None, None))
    monkeypatch.setattr(run, "train", lambda *a, **k: "")
    monkeypatch.setattr(run.curves, "log_history", lambda output_dir: [])
    monkeypatch.setattr(command, "table", lambda result: "TABLE")
    out.mkdir()
    assert command.main(["--output-dir", str(out), "--base-dir", str(tmp_path / "base")]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[:3] == [
        "Scoring the base on the held-out problems (greedy, and sampled for pass@k) while Axolotl starts...",
        f"Training with `axolotl train` (full log: {out / 'train.log'})",
        "Scoring the trained model on the held-out problems (greedy, and sampled for pass@k)..."]
    assert "TABLE" in shown


def test_demo_training_shows_a_bar_and_logs_everything(tmp_path, monkeypatch, capsys):
    """Without --verbose the 2 KB metric dicts go to the log file, the screen gets one bar."""
    from axolotl_grpo_plugin.demo import run

    fake = tmp_path / "axolotl"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys
        if not os.path.isfile(sys.argv[2]):  # Axolotl's own check on CONFIG, from the cwd it is given
            sys.exit("Path " + sys.argv[2] + " does not exist")
        for step in range(3):
            print({{'loss': '0.0', 'reward': str(step / 2), 'rewards/x/mean': '0.1'}})
        print("noisy third-party warning")
        """))
    fake.chmod(0o755)
    monkeypatch.setattr(run.shutil, "which", lambda *a, **k: str(fake))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.yaml").write_text("{}")
    monkeypatch.chdir(tmp_path)
    run.train(Path("out/run.yaml"), tmp_path / "train.log", echo=False, steps=3)  # relative, as the CLI gives
    shown = capsys.readouterr()
    assert "3/3" in shown.out + shown.err and "'loss'" not in shown.out
    assert "noisy third-party warning" not in shown.out + shown.err
    logged = (tmp_path / "train.log").read_text()
    assert logged.count("'loss'") == 3 and "noisy third-party warning" in logged


def test_demo_cache_is_not_the_working_directory(monkeypatch, tmp_path):
    from axolotl_grpo_plugin.system import paths

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "c"))
    assert paths.embedded_dir() == (tmp_path / "c" / "embedded").resolve()
    monkeypatch.delenv(paths.CACHE_ENV)
    monkeypatch.setattr(paths, "checkout_root", lambda: None)  # as when installed
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.embedded_dir() == tmp_path / "xdg" / "axolotl-grpo-plugin" / "embedded"


# --- evaluate defaults ----------------------------------------------------------------------

def test_evaluate_default_batch_is_the_demos():
    from axolotl_grpo_plugin.commands.evaluate import build_parser
    from axolotl_grpo_plugin.sampling.models import DEFAULT_BATCH_SIZE

    args = build_parser().parse_args(["c.yaml", "--model", "m"])
    assert args.batch_size == DEFAULT_BATCH_SIZE == 64


def test_tiny_model_generates_on_one_cpu_thread():
    import torch

    from axolotl_grpo_plugin.sampling.generation import TINY_MODEL_PARAMETERS, threads_for

    previous = torch.get_num_threads()
    tiny, large = torch.nn.Linear(4, 4), torch.nn.Module()
    large.weight = torch.nn.Parameter(torch.empty(TINY_MODEL_PARAMETERS, dtype=torch.uint8), requires_grad=False)
    torch.set_num_threads(2)
    try:
        with threads_for(tiny, torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with threads_for(large, torch.device("cpu")):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


# --- the demo's plot ------------------------------------------------------------------------

def history(steps: int = 12) -> list[dict]:
    names = ("correctness", "int", "strict_format", "soft_format", "xmlcount")
    return [{"reward": i / 10, **{f"rewards/{n}_reward_func/mean": i / 50 for n in names}} for i in range(steps)]


def test_plot_says_what_is_sampled_marks_maxima_and_keeps_legends_off_the_data():
    from axolotl_grpo_plugin.demo import curves

    fig = curves.figure(history(), temperature=0.7)
    text = " ".join(t.get_text() for t in fig.texts)
    assert "temperature 0.7" in text and "greedy" in text
    top, bottom = fig.axes
    labels = " | ".join(a.get_text() for ax in (top, bottom) for a in ax.texts)
    assert "max 3.75: total" in labels and "max 2: correctness" in labels and "max 0.25: soft_format" in labels
    assert "max 0.5: int, strict_format, xmlcount" in labels
    for ax in (top, bottom):
        anchor = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
        assert anchor.x0 >= 1.0, "the legend sits on the data"


def test_plot_is_a_png(tmp_path):
    from axolotl_grpo_plugin.demo import curves

    path = curves.plot(history(), tmp_path / "curves.png", temperature=0.7)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- why `axolotl train` cannot end on our message ------------------------------------------

def test_plugins_cannot_take_over_axolotl_train(monkeypatch):
    """README, "Check a config": a plugin could only speak last under `axolotl train` by
    running in the launcher, and Axolotl 0.19 lets no plugin command replace `train`. If this
    fails, Axolotl changed: the plugin could then validate before accelerate starts."""
    from importlib.metadata import EntryPoint

    import click
    from axolotl.cli import plugins
    from axolotl.cli.main import cli

    ours = EntryPoint(name="train", value="axolotl_grpo_plugin.commands:main", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ours] if group == plugins.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(cli, "_plugin_commands", None)
    command = cli.get_command(click.Context(cli), "train")
    assert not isinstance(command, plugins.LazyCommand) and command.callback.__module__ == "axolotl.cli.main"
