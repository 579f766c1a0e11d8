"""The fast counting path (`seqstats.fastcount`) against the whole-prompt path and transformers.

Every comparison is row by row: the fast count (per-word counts cached) must equal
rendering and encoding each prompt whole, and that must equal TRL's per-prompt
`apply_chat_template(..., tokenize=True)`. Tokenizers
are built here (a Qwen-style byte-level BPE, a GPT-2-style one, a SentencePiece-style
Unigram) so the comparisons run without ../shared; the real Qwen2.5 and Llama 3
tokenizers on GSM8K are compared where ../shared exists.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from axolotl_grpo_plugin.registry import TRANSFORMS
from axolotl_grpo_plugin.seqstats import prompt_token_stats
from axolotl_grpo_plugin.seqstats.fastcount import NEWLINE_PATTERNS, Counter, WordCounter, ascii_pattern
from axolotl_grpo_plugin.seqstats.light import from_hf


REPO = Path(__file__).resolve().parents[1]
QWEN_PATTERN = min(NEWLINE_PATTERNS, key=len)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen2.5-like: a default system prompt when the prompt has none, contents written as they are.
CHATML = (
    "{%- if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a careful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Llama-3-like: contents trimmed, a header per message.
TRIMMED = (
    "{{ bos_token }}{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n\\n' + message['content'] | trim + '<|im_end|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n\\n' }}{%- endif %}"
)
# Asks about the content: the tracer must record it and rows answering otherwise are rendered whole.
BRANCHING = (
    "{%- for message in messages %}{%- if 'Hasan' in message.content %}{{ '<|im_start|>hasan\\n' }}"
    "{%- elif message.content %}{{ '<|im_start|>' + message.role + '\\n' }}{%- endif %}"
    "{{ message.content + '<|im_end|>\\n' }}{%- endfor %}{{ '<|im_start|>assistant\\n' }}"
)
# Slices the content: rendered as it is, like any template.
SLICING = "{%- for message in messages %}{{ message.content[:40] + '<|im_end|>' }}{%- endfor %}"


def _sample_rows(n: int | None = None) -> list[dict]:
    path = REPO / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows[:n] if n else rows


def adversarial_questions() -> list[str]:
    """GSM8K questions and the text that breaks naive splitting."""
    base = [r["question"] for r in _sample_rows(120)]
    q = base[0]
    odd = [
        " " + q, "  " + q, "\n" + q, "\n\n" + q, "\t" + q, "\r\n" + q, q + " ", q + "\n", q + "\n\n", q + "  \n",
        "<|im_end|>" + q, q + "<|im_end|>", q + "<|im_start|>", "<|im_start|>user\n" + q, q[:30] + "<|im_end|>" + q[30:],
        q + "<|im_", "|>" + q, "im_end|>" + q, q + "<|im_end", "<|endoftext|>", "<|im_end|>",
        "\u0301" + q, "e\u0301 " + q, q + "e\u0301", "é" + q, "数学题：" + q, "🙂 " + q, q + " 🙂",
        "ﬁ ligature " + q, "\u00a0" + q, q + "\u00a0", "\u2028" + q,
        "", " ", "\n", "x", "{{ messages }} {% raw %}" + q, "'s " + q, q + "'ll",
        ("A very long line " * 700) + q, q + ("\n" * 50) + q, "123456789 " + q, q.upper(), q.replace(" ", "  "),
    ]
    return base + odd


def _bpe(pre_tokenizer, normalizer=None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.decoder = decoders.ByteLevel()
    corpus = [r["question"] for r in _sample_rows()] + adversarial_questions()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return backend


def _save(backend, out: Path, template: str, **special) -> Path:
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    tok.chat_template = template
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def qwen_style_dir(tmp_path_factory) -> Path:
    """Byte-level BPE with Qwen2's split regex and NFC, trained here in well under a second."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    backend = _bpe(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), normalizers.NFC())
    return _save(backend, tmp_path_factory.mktemp("qwen-style"), CHATML, eos_token="<|im_end|>",
                 pad_token="<|endoftext|>", bos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def gpt2_style_dir(tmp_path_factory) -> Path:
    from tokenizers import pre_tokenizers

    backend = _bpe(pre_tokenizers.ByteLevel(add_prefix_space=False))
    return _save(backend, tmp_path_factory.mktemp("gpt2-style"), CHATML, eos_token="<|im_end|>")


@pytest.fixture(scope="module")
def unigram_dir(tmp_path_factory) -> Path:
    """A SentencePiece-style Unigram (Metaspace) tokenizer: no boundary is provable, all rows go whole."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    corpus = [r["question"] for r in _sample_rows()] + adversarial_questions()
    backend.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=500, special_tokens=["<unk>"] + SPECIALS,
                                                                unk_token="<unk>"))
    return _save(backend, tmp_path_factory.mktemp("unigram"), TRIMMED, eos_token="<|im_end|>",
                 bos_token="<|endoftext|>", unk_token="<unk>")


def _hf(directory: Path, template: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory)
    if template is not None:
        tok.chat_template = template
    return tok


def _prompts(questions: list[str], role: str = "user") -> list[list[dict]]:
    row_fn, _ = TRANSFORMS.load("gsm8k")({"grpo_plugin": {"system_prompt_role": role}}, dataset_idx=0)
    return [row_fn({"question": q, "answer": "#### 1"})["prompt"] for q in questions]


def _reference(tok, prompts) -> list[int]:
    return [len(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
            for p in prompts]


def _count(tok, prompts, method: str, batch: int = 50):
    counter = Counter(from_hf(tok, "test"), method)
    out = []
    for i in range(0, len(prompts), batch):
        out += counter.count(prompts[i:i + batch])
    return out, counter


@pytest.mark.parametrize("template", [CHATML, TRIMMED, BRANCHING])
@pytest.mark.parametrize("role", ["user", "system"])
def test_fast_equals_whole_and_transformers_on_adversarial_text(qwen_style_dir, template, role):
    tok = _hf(qwen_style_dir, template)
    prompts = _prompts(adversarial_questions(), role)
    fast, counter = _count(tok, prompts, "fast")
    full, _ = _count(tok, prompts, "full")
    assert fast == full == _reference(tok, prompts)
    assert counter.tally.split > len(prompts) // 2  # the fast path is really taken ...
    assert counter.tally.whole > 0  # ... and the adversarial rows really fall back


def test_gpt2_style_tokenizer(gpt2_style_dir):
    tok = _hf(gpt2_style_dir)
    prompts = _prompts(adversarial_questions())
    fast, counter = _count(tok, prompts, "fast")
    assert fast == _reference(tok, prompts)
    assert counter.tally.split > 0


def test_unigram_tokenizer_falls_back_exactly(unigram_dir):
    tok = _hf(unigram_dir)
    prompts = _prompts(adversarial_questions())
    fast, counter = _count(tok, prompts, "fast")
    assert fast == _reference(tok, prompts)
    assert counter.tally.split == 0 and counter.tally.whole == len(prompts)
    assert any("not a BPE model" in note for note in counter.tally.notes)


def test_template_that_slices_contents_counts_exactly(qwen_style_dir):
    tok = _hf(qwen_style_dir, SLICING)
    prompts = _prompts(adversarial_questions()[:80])
    fast, counter = _count(tok, prompts, "fast")
    assert fast == _reference(tok, prompts)
    assert counter.tally.split > 0


def test_api_counts_equal_reference_method_and_skips_heavy_imports_when_cached(qwen_style_dir, tmp_path):
    """First run builds the light tokenizer with transformers; a second process counts the same
    without importing transformers, torch or datasets."""
    data = tmp_path / "q.jsonl"
    questions = adversarial_questions()
    data.write_text("".join(json.dumps({"question": q, "answer": "#### 3"}) + "\n" for q in questions), encoding="utf-8")
    env = subprocess_env(AXOLOTL_GRPO_CACHE=str(tmp_path / "cache"))
    code = ("import json, sys; from axolotl_grpo_plugin.seqstats import prompt_token_stats; "
            f"r = prompt_token_stats(tokenizer={str(qwen_style_dir)!r}, dataset={str(data)!r}, transform='gsm8k', "
            "progress=False, method=sys.argv[1]); "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'transformers', 'torch', 'datasets'}); "
            "print(json.dumps([r.length_counts.tolist(), [(p.row, p.tokens) for p in r.longest], heavy]))")
    runs = {}
    for name, method in (("cold", "fast"), ("warm", "fast"), ("reference", "reference")):
        proc = subprocess.run([sys.executable, "-c", code, method], check=False, capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["cold"][:2] == runs["warm"][:2] == runs["reference"][:2]
    assert "transformers" in runs["cold"][2]
    assert runs["warm"][2] == []


def test_jsonl_rows_datasets_would_read_differently_go_through_datasets(qwen_style_dir, tmp_path):
    """A column mixing ints and floats (datasets makes them all floats) or all-timestamp strings
    (datasets makes datetimes) switches to the datasets reader; the counts equal the reference."""
    rows = [{"question": q, "answer": "#### 2", "score": 1} for q in adversarial_questions()[:40]]
    rows[30]["score"] = 1.5
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stamps = tmp_path / "stamps.jsonl"
    stamps.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"],
                                          "when": "2024-01-02 03:04:05"}) + "\n" for r in rows), encoding="utf-8")
    from axolotl_grpo_plugin.seqstats.sources import DatasetSpec
    from axolotl_grpo_plugin.seqstats.stream import NotPlain, iter_jsonl

    for path, why in ((mixed, "mixes int and float"), (stamps, "timestamps")):
        with pytest.raises(NotPlain, match=why):
            list(iter_jsonl(path, 8))
        fast = prompt_token_stats(tokenizer=qwen_style_dir, dataset=path, transform="gsm8k", progress=False,
                                  batch_size=8)  # the odd row comes after rows already counted
        ref = prompt_token_stats(tokenizer=qwen_style_dir, dataset=path, transform="gsm8k", progress=False,
                                 method="reference")
        assert fast.length_counts.tolist() == ref.length_counts.tolist()
        assert fast.counting["split_rows"] + fast.counting["whole_rows"] == len(rows)  # counted once
    assert DatasetSpec(path=str(mixed)).split is None


# --- the real tokenizers on GSM8K (only where ../shared exists) -------------------------------------

REAL = [("qwen2.5-instruct", "qwen_25", 263), ("llama-3-instruct", "llama3", 241),
        ("llama-3-instruct", "tokenizer_default", 266)]


@pytest.mark.parametrize("name,template,train_max", REAL)
def test_real_gsm8k_fast_equals_whole_row_by_row(shared_dir, name, template, train_max):
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.seqstats.sources import apply_chat_template_choice

    tok = _hf(shared_dir / "tokenizers" / name)
    apply_chat_template_choice(tok, read_run({"chat_template": template}))
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (shared_dir / "data" / "gsm8k" / f"{split}.jsonl").open(encoding="utf-8")]
        prompts = _prompts([r["question"] for r in rows])
        fast, counter = _count(tok, prompts, "fast", batch=1000)
        full, _ = _count(tok, prompts, "full", batch=1000)
        assert fast == full
        assert counter.tally.split >= 0.9 * len(rows)  # questions with non-ASCII text are encoded whole
        if split == "train":
            assert max(fast) == train_max
    assert fast[:300] == _reference(tok, prompts[:300])
    adversarial = _prompts(adversarial_questions())
    fast, _ = _count(tok, adversarial, "fast")
    assert fast == _reference(tok, adversarial)


def test_real_gsm8k_budgets_through_the_api(shared_dir):
    data = shared_dir / "data" / "gsm8k" / "train.jsonl"
    got = {}
    for name, template, _ in REAL:
        report = prompt_token_stats(tokenizer=shared_dir / "tokenizers" / name, dataset=data, transform="gsm8k",
                                    chat_template=template, max_completion_length=512, progress=False)
        got[template] = (report.rows, report.prompt_tokens["max"], report.longest[0].row)
    assert got == {"qwen_25": (7473, 263, 3331), "llama3": (7473, 241, 3331), "tokenizer_default": (7473, 266, 3331)}


def test_histogram_and_longest_match_numpy(qwen_style_dir, tmp_path):
    """The streamed histogram, percentiles and longest rows equal those of the full length list."""
    data = tmp_path / "q.jsonl"
    questions = adversarial_questions()
    data.write_text("".join(json.dumps({"question": q, "answer": "#### 3"}) + "\n" for q in questions), encoding="utf-8")
    report = prompt_token_stats(tokenizer=qwen_style_dir, dataset=data, transform="gsm8k", progress=False,
                                batch_size=7, top=4)
    want = _reference(_hf(qwen_style_dir), _prompts(questions))
    assert report.length_counts[: max(want) + 1].tolist() == np.bincount(want).tolist()
    order = sorted(range(len(want)), key=lambda i: (-want[i], i))[:4]
    assert [(p.row, p.tokens) for p in report.longest] == [(i, want[i]) for i in order]


def _word_counter_cases(directories):
    for directory in directories:
        counter = Counter(from_hf(_hf(directory), "test"))
        pattern, why = ascii_pattern(counter.light.spec)
        assert pattern is not None, why
        yield WordCounter(counter.light, pattern), counter


def test_word_counter_equals_the_tokenizer_on_random_ascii(qwen_style_dir, gpt2_style_dir):
    """The ASCII split pattern + per-word model counts give the backend's counts on any
    printable-ASCII text (contractions in any case, runs of spaces and newlines, digits)."""
    from hypothesis import given
    from hypothesis import strategies as st

    pieces = st.sampled_from(list("aZ9 \n\r\t'.?-_#") + ["'S", "'ll", "'VE", "  ", "\n\n", " \n", "123456",
                                                           "<|im_end|>", "\x0b", "\x1c", "é"])
    texts = st.lists(pieces, max_size=30).map("".join)
    for words, counter in _word_counter_cases([qwen_style_dir, gpt2_style_dir]):
        _same_counts(words, counter, given(st.lists(texts, min_size=1, max_size=8)), 600)
        assert len(words.cache) > 20  # the per-word path was really used


def _same_counts(words, counter, given_batches, examples: int) -> None:
    from hypothesis import settings

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True)
    @given_batches
    def check(batch):
        counts, rest = words.count(batch)
        assert rest == [i for i, t in enumerate(batch) if re.search(r"[^\t\n\r\x20-\x7e]", t)]  # no gaps
        counted = [i for i in range(len(batch)) if i not in rest]
        assert [counts[i] for i in counted] == counter._encode([batch[i] for i in counted])

    check()


def test_word_counter_on_real_tokenizers(shared_dir):
    from hypothesis import given
    from hypothesis import strategies as st

    questions = [json.loads(line)["question"] for line in
                 (shared_dir / "data" / "gsm8k" / "train.jsonl").open(encoding="utf-8")][:2000]
    texts = st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=60)
    for words, counter in _word_counter_cases([shared_dir / "tokenizers" / "qwen2.5-instruct",
                                               shared_dir / "tokenizers" / "llama-3-instruct"]):
        assert counter._chat_counts(questions)[0] == counter._encode(questions)
        _same_counts(words, counter, given(st.lists(texts, min_size=1, max_size=8)), 400)


def test_short_runs_show_no_progress_bar(qwen_style_dir, tmp_path, capsys):
    from axolotl_grpo_plugin.commands.stats import main

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": "#### 3"}) + "\n" for q in adversarial_questions()),
                    encoding="utf-8")
    assert main(["--tokenizer", str(qwen_style_dir), "--dataset", str(data), "--transform", "gsm8k", "--json"]) == 0
    captured = capsys.readouterr()
    assert "Counting" not in captured.err
    assert json.loads(captured.out)["counting"]["method"] == "fast"


def test_module_entry_point_runs_the_cli(repo_root):
    proc = subprocess.run([sys.executable, "-m", "axolotl_grpo_plugin.seqstats", "--help"], check=False,
                          capture_output=True,
                          text=True, env=subprocess_env(), cwd=repo_root, timeout=120)
    assert proc.returncode == 0 and "--method" in proc.stdout


@pytest.mark.parametrize("key", ["tokenizer_use_fast", "trust_remote_code"])
def test_python_or_remote_code_tokenizers_use_the_reference_method(qwen_style_dir, tmp_path, key):
    import yaml

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": "#### 3"}) + "\n" for q in adversarial_questions()[:30]),
                    encoding="utf-8")
    cfg = {"base_model": str(qwen_style_dir), "datasets": [{"path": str(data), "type": "gsm8k"}],
           key: key == "trust_remote_code"}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    report = prompt_token_stats(config, progress=False)
    assert report.counting == {}  # the fast counter was not used
    want = _reference(_hf(qwen_style_dir), _prompts(adversarial_questions()[:30]))
    assert report.length_counts[: max(want) + 1].tolist() == np.bincount(want).tolist()
