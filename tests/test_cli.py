"""One CLI: `axolotl-grpo --version`, `axolotl-grpo help [CMD]`, every usage line names
`axolotl-grpo CMD`, one meaning per flag (old spellings still work, with a note), and
`configs DIR` keeps the configs' comments."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import yaml

from axolotl_grpo_plugin import commands as cli
from axolotl_grpo_plugin.commands import flags


def test_version_names_the_plugin_axolotl_and_trl(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"axolotl-grpo {version('axolotl-grpo-plugin')} ")
    assert f"Axolotl {version('axolotl')}" in out and f"TRL {version('trl')}" in out


def test_help_alone_lists_the_commands(capsys):
    assert cli.main(["help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_usage_line_is_axolotl_grpo_cmd(name, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["help", name])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: axolotl-grpo {name} ")


def test_an_unknown_command_is_bad_input(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_plan_takes_a_gpu_type_and_the_old_gpu_spelling_with_a_note(capsys):
    from axolotl_grpo_plugin.commands.plan import parser

    new = parser().parse_args(["c.yaml", "--gpu-type", "H100", "--gpu-type", "A100-80GB"])
    old = parser().parse_args(["c.yaml", "--gpu", "H100", "--gpu", "A100-80GB"])
    assert new.gpu_type == old.gpu_type == ["H100", "A100-80GB"]
    assert capsys.readouterr().err.count("note: --gpu is now --gpu-type") == 2


def test_demo_writes_json_with_json_file_and_still_reads_the_old_json_path(capsys):
    from axolotl_grpo_plugin.commands.demo import _parser

    assert _parser().parse_args(["--json-file", "f.json"]).json_file == "f.json"
    assert _parser().parse_args(["--json", "f.json"]).json_file == "f.json"
    assert "note: --json is now --json-file" in capsys.readouterr().err
    assert _parser().parse_args([]).json_file is None


def test_report_writes_its_html_with_html_and_still_reads_out(tmp_path, capsys):
    from axolotl_grpo_plugin.commands.report import main

    missing = tmp_path / "no-run"
    for flag in ("--html", "--out", "-o"):
        assert main([str(missing), flag, str(tmp_path / "r.html")]) == 2  # parsed; then no output_dir
    assert capsys.readouterr().err.count("is now --html") == 2


def test_configs_keeps_every_comment_and_makes_paths_absolute(tmp_path):
    from axolotl_grpo_plugin.configs import export
    from axolotl_grpo_plugin.system.paths import packaged_config

    for path in export(tmp_path):
        source = packaged_config(path.stem).read_text()
        written = path.read_text()
        assert [line.split("#", 1)[1] for line in written.splitlines() if "#" in line] == \
            [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
        cfg, packaged = yaml.safe_load(written), yaml.safe_load(source)
        for dataset, before in zip(cfg["datasets"], packaged["datasets"]):
            local = before["path"].startswith(("axolotl_grpo_plugin/", "./outputs/", "outputs/"))
            assert dataset["path"].startswith("/") if local else dataset["path"] == before["path"]  # a Hub id stays
        assert cfg["output_dir"].startswith(str(tmp_path))


def test_configs_chain_the_smollm2_pipeline_inside_the_folder(tmp_path):
    """The rejection round reads what the cold start and `evaluate --keep-replies` wrote: after
    export its model and data are the exported cold start's output, under the same folder."""
    from axolotl_grpo_plugin.configs import export

    export(tmp_path, ["smollm2-gsm8k-sft", "smollm2-gsm8k-sft-rs"])
    sft, rs = (yaml.safe_load((tmp_path / f"{n}.yaml").read_text()) for n in ("smollm2-gsm8k-sft", "smollm2-gsm8k-sft-rs"))
    assert rs["base_model"] == sft["output_dir"] == str((tmp_path / "outputs/smollm2-gsm8k-sft").resolve())
    assert rs["datasets"][0]["path"] == str((tmp_path / "outputs/smollm2-gsm8k-rs/replies.jsonl").resolve())
    assert sft["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a Hub id: --base-model overrides it


def test_configs_into_a_file_names_out_and_the_fix(tmp_path, capsys):
    from axolotl_grpo_plugin.commands.configs import main

    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    with pytest.raises(SystemExit) as done:
        main([str(existing)])
    assert done.value.code == 2
    assert f"error: OUT {existing} is a file, not a folder: name a folder" in capsys.readouterr().err
    assert main([str(existing / "sub")]) == 2  # under a file: the folder cannot be made
    err = capsys.readouterr().err
    assert err.startswith(f"error: OUT {existing / 'sub'}: cannot write the configs there (")
    assert err.endswith("name a folder you can write to\n") and err.count("\n") == 1
    assert existing.read_text() == "mine"


def test_check_gpu_warns_when_vllm_is_not_installed_here(repo_root, capsys, monkeypatch):
    import importlib.util

    from axolotl_grpo_plugin.commands import check as check

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed in this environment")
    monkeypatch.chdir(repo_root)
    assert check.main(["configs/gsm8k.yaml", "--gpu", "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert "vLLM is not installed here" in out and out.rstrip().splitlines()[-2].startswith("OK:")


@pytest.mark.parametrize("omp", [None, "2"])
def test_check_cpu_says_when_the_trainer_would_get_one_thread(omp, repo_root, embedded_model_dir, tmp_path, capsys,
                                                             monkeypatch):
    """A GRPO config: the plugin gives its trainer every core (training/threads.py), so no warning. An SFT
    config does not run the plugin: the warning tells how to launch it on every core."""
    import yaml

    from axolotl_grpo_plugin.commands import check as check
    from axolotl_grpo_plugin.system import launch

    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(launch, "available_cores", lambda: 4)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert check.main(["configs/smoke.yaml", "--cpu", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "OMP_NUM_THREADS" not in out, out
    assert out.rstrip().splitlines()[-2].startswith("OK:")
    sft = tmp_path / "sft.yaml"
    sft.write_text(yaml.safe_dump({
        "base_model": str(embedded_model_dir), "datasets": [{"path": "axolotl_grpo_plugin/data/gsm8k_sample.jsonl", "type": "alpaca"}],
        "sequence_len": 256, "micro_batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-5,
        "output_dir": str(tmp_path / "out"), "bf16": False, "fp16": False}))
    assert check.main([str(sft), "--cpu", "--offline"]) == 0
    out = capsys.readouterr().out
    assert ("`OMP_NUM_THREADS=4 axolotl train CONFIG`" in out) == (omp is None), out
    assert out.rstrip().splitlines()[-1].startswith("OK:")
    sft_cfg = yaml.safe_load(sft.read_text())  # with CPUThreadsPlugin listed the run gets every core: no warning
    sft.write_text(yaml.safe_dump({**sft_cfg, "plugins": ["axolotl_grpo_plugin.CPUThreadsPlugin"]}))
    assert check.main([str(sft), "--cpu", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "OMP_NUM_THREADS" not in out and out.rstrip().splitlines()[-1].startswith("OK:"), out


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    """`axolotl-grpo CMD ... | head`: the command's output meets a closed pipe; that ends it quietly."""
    import subprocess
    import sys

    (tmp_path / "loud_command.py").write_text("def main(argv):\n    for _ in range(100_000):\n"
                                              "        print('a line of a long report')\n")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from axolotl_grpo_plugin import commands as cli; "
              "cli.COMMANDS['loud'] = ('loud_command', ''); sys.exit(cli.main(['loud']))")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"a line of a long report\n"
    proc.stdout.close()  # what `head -1` does
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("command, flag, minimum", [
    ("demo", "--steps", 1), ("report", "--max-rollouts", 1), ("score", "--batch-size", 1),
    ("plan", "--processes", 1), ("plan", "--prompt-tokens", 1), ("check", "--processes", 1),
    ("check", "--gpus", 0), ("audit", "--prompts", 1), ("probe", "--prompts", 1), ("probe", "--generations", 2),
    ("probe", "--threads", 1), ("evaluate", "--samples", 0), ("evaluate", "--limit", 1),
    ("evaluate", "--max-new-tokens", 1), ("evaluate", "--batch-size", 1), ("stats", "--top", 1),
    ("gpu-check", "--steps", 1),
])
def test_every_whole_number_flag_is_refused_below_its_minimum_while_parsing(command, flag, minimum, capsys):
    """One check for them all (`flags.at_least`): the flag, the value and a fix, exit 2 before any
    work (the config named does not even exist); the minimum itself is accepted by the same check."""
    with pytest.raises(SystemExit) as done:
        cli.main([command, *([] if command == "gpu-check" else ["no-such-config.yaml"]),
                  *(["--input", "x"] if command == "score" else []), flag, str(minimum - 1)])
    assert done.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert f"error: argument {flag}: '{minimum - 1}' must be at least {minimum}. Fix: " in err, err
    assert flags.at_least(minimum)(str(minimum)) == minimum
