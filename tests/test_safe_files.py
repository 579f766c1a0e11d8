"""No file the plugin writes follows a symlink planted in output_dir (issue 15): the shared
helper, then each writer with a link planted where it writes, pointing at a "victim" file
outside the directory that must stay byte-for-byte unchanged."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from axolotl_grpo_plugin.system.safe_files import UnsafePathError, open_nofollow, replacing, write_atomic


VICTIM_TEXT = "precious: must never change\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def out(tmp_path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def plant(link: Path, victim: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    return link


def untouched(victim: Path) -> bool:
    return victim.read_text() == VICTIM_TEXT


def no_temp_files(directory: Path) -> bool:
    return not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# --- the helper ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["ab", "ab+", "wb", "a", "w"])
def test_open_nofollow_refuses_a_symlink_in_every_mode(out, victim, mode):
    link = plant(out / "log", victim)
    with pytest.raises(UnsafePathError, match="symlink"):
        open_nofollow(link, mode)
    assert untouched(victim)


def test_open_nofollow_refuses_a_fifo_without_blocking(out):
    os.mkfifo(out / "log")
    with pytest.raises(UnsafePathError, match="not a regular file"):
        open_nofollow(out / "log", "ab")


def test_open_nofollow_appends_and_truncates_a_regular_file(out):
    path = out / "log"
    with open_nofollow(path, "ab") as f:
        f.write(b"one\n")
    with open_nofollow(path, "a") as f:
        f.write("two\n")
    assert path.read_text() == "one\ntwo\n"
    with open_nofollow(path, "w") as f:
        f.write("fresh\n")
    assert path.read_text() == "fresh\n"


def test_write_atomic_replaces_a_symlink_instead_of_following_it(out, victim):
    link = plant(out / "report.html", victim)
    write_atomic(link, "<html>new</html>")
    assert not link.is_symlink() and link.read_text() == "<html>new</html>"
    assert untouched(victim) and no_temp_files(out)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(out):
    path = out / "summary.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path) as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and [p.name for p in out.iterdir()] == ["summary.json"]


def test_write_atomic_gives_the_mode_a_plain_open_would(out):
    write_atomic(out / "a.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


# --- each writer ---------------------------------------------------------------------------

def test_rollout_log_never_appends_through_a_planted_link(out, victim, caplog):
    from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter

    plant(out / "rollouts.jsonl", victim)
    writer = RolloutLogWriter(out)
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert writer.write_step([{"step": 1, "completion": "x"}]) is False
    writer.close()
    assert untouched(victim)
    assert "symlink" in caplog.text and writer.dropped == 1


def test_rotation_replaces_links_planted_at_its_part_names(out, victim, tmp_path):
    from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, read_rollouts

    # every name the rotation writes: the staged part, the gzip part, the old fixed temp name
    for name in ("rollouts.1.jsonl", "rollouts.1.jsonl.gz", "rollouts.1.jsonl.gz.tmp"):
        plant(out / name, victim)
    writer = RolloutLogWriter(out, max_mb=0.0001)  # rotates after the first step
    records = [{"step": 1, "completion": "c" * 50, "i": i} for i in range(4)]
    assert writer.write_step(records)
    assert writer.write_step([{"step": 2, "completion": "after"}])
    writer.close()
    assert untouched(victim)
    assert [r.get("i") for r in read_rollouts(out) if r["step"] == 1] == [0, 1, 2, 3]


def test_html_report_replaces_links_at_the_page_and_its_old_temp_name(out, victim):
    from axolotl_grpo_plugin.report import write_report

    plant(out / "report.html", victim)
    plant(out / "report.html.tmp", victim)
    write_report([{"step": 1, "completion": "hi", "rewards": {"a": 1.0}}], out / "report.html", "run")
    assert untouched(victim) and "<html" in (out / "report.html").read_text().lower()


def test_a_report_that_cannot_be_written_leaves_no_temp_file(out, monkeypatch):
    from axolotl_grpo_plugin import report

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "render_html", lambda *a, **k: "x" * 10_000)
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        report.write_report([{"step": 1, "completion": "hi", "rewards": {"a": 1.0}}], out / "report.html", "run")
    assert list(out.iterdir()) == []


def test_vllm_server_config_replaces_a_planted_link(out, victim):
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.vllm.autostart import write_server_config

    link = plant(out / "vllm-server.yaml", victim)
    write_server_config({"base_model": "m"}, read_run({"base_model": "m"}), link, "127.0.0.1", 8000)
    assert untouched(victim) and "base_model: m" in link.read_text() and no_temp_files(out)


def test_vllm_server_log_link_is_a_clear_error_not_a_write(out, victim):
    from conftest import free_port

    from axolotl_grpo_plugin.vllm.server import ServerError, ServerSpec, VLLMServer

    plant(out / "vllm-server.log", victim)
    server = VLLMServer(ServerSpec(command=["true"], log_path=out / "vllm-server.log",
                                   host="127.0.0.1", port=free_port()))
    with pytest.raises(ServerError, match="symlink") as info:
        server.start()
    assert "remove" in info.value.render() and untouched(victim)
    assert server.process is None


def test_eval_results_replace_planted_links(out, victim):
    from axolotl_grpo_plugin.evaluate.core import EvalResult
    from axolotl_grpo_plugin.evaluate.results import write_results

    for name in ("eval-test.json", "eval-test-samples.jsonl"):
        plant(out / name, victim)
    result = EvalResult(model="m", split="test", n_problems=1, samples=1, seed=0, backend="hf",
                        max_new_tokens=8, temperature=0.0, correct_reward="correctness", accuracy=1.0,
                        pass_at_k={}, format_compliance=1.0, mean_length=3.0, reward_means={},
                        reward_mean=1.0, records=[{"completion": "4"}])
    summary, samples = write_results(result, out)
    assert untouched(victim)
    assert json.loads(summary.read_text())["accuracy"] == 1.0 and "4" in samples.read_text()


def test_demo_outputs_replace_planted_links(out, victim, tmp_path):
    from axolotl_grpo_plugin.demo.curves import plot
    from axolotl_grpo_plugin.demo.run import write_run_config

    plant(out / "demo_run.yaml", victim)
    path = write_run_config(tmp_path / "base", out, seed=3, steps=2)
    assert "seed: 3" in path.read_text() and not path.is_symlink()
    plant(out / "curves.png", victim)
    plot([{"reward": 0.5}, {"reward": 0.7}], out / "curves.png", "t")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert untouched(victim) and no_temp_files(out)


def test_an_output_that_is_an_input_is_found_through_relative_paths_links_and_the_config(tmp_path, monkeypatch):
    from axolotl_grpo_plugin.system.safe_files import config_inputs, overwritten_input

    (tmp_path / "d").mkdir()
    (tmp_path / "data.jsonl").write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "data.jsonl")
    (tmp_path / "hard.jsonl").hardlink_to(tmp_path / "data.jsonl")
    (tmp_path / "c.yaml").write_text("datasets:\n  - path: data.jsonl\ntest_datasets:\n  - path: held.jsonl\n")
    monkeypatch.chdir(tmp_path)
    inputs = [(tmp_path / "c.yaml", "the config file"), ("data.jsonl", "the dataset"), (None, "unset")]
    assert overwritten_input("d/../data.jsonl", inputs) == "the dataset"
    assert overwritten_input(tmp_path / "link.jsonl", inputs) == "the dataset"
    assert overwritten_input("hard.jsonl", inputs) == "the dataset"
    assert overwritten_input("./c.yaml", inputs) == "the config file"
    assert overwritten_input("other.jsonl", inputs) is None
    found = {str(path): what for path, what in config_inputs("c.yaml")}
    assert found == {"c.yaml": "the config", "data.jsonl": "its dataset datasets[0].path",
                     "held.jsonl": "its dataset test_datasets[0].path"}
    (tmp_path / "bad.yaml").write_text("a: [\n")
    assert [what for _, what in config_inputs("bad.yaml")] == ["the config"]  # its own load says why
