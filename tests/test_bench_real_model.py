"""bench/bench_real_model.py's stage chain, with training, scoring and sampling replaced by stubs
that write what the real ones write: which model trains from which, which rows a rejection round
reads, what a re-run skips, and which flag combinations it refuses before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import bench_module


REPO = Path(__file__).resolve().parents[1]


def load_bench():
    return bench_module("bench_real_model")


@pytest.fixture
def bench(monkeypatch, tmp_path):
    module = load_bench()
    calls: list[tuple] = []

    def train(config: Path, out: Path, log_path: Path) -> float:
        cfg = yaml.safe_load(config.read_text())
        rows = [Path(d["path"]).name for d in cfg.get("datasets") or [] if d.get("type") == "chat_template"]
        calls.append(("train", out.name, Path(cfg["base_model"]).name, rows))
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"")
        return 0.0

    def score(config: Path, model: Path, args) -> dict:
        calls.append(("score", model.name))
        seed = int(model.name.rsplit("-s", 1)[1]) if "grpo" in model.name else 0
        return {"strict_format": 0.9 + seed / 100, "soft_format": 1.0, "correct_greedy": 0.0,
                "pass_at_k": {}, "reward_mean": 1.5 + seed / 10}

    def rejection_sample(config: Path, model: Path, args, path: Path, round_: int) -> dict:
        calls.append(("rows", path.name, model.name, round_))
        path.write_text("{}\n")
        return {"kept": 1}

    monkeypatch.setattr(module, "train", train)
    monkeypatch.setattr(module, "score", score)
    monkeypatch.setattr(module, "rejection_sample", rejection_sample)
    monkeypatch.setattr(module, "plots", lambda out, results, curves: [])

    def run(*flags: str, out: Path = tmp_path / "out") -> list[tuple]:
        calls.clear()
        module.main(["--model", str(tmp_path / "smollm2"), "--heldout", str(tmp_path / "test.jsonl"),
                     "--out", str(out), *flags])
        return [c for c in calls if c[0] != "score"]

    run.out = tmp_path / "out"
    run.module = module
    run.calls = calls
    return run


def test_last_seeds_run_only_at_the_last_level_and_each_round_reads_the_previous_grpo_model(bench):
    done = bench("--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--last-seeds", "0", "1", "2")
    assert done == [
        ("train", "sft", "smollm2", []),
        ("train", "grpo-s0", "sft", []),
        ("rows", "rl-rs.jsonl", "grpo-s0", 1),
        ("train", "rl-sft", "sft", ["rl-rs.jsonl"]),
        ("train", "rl-grpo-s0", "rl-sft", []),
        ("rows", "rl2-rs.jsonl", "rl-grpo-s0", 2),
        ("train", "rl2-sft", "sft", ["rl2-rs.jsonl"]),
        ("train", "rl2-grpo-s0", "rl2-sft", []),
        ("train", "rl2-grpo-s1", "rl2-sft", []),
        ("train", "rl2-grpo-s2", "rl2-sft", []),
    ]
    scored = [c[1] for c in bench.calls if c[0] == "score"]
    assert scored == ["smollm2", "sft", "grpo-s0", "rl-sft", "rl-grpo-s0", "rl2-sft",
                      "rl2-grpo-s0", "rl2-grpo-s1", "rl2-grpo-s2"]
    summary = json.loads((bench.out / "summary.json").read_text())
    assert summary["grpo_levels"]["rl2-grpo"]["seeds"] == [0, 1, 2]
    assert summary["grpo_levels"]["rl2-grpo"]["reward_min"] == pytest.approx(1.5)
    assert summary["grpo_levels"]["rl2-grpo"]["reward_max"] == pytest.approx(1.7)
    assert summary["grpo_levels"]["rl-grpo"]["seeds"] == [0]
    table = (bench.out / "summary.md").read_text()
    assert "rl2-grpo: 3 seed(s) [0, 1, 2], mean total reward 1.600 (1.500-1.700), strict format 90.0%-92.0%" in table
    assert "| rl2-grpo-s2 | 92.0% | 100.0% | 0.0% | - | - | 1.700 | - | - |" in table and "nan" not in table  # no pass@k, no tools

    assert bench("--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--last-seeds", "0", "1", "2") == []
    assert not [c for c in bench.calls if c[0] == "score"], "a re-run scores nothing again"


def test_rejection_rounds_chain_each_sft_from_the_last_and_grpo_starts_from_the_end(bench):
    done = bench("--rejection-rounds", "2", "--seeds", "0", "1", "--last-seeds", "1")
    assert done == [
        ("train", "sft", "smollm2", []),
        ("rows", "rs.jsonl", "sft", 1),
        ("train", "sft2", "sft", ["rs.jsonl"]),
        ("rows", "rs2.jsonl", "sft2", 2),
        ("train", "sft3", "sft2", ["rs2.jsonl"]),
        ("train", "grpo-s1", "sft3", []),
    ]


def test_rl_all_rows_trains_round_two_on_both_rounds_rows(bench):
    done = bench("--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--rl-all-rows")
    assert ("train", "rl2-sft-all", "sft", ["rl-rs.jsonl", "rl2-rs.jsonl"]) in done
    assert ("train", "rl2-grpo-all-s0", "rl2-sft-all", []) in done


def test_a_third_stage_seed_that_no_level_runs_is_refused_before_any_work(bench):
    with pytest.raises(SystemExit, match=r"--rl-rows-from 0: round 1 .*/grpo-s0, .*add 0 to --seeds"):
        bench("--seeds", "1", "--rl-rows-from", "0")
    (bench.out / "grpo-s0").mkdir()
    (bench.out / "grpo-s0" / "model.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"--rl-rows-from 0: round 2 .*/rl-grpo-s0, .*add 0 to --seeds"):
        bench("--seeds", "1", "--rl-rows-from", "0", "--rl-rounds", "2")
    assert bench.calls == [], "nothing ran"


def test_num_generations_grows_each_grpo_group_at_the_configs_prompts_a_step(bench):
    shipped = yaml.safe_load((REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml").read_text())
    bench("--seeds", "0", "--num-generations", "8")
    grpo = yaml.safe_load((bench.out / "grpo-s0.yaml").read_text())
    sft = yaml.safe_load((bench.out / "sft.yaml").read_text())
    assert grpo["trl"]["num_generations"] == 8
    prompts = shipped["micro_batch_size"] * shipped["gradient_accumulation_steps"] // shipped["trl"]["num_generations"]
    assert grpo["micro_batch_size"] * grpo["gradient_accumulation_steps"] == prompts * 8
    assert grpo["micro_batch_size"] == shipped["micro_batch_size"]
    assert grpo["trl"]["reward_funcs"] == shipped["trl"]["reward_funcs"], "the rest of trl: is kept"
    assert "num_generations" not in sft.get("trl", {}), "SFT is not touched"


def test_a_group_size_the_batch_cannot_hold_is_refused_before_any_work(bench):
    with pytest.raises(SystemExit, match=r"--num-generations 3: 2 prompts a step x 3 .*micro_batch_size 4"):
        bench("--seeds", "0", "--num-generations", "3")
    assert bench.calls == [], "nothing ran"


def test_a_resumed_run_may_drop_the_seed_whose_models_exist(bench):
    """Round k's rows come from an existing GRPO model: --seeds need not name its seed again."""
    bench("--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--last-seeds")
    done = bench("--seeds", "1", "--rl-rows-from", "0", "--rl-rounds", "2", "--last-seeds", "1")
    assert done == [("train", "grpo-s1", "sft", []), ("train", "rl-grpo-s1", "rl-sft", []),
                    ("train", "rl2-grpo-s1", "rl2-sft", [])]


def saved_chat_rows(tmp_path) -> Path:
    rows = tmp_path / "saved-rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}], "correct": True}) + "\n")
    return rows


def test_saved_rows_run_the_last_level_alone(bench, tmp_path):
    """--rl-rows: the third stage's SFT reads an earlier run's rows; no GRPO or sampling before it."""
    rows = saved_chat_rows(tmp_path)
    done = bench("--rl-rows", str(rows), "--seeds", "0", "1", "2")
    assert done == [
        ("train", "sft", "smollm2", []),
        ("train", "rl-sft", "sft", ["rl-rs.jsonl"]),
        ("train", "rl-grpo-s0", "rl-sft", []),
        ("train", "rl-grpo-s1", "rl-sft", []),
        ("train", "rl-grpo-s2", "rl-sft", []),
    ]
    assert (bench.out / "rl-rs.jsonl").read_text() == rows.read_text()
    assert json.loads((bench.out / "rl-rs.json").read_text())["kept_correct"] == 1
    summary = json.loads((bench.out / "summary.json").read_text())
    assert list(summary["results"]) == ["base", "sft", "rl-sft", "rl-grpo-s0", "rl-grpo-s1", "rl-grpo-s2"]
    assert summary["grpo_levels"]["rl-grpo"]["seeds"] == [0, 1, 2]


def test_saved_rows_of_round_1_go_on_to_round_2(bench, tmp_path):
    """--rl-rows with --rl-rounds 2: round 1's rows from the file, round 2's sampled from round
    1's GRPO seed --rl-rows-from, the seed spread at the last level only."""
    rows = saved_chat_rows(tmp_path)
    done = bench("--rl-rows", str(rows), "--rl-rows-from", "0", "--rl-rounds", "2", "--seeds", "0",
                 "--last-seeds", "0", "1", "--score-last-only")
    assert done == [
        ("train", "sft", "smollm2", []),
        ("train", "rl-sft", "sft", ["rl-rs.jsonl"]),
        ("train", "rl-grpo-s0", "rl-sft", []),
        ("rows", "rl2-rs.jsonl", "rl-grpo-s0", 2),
        ("train", "rl2-sft", "sft", ["rl2-rs.jsonl"]),
        ("train", "rl2-grpo-s0", "rl2-sft", []),
        ("train", "rl2-grpo-s1", "rl2-sft", []),
    ]
    assert [c[1] for c in bench.calls if c[0] == "score"] == ["rl2-sft", "rl2-grpo-s0", "rl2-grpo-s1"]


def test_saved_rows_are_checked_before_any_work(bench, tmp_path, capsys):
    not_rows = tmp_path / "notes.jsonl"
    not_rows.write_text('{"question": "q"}\n')
    for flags, says in [(["--rl-rows", str(not_rows)], "not a file of chat rows"),
                        (["--rl-rows", str(tmp_path / "missing.jsonl")], "missing.jsonl: not a file of chat rows"),
                        (["--rl-rows", str(saved_chat_rows(tmp_path)), "--rl-rounds", "2"],
                         "round 2's rows come from a GRPO run of round 1: pass --rl-rows-from S")]:
        with pytest.raises(SystemExit):
            bench(*flags)
        assert says in capsys.readouterr().err
    assert bench.calls == [], "nothing ran"


@pytest.mark.parametrize(("flags", "scored"), [
    (["--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--last-seeds", "0", "1"],
     ["rl2-sft", "rl2-grpo-s0", "rl2-grpo-s1"]),
    (["--seeds", "0", "--rl-rows-from", "0", "--rl-rounds", "2", "--rl-all-rows"], ["rl2-sft-all", "rl2-grpo-all-s0"]),
    (["--rejection-rounds", "1", "--seeds", "0"], ["sft2", "grpo-s0"]),
    (["--seeds", "0"], ["sft", "grpo-s0"]),
])
def test_score_last_only_scores_the_last_sft_model_and_its_grpo_runs(bench, flags, scored):
    bench(*flags, "--score-last-only")
    assert [c[1] for c in bench.calls if c[0] == "score"] == scored
    assert bench(*flags) == [], "every model trained the first time"
    later = [c[1] for c in bench.calls if c[0] == "score"]
    assert later and "smollm2" in later and not set(later) & set(scored), "a re-run scores the rest"


def _saved_rows_module():
    return bench_module("saved_rows")


def test_replies_saved_without_the_questions_rebuild_the_same_rows(tmp_path):
    """bench/saved_rows.py: the rows a rejection round wrote -> replies keyed by question (no
    GSM8K text) -> the same rows again, prompted by the GRPO config's own transform."""
    from axolotl_grpo_plugin.transforms.gsm8k import build_prompt

    saved_rows = _saved_rows_module()
    train = [{"question": f"Tom has {n} apples and buys {n} more. How many?", "answer": f"#### {2 * n}"}
             for n in range(3, 9)] + [{"question": "How many?", "answer": "#### 1"}]  # a suffix of the others
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    chosen = [train[4], train[1], train[6]]
    rows = [{"messages": [*build_prompt(r["question"]), {"role": "assistant", "content": f"<answer>{i}</answer>"}],
             "correct": i == 1} for i, r in enumerate(chosen)]
    (tmp_path / "rs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    assert saved_rows.main([str(tmp_path / "rs.jsonl"), "--train-data", str(tmp_path / "train.jsonl"),
                            "--out", str(tmp_path / "replies.jsonl")]) == 0
    replies = (tmp_path / "replies.jsonl").read_text()
    assert "apples" not in replies and saved_rows.is_replies_file(tmp_path / "replies.jsonl")
    assert json.loads(replies.splitlines()[2])["question_sha1"] == saved_rows.question_key(train[6]["question"])

    rebuilt = saved_rows.rebuild_rows(tmp_path / "replies.jsonl", tmp_path / "train.jsonl",
                                      REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml", tmp_path / "rows.jsonl")
    assert saved_rows.read_jsonl(rebuilt) == rows

    (tmp_path / "other.jsonl").write_text(json.dumps(train[0]) + "\n")
    with pytest.raises(SystemExit, match=r"3 of 3 replies answer questions that .*other.jsonl does not hold"):
        saved_rows.rebuild_rows(tmp_path / "replies.jsonl", tmp_path / "other.jsonl",
                                REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml", tmp_path / "rows2.jsonl")


# The rounds of R1's third stage kept in the repository (docs/benchmarks.md, "issue 32's last target"):
# each file, and the first of the 512 train prompts its round answered.
SAVED_ROUNDS = [("smollm2-gsm8k-rl1-replies.jsonl", 0), ("smollm2-gsm8k-rl2-replies.jsonl", 512)]


@pytest.mark.parametrize(("name", "first"), SAVED_ROUNDS)
def test_a_saved_round_holds_no_gsm8k_text_and_rebuilds_its_rows_in_format(name, first, shared_dir, tmp_path):
    """bench/data's saved rounds, rebuilt against GSM8K train: the file holds none of its text; each
    row is the GRPO config's prompt for one of the round's 512 train prompts (each once) and a reply
    in the strict format, and the correctness it records is what the correctness reward pays."""
    from rewards.gsm8k import correctness_reward_func, is_strict_format

    saved_rows = _saved_rows_module()
    replies_path = REPO / "bench" / "data" / name
    train_path = shared_dir / "data" / "gsm8k" / "train.jsonl"
    train = saved_rows.read_jsonl(train_path)
    text = replies_path.read_text()
    assert [row["question"] for row in train if row["question"] in text] == []

    replies = saved_rows.read_jsonl(replies_path)
    round_rows = {saved_rows.question_key(row["question"]): row for row in train[first:first + 512]}
    assert len(replies) >= 400, "a round keeps one reply for most of its 512 prompts"
    assert all(r["question_sha1"] in round_rows for r in replies), f"prompts outside train rows {first}-{first + 511}"
    assert len({r["question_sha1"] for r in replies}) == len(replies)
    sources = [round_rows[r["question_sha1"]] for r in replies]

    rebuilt = saved_rows.rebuild_rows(replies_path, train_path, REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml",
                                      tmp_path / "rows.jsonl")
    for reply, source, row in zip(replies, sources, saved_rows.read_jsonl(rebuilt), strict=True):
        assert row["messages"][-2]["role"] == "user" and row["messages"][-2]["content"].endswith(source["question"])
        assert row["messages"][-1] == {"role": "assistant", "content": reply["reply"]}
        assert is_strict_format(reply["reply"]), reply["reply"][-200:]
    paid = correctness_reward_func([r["reply"] for r in replies], [s["answer"] for s in sources])  # "... #### 72"
    assert [score > 0 for score in paid] == [r["correct"] for r in replies]


def test_a_replies_file_trains_the_rows_it_rebuilds_and_needs_the_train_data(bench, tmp_path, capsys):
    saved_rows = _saved_rows_module()
    question = "What is 2 + 2?"
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": question, "answer": "#### 4"}) + "\n")
    replies = tmp_path / "replies.jsonl"
    replies.write_text(json.dumps({"question_sha1": saved_rows.question_key(question), "reply": "r",
                                   "correct": False}) + "\n")
    with pytest.raises(SystemExit):
        bench("--rl-rows", str(replies), "--seeds", "0")
    assert "pass --train-data" in capsys.readouterr().err and bench.calls == []

    done = bench("--rl-rows", str(replies), "--seeds", "0", "--train-data", str(tmp_path / "train.jsonl"))
    assert ("train", "rl-sft", "sft", ["rl-rs.jsonl"]) in done
    (row,) = saved_rows.read_jsonl(bench.out / "rl-rs.jsonl")
    assert question in row["messages"][0]["content"] and row["messages"][-1] == {"role": "assistant", "content": "r"}



@pytest.mark.parametrize(("flags", "warned"), [("vendor_id : AuthenticAMD\nflags : fpu avx2 fma\n", True),
                                               ("flags : fpu avx2 avx512f avx512_bf16 amx_bf16\n", False)])
def test_bfloat16_scoring_on_a_cpu_without_bfloat16_units_is_warned_at_the_start(bench, tmp_path, capsys,
                                                                                monkeypatch, flags, warned):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(flags)
    real = bench.module.cpu_has_bfloat16_units
    monkeypatch.setattr(bench.module, "cpu_has_bfloat16_units", lambda: real(cpuinfo))
    bench("--seeds", "0", "--score-dtype", "bfloat16")
    out = capsys.readouterr().out
    assert ("no bfloat16 units" in out and "leave --score-dtype out" in out) is warned
    if warned:
        assert out.index("no bfloat16 units") < out.index("sft: started"), "said before any work"


def test_rescoring_builds_its_sampling_config_from_its_own_flags(bench):
    """bench/rescore_heldout.py passes score() a namespace of its own flags (no GRPO-only ones)."""
    import argparse

    scoring = argparse.Namespace(heldout=None, problems=8, samples=0, temperature=0.7, max_new_tokens=16,
                                 score_dtype=None)
    cfg = bench.module.sampling_config(REPO / "configs" / "smollm2-gsm8k-grpo-cpu.yaml", scoring)
    assert cfg["trl"]["temperature"] == 0.7
    assert cfg["vllm"] == {"dtype": "float32", "enforce_eager": True}


def test_the_tool_chain_reports_calls_and_errors_and_may_skip_the_base(bench, monkeypatch):
    def score(config, model, args):
        bench.calls.append(("score", model.name))
        return {"strict_format": 0.5, "soft_format": 0.5, "correct_greedy": 0.1, "pass_at_k": {}, "reward_mean": 1.0,
                "tools": {"tool_calls_per_answer": 2.25, "tool_error_rate": 0.125, "answers_with_tool_calls": 1.0}}

    monkeypatch.setattr(bench.module, "score", score)
    bench("--seeds", "0", "--skip-base")
    assert [c[1] for c in bench.calls if c[0] == "score"] == ["sft", "grpo-s0"]  # no base
    assert "| grpo-s0 | 50.0% | 50.0% | 10.0% | - | - | 1.000 | 2.25 | 12.5% |" in (bench.out / "summary.md").read_text()


def test_no_sft_runs_grpo_from_the_model_itself_and_reports_any_layout(bench):
    done = bench("--no-sft", "--seeds", "0", "1")
    assert done == [("train", "grpo-s0", "smollm2", []), ("train", "grpo-s1", "smollm2", [])]
    assert [c[1] for c in bench.calls if c[0] == "score"] == ["smollm2", "grpo-s0", "grpo-s1"]
    table = (bench.out / "summary.md").read_text()
    assert "| any layout (greedy) |" in table
    assert "| base | 90.0% | 100.0% | 0.0% | - |" in table  # scored without an any-layout figure: "-"


def test_stopping_the_bench_stops_the_training_it_started(tmp_path, monkeypatch):
    """SIGTERM to the bench once left `axolotl train` and its vLLM server running (the trainer
    was a grandchild under `accelerate`): `train` now stops the whole process group."""
    import os
    import signal
    import sys
    import threading
    import time

    module = load_bench()
    pids = tmp_path / "pids"
    script = (f"import os, subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
              f"time.sleep(600)\n")
    monkeypatch.setattr(module, "train_command", lambda config: [sys.executable, "-c", script])
    monkeypatch.setattr("axolotl_grpo_plugin.gpu_check.measure.STOP_GRACE_S", 2)
    previous = signal.signal(signal.SIGTERM, module.exit_on_sigterm)

    def terminate_once_started():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (pids.is_file() and len(pids.read_text().split()) == 2):
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_started, daemon=True).start()
    try:
        with pytest.raises(SystemExit) as stopped:
            module.train(tmp_path / "config.yaml", tmp_path / "out", tmp_path / "train.log")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_resumed_stage_appends_to_its_log(tmp_path, monkeypatch):
    """A stage run again (resuming from its checkpoint) once truncated its log: the resumed
    run's steps were all that was left of it. Each run now appends, under a line naming it."""
    import sys

    module = load_bench()
    out, log = tmp_path / "out", tmp_path / "train.log"
    out.mkdir()
    (out / "model.safetensors").write_text("")
    for text in ("first run's steps", "resumed run's steps"):
        monkeypatch.setattr(module, "train_command", lambda config, text=text: [sys.executable, "-c", f"print({text!r})"])
        module.train(tmp_path / "config.yaml", out, log)
    lines = log.read_text().splitlines()
    assert [line for line in lines if not line.startswith("==> ")] == ["first run's steps", "resumed run's steps"]
    assert sum(line.startswith("==> ") for line in lines) == 2


def test_a_lora_runs_adapter_counts_as_its_finished_stage_on_a_re_run(bench):
    """A LoRA GRPO run saves adapter_model.safetensors, not model.safetensors: a re-run skips it
    and goes on to score it, where it once trained it again."""
    (bench.out / "sft").mkdir(parents=True)
    (bench.out / "sft" / "model.safetensors").write_bytes(b"")
    (bench.out / "grpo-s0").mkdir()
    (bench.out / "grpo-s0" / "adapter_model.safetensors").write_bytes(b"")
    assert bench("--seeds", "0", "--skip-base") == []  # nothing trained again
    assert ("score", "grpo-s0") in bench.calls
    assert bench.module.saved_weights(bench.out / "grpo-s0").name == "adapter_model.safetensors"
    assert bench.module.saved_weights(bench.out / "sft").name == "model.safetensors"
