"""The embedded default: generated GSM8K-style data, tokenizer and tiny model, all offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")

from axolotl_grpo_plugin.commands.embedded import main  # noqa: E402
from axolotl_grpo_plugin.embedded import (  # noqa: E402
    build,
    builder,  # noqa: E402
    final_answer,
    format_solution,
    generate_problems,
    is_built,
    sample_splits,
)
from axolotl_grpo_plugin.embedded.problems import DEMO_TEMPLATES  # noqa: E402
from axolotl_grpo_plugin.embedded.sample_data import (  # noqa: E402
    DATA_DIR,
    DEMO_TEST_FILE,
    DEMO_TRAIN_FILE,
    TEST_FILE,
    TRAIN_FILE,
    demo_splits,
    to_jsonl,
)
from axolotl_grpo_plugin.embedded.tokenizer import RESPONSE_TAGS  # noqa: E402


ANNOTATION = re.compile(r"<<(\d+)([+\-*/])(\d+)=(-?\d+)>>([\d,]+)")
OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("embedded"), seed=0).model_dir


@pytest.fixture(scope="module")
def tokenizer(built_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built_dir)


# --- problems ---------------------------------------------------------------------------


def test_generator_is_deterministic_and_seed_dependent():
    assert generate_problems(50, seed=3) == generate_problems(50, seed=3)
    assert generate_problems(50, seed=3) != generate_problems(50, seed=4)


def test_rows_are_gsm8k_shaped_and_distinct():
    rows = generate_problems(300, seed=0)
    assert all(set(row) == {"question", "answer"} for row in rows)
    assert len({row["question"] for row in rows}) == len(rows)
    assert all(re.search(r"\n#### \d+$", row["answer"]) for row in rows)


def test_answers_match_the_annotated_arithmetic():
    rows = generate_problems(500, seed=7)
    step_counts = set()
    for row in rows:
        steps = row["answer"].split("\n#### ")[0].split("\n")
        step_counts.add(len(steps))
        results = []
        for step in steps:
            found = ANNOTATION.findall(step)
            assert len(found) == 1, step
            a, op, b, claimed, shown = found[0]
            a, b, claimed = int(a), int(b), int(claimed)
            if op == "/":
                assert a % b == 0, step
                value = a // b
            else:
                value = OPERATIONS[op](a, b)
            assert value == claimed, step
            assert shown == f"{claimed:,}", step  # prose shows thousands separators
            results.append(claimed)
        answer = int(final_answer(row))
        assert answer == results[-1] and answer >= 0
    assert step_counts == {1, 2, 3, 4}
    assert any(int(final_answer(row)) >= 1000 for row in rows)


def test_format_solution_is_r1_format_without_annotations():
    row = {"question": "q", "answer": "He has 2*600 = <<2*600=1200>>1,200 pens.\nThen 1200+3 = <<1200+3=1203>>1,203.\n#### 1203"}
    assert format_solution(row) == (
        "<reasoning>\nHe has 2*600 = 1,200 pens.\nThen 1200+3 = 1,203.\n</reasoning>\n"
        "<answer>\n1203\n</answer>\n"
    )


# --- bundled sample ---------------------------------------------------------------------


def test_bundled_files_equal_the_generator_output():
    train, test = sample_splits()
    assert (DATA_DIR / TRAIN_FILE).read_text(encoding="utf-8") == to_jsonl(train)
    assert (DATA_DIR / TEST_FILE).read_text(encoding="utf-8") == to_jsonl(test)
    assert (len(train), len(test)) == (512, 128)


def test_bundled_demo_files_equal_the_generator_output_and_are_disjoint():
    train, test = demo_splits()
    assert (DATA_DIR / DEMO_TRAIN_FILE).read_text(encoding="utf-8") == to_jsonl(train)
    assert (DATA_DIR / DEMO_TEST_FILE).read_text(encoding="utf-8") == to_jsonl(test)
    assert not {row["question"] for row in train} & {row["question"] for row in test}


def test_demo_problems_take_two_steps_on_single_digits():
    for row in generate_problems(300, seed=9, templates=DEMO_TEMPLATES):
        steps = re.findall(r"<<(\d+)([-+*/])(\d+)=(\d+)>>", row["answer"])
        assert len(steps) == 2 and int(steps[-1][3]) == int(final_answer(row))
        # the second step starts from the first one's result
        assert steps[1][0] == steps[0][3]
        for left, op, right, result in steps:
            assert int(result) == {"+": int.__add__, "-": int.__sub__, "*": int.__mul__,
                                   "/": int.__floordiv__}[op](int(left), int(right))
        operands = re.findall(r"\d+", row["question"])
        assert all(int(n) < 50 for n in operands) and all(int(step[3]) < 40 for step in steps)


def test_train_and_test_questions_do_not_overlap():
    train, test = (
        [json.loads(line) for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines()]
        for name in (TRAIN_FILE, TEST_FILE)
    )
    assert not {row["question"] for row in train} & {row["question"] for row in test}


def test_data_command_writes_the_same_files(tmp_path, capsys):
    assert main(["data", "--out", str(tmp_path)]) == 0
    for name in (TRAIN_FILE, TEST_FILE):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes()
    assert "Wrote 512 rows" in capsys.readouterr().out


# --- tokenizer ------------------------------------------------------------------------


def test_tokenizer_round_trips_ideal_responses(tokenizer):
    for row in generate_problems(200, seed=11):
        text = format_solution(row)
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_tags_are_single_tokens_that_survive_skip_special_tokens(tokenizer):
    tag_ids = [tokenizer.convert_tokens_to_ids(tag) for tag in RESPONSE_TAGS]
    for tag, tag_id in zip(RESPONSE_TAGS, tag_ids):
        assert tokenizer.encode(tag) == [tag_id]
    assert not set(tag_ids) & set(tokenizer.all_special_ids)

    response = format_solution(generate_problems(1, seed=2)[0])
    ids = tokenizer.encode(response + "<|im_end|>")
    assert [i for i in ids if i in tag_ids] == tag_ids  # each tag once, in order, as one token
    # TRL decodes completions like this: the eos goes, the tags must stay.
    assert tokenizer.decode(ids, skip_special_tokens=True) == response


def test_special_tokens_and_digit_splitting(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in tokenizer.all_special_ids
    # One token per digit keeps arithmetic learnable for later pre-training.
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("12345")) == list("12345")


def test_chat_template_renders_chatml_with_generation_prompt(tokenizer):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 2+2?"}]
    chatml = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    assert tokenizer.apply_chat_template(messages, tokenize=False) == chatml
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == chatml + "<|im_start|>assistant\n"


# --- build + model --------------------------------------------------------------------


def _mtimes(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in directory.iterdir()}


def test_build_is_cached_and_force_rebuilds(tmp_path, capsys):
    first = build(tmp_path, seed=0)
    assert not first.cached and is_built(first.model_dir, seed=0)
    before = _mtimes(first.model_dir)

    assert main(["build", "--out", str(tmp_path)]) == 0
    assert "Up to date" in capsys.readouterr().out
    assert _mtimes(first.model_dir) == before
    assert not is_built(first.model_dir, seed=1)

    rebuilt = build(tmp_path, seed=0, force=True)
    assert not rebuilt.cached
    after = _mtimes(rebuilt.model_dir)
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-qwen2"]  # no staging leftovers


def test_an_unwritable_out_is_one_error_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for command in ("build", "data"):
        assert main([command, "--out", str(blocker / "out")]) == 2
        out, err = capsys.readouterr()
        assert err.startswith(f"error: --out = '{blocker / 'out'}': cannot write there") and err.count("\n") == 1
        assert "pass a directory you can write to" in err and not out


def test_stamp_from_another_code_version_triggers_rebuild(tmp_path):
    model_dir = build(tmp_path, seed=0).model_dir
    stamp_file = model_dir / "build.json"
    stamp = json.loads(stamp_file.read_text())
    assert stamp["version"] == builder.EMBEDDED_VERSION
    stamp_file.write_text(json.dumps(stamp | {"version": stamp["version"] - 1}))
    assert not is_built(model_dir, seed=0)
    assert not build(tmp_path, seed=0).cached
    assert is_built(model_dir, seed=0)


def test_hd32_variant_has_head_dim_32_and_leaves_the_default_model_alone(tmp_path, built_dir):
    """vLLM's CPU attention needs head_dim >= 32: the variant has it, at the same size."""
    variant = build(tmp_path, seed=0, variant="hd32")
    assert variant.model_dir.name == "tiny-qwen2-hd32" and not variant.cached
    config = json.loads((variant.model_dir / "config.json").read_text())
    default = json.loads((built_dir / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] == 32
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (2, 1)
    assert default["hidden_size"] // default["num_attention_heads"] == 16  # the demo's shape, unchanged
    stamps = [json.loads((d / "build.json").read_text()) for d in (variant.model_dir, built_dir)]
    assert stamps[0]["parameters"] == stamps[1]["parameters"]
    assert "variant" not in stamps[1]  # default stamps are as before: existing caches stay valid
    assert is_built(variant.model_dir, seed=0, variant="hd32") and not is_built(variant.model_dir, seed=0)
    assert not is_built(built_dir, seed=0, variant="hd32")
    assert build(tmp_path, seed=0, variant="hd32").cached
    with pytest.raises(ValueError, match="hd64"):
        build(tmp_path, seed=0, variant="hd64")


def test_interrupted_build_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    def crash(target: Path, seed: int, variant: str = "default"):
        (target / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "_write_model_dir", crash)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_two_builders_of_one_folder_build_it_once(tmp_path):
    """Two test workers (or a demo beside a test run) needing the same model: the second waits for
    the first's build and finds it done, rather than building again and swapping the folder out."""
    import threading
    import time

    model_dir = tmp_path / "tiny-qwen2"
    writes, results = [], []

    def write(staging: Path) -> tuple[int, int]:
        writes.append(staging)
        time.sleep(0.5)  # long enough for the other builder to look while this one writes
        (staging / "done").write_text("")
        return 7, 11

    def builder_thread():
        results.append(builder.build_once(model_dir, lambda: (model_dir / "done").is_file(), write))

    threads = [threading.Thread(target=builder_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(writes) == 1 and sorted(r.cached for r in results) == [False, True]
    assert [(r.vocab_size, r.parameters) for r in results if not r.cached] == [(7, 11)]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-qwen2"]  # the lock is not left in the folder


def test_model_loads_and_generates_on_cpu(built_dir, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(built_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.float32
    assert model.config.tie_word_embeddings and model.config.max_position_embeddings >= 1024
    assert model.config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**prompt, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape == (1, prompt["input_ids"].shape[1] + 4)


def test_model_weights_are_deterministic_under_the_seed(tmp_path, tokenizer):
    from axolotl_grpo_plugin.embedded.model import build_tiny_model

    weights = [
        build_tiny_model(tokenizer, tmp_path / str(i), seed=seed).model.embed_tokens.weight
        for i, seed in enumerate((5, 5, 6))
    ]
    assert weights[0].equal(weights[1]) and not weights[0].equal(weights[2])
