"""A small byte-level BPE tokenizer for the embedded tiny model.

Trained with the HF ``tokenizers`` library in under a second on generated
problems, so nothing is fetched from the Hub. Choices made with later
pre-training of the tiny model into an imperfect base in mind:

* It is a ``Qwen2Tokenizer`` (a ``PreTrainedTokenizerFast``) using Qwen2's own
  NFC normalizer and pre-tokenizer. transformers 5 always loads ``qwen2``
  checkpoints with that class and rebuilds those parts, so training with them
  means what is saved is exactly what ``AutoTokenizer`` gives back.
* Qwen2's pre-tokenizer splits every digit into its own token, so arithmetic
  is learnable digit by digit instead of from arbitrary multi-digit merges.
* Byte-level BPE: any text round-trips exactly (up to NFC normalization).
* The R1 tags are single *non-special* added tokens: TRL decodes completions
  with ``skip_special_tokens=True`` and special tags would vanish before the
  rewards see them.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from .problems import R1_SYSTEM_PROMPT, format_solution, generate_problems


IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]
RESPONSE_TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>"]
VOCAB_SIZE = 1024  # an upper bound: merges run out at ~690 on this small-vocabulary corpus
CORPUS_ROWS, CORPUS_SEED = 2000, 1234
MODEL_MAX_LENGTH = 2048

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _strip_tags(text: str) -> str:
    for tag in RESPONSE_TAGS:
        text = text.replace(tag, "")
    return text


def training_corpus(rows: int = CORPUS_ROWS, seed: int = CORPUS_SEED) -> list[str]:
    """Texts the BPE merges are learned from; tags are removed (they are added tokens)."""
    texts = [_strip_tags(R1_SYSTEM_PROMPT), "system\nuser\nassistant\n"]
    for row in generate_problems(rows, seed):
        texts += [row["question"], row["answer"], _strip_tags(format_solution(row))]
    return texts


def train_backend_tokenizer(vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train the raw ``tokenizers`` BPE model (deterministic for a fixed corpus)."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    return tokenizer


def build_tokenizer(vocab_size: int = VOCAB_SIZE):
    """A ``Qwen2Tokenizer`` with ChatML specials, a chat template and the R1 tags."""
    from transformers import Qwen2Tokenizer

    bpe = json.loads(train_backend_tokenizer(vocab_size).to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=bpe["vocab"],
        merges=[tuple(merge) for merge in bpe["merges"]],
        unk_token=None,  # byte-level: every input is representable
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        extra_special_tokens=[IM_START],
        chat_template=CHATML_TEMPLATE,
        clean_up_tokenization_spaces=False,  # keep decode(encode(x)) == x
        model_max_length=MODEL_MAX_LENGTH,
    )
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in RESPONSE_TAGS])
    return tokenizer


def save_tokenizer(out_dir: str | Path, vocab_size: int = VOCAB_SIZE):
    """Build the tokenizer and ``save_pretrained`` it into ``out_dir``."""
    tokenizer = build_tokenizer(vocab_size)
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer
