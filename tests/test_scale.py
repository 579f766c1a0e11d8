"""Shipped configs validate (plugin + Axolotl's own schema) for the launch they declare;
the divisibility rule for 1, 3, 7 and 15 training processes; docs and headers match
what the code computes from the configs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from conftest import prepared

from axolotl_grpo_plugin.check.batch import check_batch
from axolotl_grpo_plugin.check.whole import validate_with_axolotl
from axolotl_grpo_plugin.commands.check import main as check_main
from axolotl_grpo_plugin.config.load import declared_processes, read_config
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.plan.layout import MEMORY_HEADER, layout_table, memory_header
from axolotl_grpo_plugin.system.launch import Launch


REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("gsm8k*.yaml"))


def processes_of(path: Path) -> int:
    return declared_processes(path.read_text()) or 1


def test_the_issue_layouts_are_all_shipped():
    declared = {processes_of(p) for p in CONFIGS}
    assert {1, 3, 7, 15} <= declared
    names = {p.stem for p in CONFIGS}
    assert {"gsm8k-1gpu-colocate", "gsm8k-8gpu-zero3", "gsm8k-8gpu-fsdp2", "gsm8k-2node",
            "gsm8k-lora", "gsm8k-qlora", "gsm8k-llama3", "gsm8k-7b"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_validates_with_plugin_and_axolotl(config):
    raw = read_config(config)[0]
    validated, _ = validate_with_axolotl(raw, Launch(processes_of(config), True), read_run(raw))
    assert validated.rl == "grpo"
    assert "axolotl_grpo_plugin.GRPOPlugin" in validated.plugins


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_header_is_complete(config):
    header = config.read_text().split("\nbase_model:")[0]
    for field in ("GPUs:", "Processes:", "Layout:", "Memory:", "Launch:", "Check:"):
        assert f"# {field}" in header, f"{config.name} header lacks {field}"
    assert f"--processes {processes_of(config)}" in header


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_memory_header_is_what_the_planner_says(config):
    match = MEMORY_HEADER.search(config.read_text())
    assert match, f"{config.name}: `# Memory: trainer peak X GiB on GPU (verdict)` missing"
    gpu = match.group(2)
    assert f"# Memory:    {memory_header(config, gpu)}" in config.read_text()


def test_docs_layout_table_matches_the_configs():
    doc = (REPO / "docs" / "scaling.md").read_text()
    assert layout_table(CONFIGS) in doc, (
        "docs/scaling.md is stale: regenerate with "
        "`python -m axolotl_grpo_plugin.plan.layout configs/gsm8k*.yaml`")


def test_check_cli_prints_the_arithmetic(capsys):
    config = REPO / "configs" / "gsm8k-8gpu-zero3.yaml"
    assert check_main([str(config), "--gpu", "--processes", "7"]) == 0
    assert "8 x 2 x 7 = 112 = 7 prompts x 16" in capsys.readouterr().out


def test_check_and_plan_default_to_the_processes_the_config_declares(capsys):
    """`plan` read a config's `# Processes: 7` and `check` checked 1 process: they now agree, and
    `check` says where the count came from; a CPU check stays at 1."""
    config = str(REPO / "configs" / "gsm8k-8gpu-zero3.yaml")
    assert check_main([config, "--gpu"]) == 0
    out = capsys.readouterr().out
    assert "valid for 7 training processes (its `# Processes: 7` comment)" in out and "8 x 2 x 7 = 112" in out
    assert check_main([config, "--gpu", "--processes", "1"]) == 0
    assert "valid for 1 training process on GPU" in capsys.readouterr().out


@pytest.mark.parametrize("text, declared", [
    ("# Title\n# Processes: 7\n\nrl: grpo\n", 7),
    ("# Processes:   15  \nrl: grpo\n", 15),
    ("rl: grpo\n# Processes: 7\n", None),  # past the leading comments: not the header
    ("# Processes: 0\nrl: grpo\n", None),
    ("#\nProcesses: 5\n", None),
    ("# Processes: 7 GPUs\n", None),
])
def test_the_declared_processes_are_read_from_the_leading_comments_only(text, declared):
    assert declared_processes(text) == declared


# --- the divisibility rule -------------------------------------------------------------

def grpo_cfg(mbs: int, gas: int, groups: int, **trl) -> dict:
    return {"rl": "grpo", "micro_batch_size": mbs, "gradient_accumulation_steps": gas,
            "trl": {"num_generations": groups, "max_completion_length": 64, **trl}}


def accepted(mbs: int, gas: int, procs: int, groups: int) -> bool:
    """The rule written independently: TRL needs num_generations | mbs x gas x processes,
    Axolotl 0.19 needs a whole group per process (mbs x gas x processes >= groups x processes)."""
    batch = mbs * gas * procs
    return batch % groups == 0 and batch >= groups * procs


@pytest.mark.parametrize("procs", [1, 3, 7, 15])
def test_divisibility_rule_for_every_small_layout(procs):
    for groups in (2, 4, 8, 16):
        for mbs in range(1, 17):
            for gas in (1, 2, 3, 4, 8):
                problems = check_batch(read_run(grpo_cfg(mbs, gas, groups)), Launch(procs, True))
                assert (not problems) == accepted(mbs, gas, procs, groups), (mbs, gas, procs, groups)


@pytest.mark.parametrize("procs,mbs,gas,groups", [
    (1, 6, 1, 8),    # 6 completions cannot hold a group of 8
    (3, 4, 1, 8),    # the issue's example: 3 GPUs, num_generations 8, 12 completions
    (7, 4, 2, 16),   # 56 is not a multiple of 16
    (15, 2, 1, 16),  # 30 is not a multiple of 16
])
def test_invalid_layout_message_shows_arithmetic_and_fixes_that_work(procs, mbs, gas, groups):
    with pytest.raises(GRPOConfigError) as error:
        prepared(grpo_cfg(mbs, gas, groups), Launch(procs, True))
    problem = error.value.problems[0]
    batch = mbs * gas * procs
    assert f"{mbs} x {gas} x {procs} = {batch}" in problem.message
    suggested = [int(n) for n in re.findall(r"\d+", problem.fix.split("micro_batch_size to one of")[1])]
    for new_mbs in suggested:
        assert accepted(new_mbs, gas, procs, groups)
        assert not check_batch(read_run(grpo_cfg(new_mbs, gas, groups)), Launch(procs, True))
    for new_groups in [int(n) for n in re.findall(r"\d+", problem.fix.split("]")[0].split("[")[1])]:
        assert accepted(mbs, gas, procs, new_groups)
        assert not check_batch(read_run(grpo_cfg(mbs, gas, new_groups)), Launch(procs, True))


def test_too_few_completions_per_process_names_the_accumulation_fix():
    # 4 processes x 2 x 2 = 16 = 2 groups of 8, but Axolotl wants one group per process.
    with pytest.raises(GRPOConfigError) as error:
        prepared(grpo_cfg(2, 2, 8), Launch(4, True))
    problem = error.value.problems[0]
    assert problem.key == "gradient_accumulation_steps"
    assert "set gradient_accumulation_steps to 4" in problem.fix
    assert accepted(2, 4, 4, 8)


def test_explicit_generation_batch_size_is_checked_against_the_launch():
    with pytest.raises(GRPOConfigError, match="multiple of micro_batch_size x training processes"):
        prepared(grpo_cfg(4, 1, 8, generation_batch_size=30), Launch(3, True))
    assert not check_batch(read_run(grpo_cfg(4, 1, 8, generation_batch_size=48)), Launch(3, True))


@pytest.mark.parametrize("schedule", [{"eval_steps": 10}, {"evals_per_epoch": 2}, {"eval_strategy": "epoch"}])
def test_eval_batch_must_hold_whole_groups_when_trl_evaluates(schedule):
    cfg = grpo_cfg(16, 1, 16)
    cfg.update(val_set_size=0.05, eval_batch_size=4, **schedule)
    problems = check_batch(read_run(cfg), Launch(3, True))
    assert problems and problems[0].key == "eval_batch_size"
    assert "4 x 3 = 12" in problems[0].message


@pytest.mark.parametrize("held_out", [{"val_set_size": 0.05}, {"test_datasets": [{"path": "h.jsonl", "type": "humaneval"}]},
                                      {"val_set_size": 0.05, "eval_strategy": "no"}])
def test_held_out_rows_without_a_schedule_do_not_constrain_the_eval_batch(held_out):
    """Axolotl 0.19 sets eval_strategy only from eval_steps/evals_per_epoch/eval_strategy, and
    GRPOConfig checks the eval batch only when it evaluates: the code configs' HumanEval
    `test_datasets` (scored by `evaluate`) were refused for an eval batch nothing uses."""
    cfg = grpo_cfg(16, 1, 16)
    cfg.update(eval_batch_size=8, **held_out)
    assert not check_batch(read_run(cfg), Launch(1, True))


@pytest.mark.parametrize("procs,mbs,gas", [(3, 8, 2), (7, 8, 2), (15, 16, 1)])
def test_multi_process_layouts_pass_axolotl_only_with_the_filled_batch(procs, mbs, gas):
    """Axolotl 0.19 compares per-rank mbs x gas with num_generations x processes (0.21 multiplies
    by the processes); the plugin sets trl.generation_batch_size to TRL's default so the valid
    layout is accepted either way."""
    import inspect

    import axolotl.utils.schemas.validation as axolotl_validation
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    raw, _ = read_config(REPO / "configs" / "gsm8k.yaml")
    raw.update(micro_batch_size=mbs, gradient_accumulation_steps=gas)
    caps = {"bf16": True, "fp8": False, "tf32": True, "compute_capability": "sm_90", "n_gpu": procs}
    env = {"torch_version": "2.13.0"}
    per_rank = "int(mb) * int(ga) * world_size" not in inspect.getsource(axolotl_validation)
    if per_rank:
        with pytest.raises(ValueError, match="effective_gbs"):
            validate_config(DictDefault(copy.deepcopy(raw)), capabilities=caps, env_capabilities=env)
    else:
        validate_config(DictDefault(copy.deepcopy(raw)), capabilities=caps, env_capabilities=env)
    validated, _ = validate_with_axolotl(raw, Launch(procs, True), read_run(raw))
    assert validated.trl.generation_batch_size == mbs * gas * procs


def test_docs_memory_column_matches_the_config_headers():
    doc = (REPO / "docs" / "scaling.md").read_text()
    rows = re.findall(r"^\| [^|]+ \| `(gsm8k[^`]*\.yaml)`[^|]*\|[^|]+\| ([\d.]+) GiB", doc, re.MULTILINE)
    assert len(rows) == len(CONFIGS)
    for name, gib in rows:
        text = (REPO / "configs" / name).read_text()
        match = MEMORY_HEADER.search(text)
        expected = match.group(1) if match else memory_header(REPO / "configs" / name, "L40S").split()[2]
        assert gib == expected, name
