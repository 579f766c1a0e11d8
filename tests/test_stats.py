"""stats.py / axolotl_grpo_plugin.seqstats: prompt-token counts as the trainer sees them.

Every expected count is computed independently, per row, with
`tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)`,
which is what TRL's GRPOTrainer does for one prompt.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import subprocess_env

from axolotl_grpo_plugin.commands.stats import main
from axolotl_grpo_plugin.registry import TRANSFORMS
from axolotl_grpo_plugin.seqstats import StatsError, prompt_token_stats, report_from_config
from axolotl_grpo_plugin.seqstats.report import percentile_from_counts


DEFAULT_SYSTEM = "You are a careful assistant who shows the working."
# Like Qwen2.5's: adds a default system message when the prompt has none, and BOS.
TINY_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE trained here in well under a second; its post-processor adds BOS, so
    tokenizing rendered text with special tokens would count BOS twice."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [row["question"] for row in _sample_rows(300)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", backend.token_to_id("<s>"))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="<|im_end|>")
    tokenizer.chat_template = TINY_TEMPLATE
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def gsm8k_file(tmp_path_factory) -> Path:
    """60 GSM8K-shaped rows plus one long one, so the longest prompt is known to be row 60."""
    rows = _sample_rows(60)
    rows.append({"question": "A farmer counts sheep. " * 40 + "How many sheep?", "answer": "x\n#### 40"})
    path = tmp_path_factory.mktemp("data") / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _sample_rows(n: int) -> list[dict]:
    from axolotl_grpo_plugin.transforms import gsm8k  # noqa: F401  (the bundled sample lives beside it)

    sample = Path(__file__).resolve().parents[1] / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl"
    return [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines()[:n]]


def per_row_lengths(tokenizer, rows: list[dict], cfg: dict | None = None) -> list[int]:
    """The reference: one TRL-style apply_chat_template(tokenize=True) call per row."""
    row_fn, _ = TRANSFORMS.load("gsm8k")(cfg or {}, dataset_idx=0)
    lengths = []
    for row in rows:
        encoded = tokenizer.apply_chat_template(row_fn(row)["prompt"], add_generation_prompt=True,
                                                tokenize=True, return_dict=True)
        lengths.append(len(encoded["input_ids"]))
    return lengths


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def write_config(path: Path, tokenizer_dir: Path, data: Path, **extra) -> Path:
    cfg = {
        "base_model": str(tokenizer_dir),
        "rl": "grpo",
        "chat_template": "tokenizer_default",
        "trl": {"use_vllm": True, "max_completion_length": 32},
        "datasets": [{"path": str(data), "type": "gsm8k"}],
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def expected(tiny, gsm8k_file) -> list[int]:
    rows = [json.loads(line) for line in gsm8k_file.read_text(encoding="utf-8").splitlines()]
    return per_row_lengths(tiny, rows)


def test_counts_equal_per_row_chat_template(tiny_tokenizer_dir, gsm8k_file, expected):
    report = prompt_token_stats(tokenizer=tiny_tokenizer_dir, dataset=gsm8k_file, transform="gsm8k",
                                max_completion_length=100, batch_size=7, progress=False)
    hist = np.bincount(expected)
    assert report.length_counts.tolist() == hist.tolist() + [0] * (len(report.length_counts) - len(hist))
    assert report.rows == len(expected)
    t = report.prompt_tokens
    assert (t["min"], t["max"]) == (min(expected), max(expected))
    assert t["mean"] == pytest.approx(sum(expected) / len(expected), abs=0.01)
    assert [t["p50"], t["p95"], t["p99"]] == [nearest_rank(expected, q) for q in (50, 95, 99)]
    assert report.longest[0].row == int(np.argmax(expected)) == 60
    assert "How many sheep?" in report.longest[0].preview
    assert report.recommended_max_model_len == math.ceil((max(expected) + 100) / 8) * 8


def test_default_system_prompt_is_counted(tiny, tiny_tokenizer_dir, gsm8k_file, expected):
    """The template's default system message is in the count (the Qwen2.5 trap)."""
    rows = [json.loads(line) for line in gsm8k_file.read_text(encoding="utf-8").splitlines()]
    row_fn, _ = TRANSFORMS.load("gsm8k")({}, dataset_idx=0)
    user_only = len(tiny(row_fn(rows[0])["prompt"][0]["content"], add_special_tokens=False)["input_ids"])
    system_only = len(tiny(DEFAULT_SYSTEM, add_special_tokens=False)["input_ids"])
    assert expected[0] > user_only + system_only


def test_string_prompts_are_tokenized_with_special_tokens(tiny, tiny_tokenizer_dir, tmp_path):
    """Plain-text prompts: TRL calls the tokenizer with its defaults, so BOS counts once."""
    texts = ["Solve 2 + 2.", "How many apples are left after Tom eats three of the seven?"]
    data = tmp_path / "plain.jsonl"
    data.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts), encoding="utf-8")
    report = prompt_token_stats(tokenizer=tiny_tokenizer_dir, dataset=data, progress=False)
    want = [len(tiny(t)["input_ids"]) for t in texts]
    assert (report.prompt_tokens["min"], report.prompt_tokens["max"]) == (min(want), max(want))


def test_config_mode_and_explicit_mode_agree(tiny_tokenizer_dir, gsm8k_file, tmp_path):
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file)
    from_config = report_from_config(config, progress=False)
    explicit = prompt_token_stats(tokenizer=tiny_tokenizer_dir, dataset=gsm8k_file, transform="gsm8k",
                                  max_completion_length=32, progress=False)
    assert from_config.prompt_tokens == explicit.prompt_tokens
    assert from_config.recommended_max_model_len == explicit.recommended_max_model_len
    assert [(p.row, p.tokens) for p in from_config.longest] == [(p.row, p.tokens) for p in explicit.longest]


def test_config_transform_options_reach_the_count(tiny, tiny_tokenizer_dir, gsm8k_file, tmp_path):
    """`grpo_plugin.system_prompt_role: system` replaces the template's default system prompt."""
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file,
                          grpo_plugin={"system_prompt_role": "system"})
    rows = [json.loads(line) for line in gsm8k_file.read_text(encoding="utf-8").splitlines()]
    want = per_row_lengths(tiny, rows, {"grpo_plugin": {"system_prompt_role": "system"}})
    report = report_from_config(config, progress=False)
    assert (report.prompt_tokens["min"], report.prompt_tokens["max"]) == (min(want), max(want))
    assert report.prompt_tokens["mean"] == pytest.approx(sum(want) / len(want), abs=0.01)


def test_dataset_override_keeps_the_config_transform(tiny_tokenizer_dir, gsm8k_file, tmp_path, expected):
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, "openai/gsm8k",
                          datasets=[{"path": "openai/gsm8k", "name": "main", "split": "train", "type": "gsm8k"}])
    report = report_from_config(config, dataset=gsm8k_file, progress=False)
    assert report.prompt_tokens["max"] == max(expected)


def test_json_schema(tiny_tokenizer_dir, gsm8k_file, tmp_path, capsys, expected):
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file)
    assert main([str(config), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == len(expected)
    assert set(out["prompt_tokens"]) >= {"min", "mean", "p50", "p95", "p99", "max"}
    assert all(isinstance(v, (int, float)) for v in out["prompt_tokens"].values())
    assert out["recommended_max_model_len"] % 8 == 0
    assert out["recommended_max_model_len"] >= out["prompt_tokens"]["max"] + 32
    assert out["recommended_max_model_len"] - 8 < out["prompt_tokens"]["max"] + 32


def test_small_max_model_len_counts_rejected_and_truncated(tiny_tokenizer_dir, gsm8k_file, tmp_path,
                                                           capsys, expected):
    completion = 32
    limit = nearest_rank(expected, 50) + 10  # some prompts fit whole, some are cut, the long one is refused
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file,
                          vllm={"max_model_len": limit})
    rejected = sum(n >= limit for n in expected)
    truncated = sum(n < limit and n + completion > limit for n in expected)
    assert rejected >= 1 and truncated >= 1
    assert main([str(config), "--json", "--no-progress"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["rejected"], out["truncated"], out["ok"]) == (rejected, truncated, False)
    assert main([str(config), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "NOT OK" in text and f"vllm.max_model_len: {out['recommended_max_model_len']}" in text


def test_recommended_length_is_ok(tiny_tokenizer_dir, gsm8k_file, tmp_path, capsys, expected):
    limit = math.ceil((max(expected) + 32) / 8) * 8
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file, vllm={"max_model_len": limit})
    assert main([str(config), "--no-progress"]) == 0
    assert "OK: vllm.max_model_len" in capsys.readouterr().out


def test_plot_writes_a_png(tiny_tokenizer_dir, gsm8k_file, tmp_path, capsys):
    target = tmp_path / "plots" / "lengths.png"
    rc = main(["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(gsm8k_file), "--transform", "gsm8k",
               "--no-progress", "--plot", str(target)])
    assert rc == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(target) in capsys.readouterr().out


@pytest.mark.parametrize("onto, what", [("config", "the config"), ("data", "its dataset datasets[0].path"),
                                        ("link", "the config")])
def test_plot_onto_an_input_is_refused_before_counting(tiny_tokenizer_dir, gsm8k_file, tmp_path, capsys,
                                                         onto, what):
    """`stats CONFIG --plot CONFIG` (or onto its dataset) once replaced the input with a PNG, exit 0."""
    data = tmp_path / "data.png"  # a dataset file that happens to end in .png: only its content matters
    data.write_bytes(gsm8k_file.read_bytes())
    config = write_config(tmp_path / "cfg.png", tiny_tokenizer_dir, data)  # yaml under any name
    (tmp_path / "link.png").symlink_to(config)
    target = {"config": config, "data": data, "link": tmp_path / "link.png"}[onto]
    kept = {config: config.read_bytes(), data: data.read_bytes()}
    assert main([str(config), "--no-progress", "--plot", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--plot = {str(target)!r} is {what}" in err and "Fix: write to another file" in err, err
    assert {path: path.read_bytes() for path in kept} == kept


@pytest.mark.parametrize("name, why", [
    ("out.txt", "the histogram is a PNG image. Fix: give a path ending in .png"),
    ("a_file/out.png", "{tmp}/a_file is a file, not a folder. Fix: choose a writable path"),
])
def test_a_bad_plot_path_is_refused_before_counting(tmp_path, capsys, name, why):
    """`--plot out.txt` once wrote a PNG into a .txt file; `--plot A_FILE/x.png` said "(File exists)"
    after the counting. Refused up front, so no tokenizer or dataset is even read here."""
    (tmp_path / "a_file").write_text("x")
    target = tmp_path / name
    assert main(["--tokenizer", str(tmp_path / "none"), "--dataset", str(tmp_path / "none.jsonl"),
                 "--plot", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --plot = {str(target)!r}: {why.format(tmp=tmp_path)}"
    assert not target.exists()


@pytest.mark.parametrize("case", ["tokenizer", "dataset", "transform", "column", "no_prompt", "template", "budget"])
def test_bad_input_is_one_line_with_a_fix(case, tiny_tokenizer_dir, gsm8k_file, tmp_path, capsys):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"text": "no question column"}) + "\n", encoding="utf-8")
    args = {
        "tokenizer": ["--tokenizer", str(tmp_path / "nope"), "--dataset", str(gsm8k_file)],
        "dataset": ["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(tmp_path / "missing.jsonl")],
        "transform": ["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(gsm8k_file), "--transform", "gsm8kk"],
        "column": ["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(plain), "--transform", "gsm8k"],
        "no_prompt": ["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(plain)],
        "template": ["--tokenizer", str(tiny_tokenizer_dir), "--dataset", str(gsm8k_file), "--transform", "gsm8k",
                     "--chat-template", "qwen_2.5"],
        "budget": [str(write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file,
                                    vllm={"max_model_len": "776 tokens"}))],
    }[case]
    assert main(args + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Fix:" in err and "\n" not in err and "Traceback" not in err
    expected_words = {"tokenizer": "--tokenizer", "dataset": "missing.jsonl", "transform": "gsm8k",
                      "column": "row 0", "no_prompt": "prompt", "template": "qwen_25",
                      "budget": "vllm.max_model_len"}[case]
    assert expected_words in err


def test_an_unreadable_dataset_shows_its_cause_the_real_flags_and_no_chatter(tiny_tokenizer_dir, tmp_path, capfd,
                                                                             monkeypatch):
    """datasets' own lines (its 'Generating train split' bar, 'Failed to load JSON ... ArrowInvalid') go to
    the tool's log, as audit's do; the error shows the parse error they hid, and names real flags."""
    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "notjson.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, bad)
    assert main([str(config), "--dataset", str(bad)]) == 2
    assert capfd.readouterr() == ("", f"error: --dataset = {str(bad)!r}: line 1 is not JSON (Expecting value). Fix: "
                                      "write one JSON object per line (JSON Lines), e.g. "
                                      '{"question": "...", "answer": "..."}.\n')
    assert (tmp_path / "cache" / "logs" / "stats.log").is_file()  # what datasets printed (which lines depends
    # on its logging state, which earlier tests in the same process change) went there, not to the screen
    assert main([str(config)]) == 2  # the config's own entry: named by its key
    assert capfd.readouterr().err.startswith(f"error: datasets[0].path = {str(bad)!r}: line 1 is not JSON")
    assert main([str(config), "--dataset", str(bad), "--verbose"]) == 2
    assert "line 1 is not JSON" in capfd.readouterr().err


def test_a_split_the_dataset_lacks_names_the_split_flag(tiny_tokenizer_dir, gsm8k_file, tmp_path, capfd):
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file)
    assert main([str(config), "--dataset", str(gsm8k_file), "--split", "test"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: --split = 'test': the dataset has no such split (Unknown split \"test\"")
    assert err.endswith("Fix: pick one of its splits with --split.\n") and err.count("\n") == 1


def test_a_successful_count_names_its_log_last_unless_json(tiny_tokenizer_dir, gsm8k_file, tmp_path, capfd,
                                                            monkeypatch):
    monkeypatch.setenv("AXOLOTL_GRPO_CACHE", str(tmp_path / "cache"))
    config = write_config(tmp_path / "cfg.yaml", tiny_tokenizer_dir, gsm8k_file)
    assert main([str(config)]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[-1] == f"full log: {tmp_path / 'cache' / 'logs' / 'stats.log'}" and err == ""
    assert main([str(config), "--json"]) == 0
    assert "full log" not in capfd.readouterr().out
    assert main([str(config), "--dataset", str(gsm8k_file)]) == 0  # the override is named as typed
    assert f"dataset:        --dataset = {gsm8k_file}, split train, transform gsm8k" in capfd.readouterr().out


def test_config_names_resolve_as_for_training_but_rewards_are_not_needed(tiny_tokenizer_dir, gsm8k_file,
                                                                         tmp_path, capsys):
    """The config is read by the loader shared with the evaluator: a misspelled transform is
    named at once; a reward name (never called here) does not stop the count."""
    typo = write_config(tmp_path / "typo.yaml", tiny_tokenizer_dir, gsm8k_file,
                        datasets=[{"path": str(gsm8k_file), "type": "gsm8kk"}])
    assert main([str(typo), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: datasets[0].type = ") and "Did you mean 'gsm8k'" in err
    assert "Fix:" in err and "\n" not in err
    rewards = write_config(tmp_path / "rewards.yaml", tiny_tokenizer_dir, gsm8k_file,
                           trl={"reward_funcs": ["not_a_reward"]})
    assert report_from_config(rewards, progress=False).rows == len(gsm8k_file.read_text().splitlines())


def test_hub_only_dataset_error_names_the_override():
    err = StatsError  # the message is checked on a path that cannot exist on the Hub either
    with pytest.raises(err, match="--dataset LOCAL_FILE"):
        from axolotl_grpo_plugin.seqstats.sources import DatasetSpec, load_rows

        load_rows(DatasetSpec(path="not-a-user/not-a-dataset-xyz", key="datasets[0]"))


def test_cli_script_reports_missing_config_without_traceback(repo_root, tmp_path):
    proc = subprocess.run([sys.executable, str(repo_root / "stats.py"), str(tmp_path / "none.yaml")],
                          capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "none.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_percentiles_from_histogram_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 900, size=5001)
    counts = np.bincount(values)
    for q in (1, 50, 95, 99, 100):
        assert percentile_from_counts(counts, q) == int(np.percentile(values, q, method="inverted_cdf"))


# --- the real GSM8K train split with the real tokenizers (only where ../shared exists) ----------

REAL = [("qwen2.5-instruct", "qwen_25"), ("llama-3-instruct", "llama3"), ("llama-3-instruct", "tokenizer_default")]


def _real_check(shared_dir: Path, tokenizer_name: str, template: str, split: str):
    from transformers import AutoTokenizer

    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.seqstats.sources import apply_chat_template_choice

    tok_dir = shared_dir / "tokenizers" / tokenizer_name
    data = shared_dir / "data" / "gsm8k" / "train.jsonl"
    report = prompt_token_stats(tokenizer=tok_dir, dataset=data, split=split, transform="gsm8k",
                                chat_template=template, max_completion_length=512, progress=False)
    reference = AutoTokenizer.from_pretrained(tok_dir)
    apply_chat_template_choice(reference, read_run({"chat_template": template}))
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    if split != "train":
        rows = rows[: int(split.split(":")[1].rstrip("]"))]
    want = per_row_lengths(reference, rows)
    assert report.rows == len(want)
    assert report.length_counts.tolist()[: max(want) + 1] == np.bincount(want).tolist()
    assert report.prompt_tokens["max"] == max(want)


@pytest.mark.parametrize("tokenizer_name,template", REAL[:2])
def test_real_gsm8k_first_rows_match_per_row_reference(shared_dir, tokenizer_name, template):
    _real_check(shared_dir, tokenizer_name, template, "train[:300]")


@pytest.mark.slow
@pytest.mark.parametrize("tokenizer_name,template", REAL)
def test_real_gsm8k_train_split_matches_per_row_reference(shared_dir, tokenizer_name, template):
    _real_check(shared_dir, tokenizer_name, template, "train")


def test_every_missing_input_is_named_at_once(tmp_path, capsys):
    """Before anything heavy is loaded: the tokenizer and the dataset, one line each."""
    rc = main(["--tokenizer", str(tmp_path / "no-tokenizer"), "--dataset", str(tmp_path / "no-data.jsonl")])
    assert rc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "no-tokenizer" in lines[0] and "no-data.jsonl" in lines[1]
    assert all("Fix:" in line for line in lines)


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_the_tools_block_counts_in_every_prompt(tiny, tiny_tokenizer_dir, gsm8k_file, tmp_path, method):
    """With grpo_plugin.tools, TRL renders the tools' schemas into each prompt (qwen_25's tool block)."""
    from axolotl_grpo_rewards.tools import calculator

    rows = [json.loads(line) for line in gsm8k_file.read_text(encoding="utf-8").splitlines()]
    config = write_config(tmp_path / "tools.yaml", tiny_tokenizer_dir, gsm8k_file, chat_template="qwen_25",
                          grpo_plugin={"tools": ["calculator"]})
    report = prompt_token_stats(config, progress=False, method=method)
    plain = prompt_token_stats(write_config(tmp_path / "plain.yaml", tiny_tokenizer_dir, gsm8k_file,
                                            chat_template="qwen_25"), progress=False, method=method)
    from axolotl.utils.chat_templates import get_chat_template

    tiny.chat_template = get_chat_template("qwen_25")
    row_fn, _ = TRANSFORMS.load("gsm8k")({}, dataset_idx=0)
    want = [len(tiny.apply_chat_template(row_fn(r)["prompt"], tools=[calculator], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)) for r in rows]
    assert report.prompt_tokens["max"] == max(want) > plain.prompt_tokens["max"] + 50
    assert report.length_counts.tolist()[: max(want) + 1] == np.bincount(want).tolist()
    assert report.source["tools"] == ["calculator"]


def test_a_tool_that_does_not_resolve_is_one_line(tiny_tokenizer_dir, gsm8k_file, tmp_path):
    config = write_config(tmp_path / "tools.yaml", tiny_tokenizer_dir, gsm8k_file, chat_template="qwen_25",
                          grpo_plugin={"tools": ["calculater"]})
    with pytest.raises(StatsError, match=r"grpo_plugin\.tools\[0\].*calculator"):
        prompt_token_stats(config, progress=False)
