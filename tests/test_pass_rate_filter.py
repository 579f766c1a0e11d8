"""Pass-rate curation (issue 66, item 2): `probe --prompts all --pass-rates FILE` (resumable),
the file (sources/pass_rates.py), `grpo_plugin.pass_rate_filter` in `check` and in a real
`axolotl train`."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml
from conftest import REPO_ROOT, run_axolotl_train

from axolotl_grpo_plugin.errors import PluginError
from axolotl_grpo_plugin.sources import pass_rates


PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_rows_key_is_its_prompt_whatever_the_storage_adds():
    stored = [{"role": "user", "content": "What is 2 + 3?", "tool_calls": None}]  # arrow's null column
    assert pass_rates.prompt_key(PROMPT) == pass_rates.prompt_key(stored)
    assert pass_rates.prompt_key(PROMPT) != pass_rates.prompt_key([{"role": "user", "content": "What is 2 + 4?"}])
    assert pass_rates.in_band(0.5, 0, 1) and not pass_rates.in_band(0.0, 0, 1) and not pass_rates.in_band(1.0, 0, 1)


def test_the_file_is_read_strictly_but_a_torn_last_line_is_left_out(tmp_path):
    path = tmp_path / "rates.jsonl"
    pass_rates.append(path, [pass_rates.record(PROMPT, 0.25, 8, 0)])
    with open(path, "ab") as f:
        f.write(b'{"key": "abc", "pass_ra')  # a probe killed mid-write
    assert list(pass_rates.read(path).values()) == [0.25]
    pass_rates.append(path, [pass_rates.record([{"role": "user", "content": "x"}], 1.0, 8, 1)])
    assert path.read_text().count("\n") == 2 and len(pass_rates.read(path)) == 2  # the torn tail cut first

    with pytest.raises(PluginError, match=r"grpo_plugin.pass_rate_filter.file = .*no such file"):
        pass_rates.read(tmp_path / "missing.jsonl")
    (tmp_path / "csv.jsonl").write_text("key,pass_rate\nabc,0.5\n")
    with pytest.raises(PluginError, match="line 1 is not JSON.*--pass-rates FILE"):
        pass_rates.read(tmp_path / "csv.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"key": "a", "pass_rate": 0.5}\n{"key": "b", "pass_rate": 2}\n')
    with pytest.raises(PluginError, match="line 2 is not a pass-rate record"):
        pass_rates.read(tmp_path / "bad.jsonl", "--pass-rates")


def test_the_filter_keeps_the_band_and_leaves_out_rows_without_a_rate():
    import datasets

    rows = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": f"q{i}"}], "answer": str(i)}
                                       for i in range(6)])
    rates = {pass_rates.prompt_key(rows[i]["prompt"]): rate for i, rate in enumerate([0.0, 0.5, 1.0, 0.25, 0.75])}
    kept, counts = pass_rates.filter_rows(rows, rates, 0.0, 1.0)
    assert kept["answer"] == ["1", "3", "4"] and counts == {"rows": 6, "kept": 3, "unrated": 1}
    assert pass_rates.filter_rows(rows, rates, 0.3, 1.0)[0]["answer"] == ["1", "4"]


def smoke_config(tmp_path, model_dir, rows: int = 48, **plugin) -> tuple:
    """configs/smoke.yaml on the first `rows` rows of its data (a file in tmp_path)."""
    lines = (REPO_ROOT / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl").read_text().splitlines()[:rows]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    cfg = yaml.safe_load((REPO_ROOT / "configs/smoke.yaml").read_text())
    cfg.update(base_model=str(model_dir), output_dir=str(tmp_path / "out"), max_steps=2,
               dataset_prepared_path=str(tmp_path / "prepared"))
    cfg["datasets"][0]["path"] = str(tmp_path / "data.jsonl")
    if plugin:
        cfg["grpo_plugin"] = plugin
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, [json.loads(line) for line in lines]


def check_text(path) -> tuple[int, str]:
    """`axolotl-grpo check PATH --cpu` in a child: Axolotl's validation leaves logging handlers on
    streams this process closes, which later tests would write to."""
    from test_configs import run_check

    proc = run_check(REPO_ROOT, path, "--cpu")
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.integration
def test_probe_writes_every_rows_pass_rate_goes_on_where_it_stopped_and_training_keeps_the_band(
        tmp_path, embedded_model_dir, monkeypatch):
    from axolotl_grpo_plugin.commands import probe as probe_command
    from axolotl_grpo_plugin.probe import core

    config, raw = smoke_config(tmp_path, embedded_model_dir)
    rates_file = tmp_path / "rates.jsonl"
    monkeypatch.setattr(core, "CHUNK", 16)
    seen = []

    def stop_after_two(done, todo, resumed, seconds):
        seen.append((done, todo, resumed))
        if len(seen) == 2:
            raise KeyboardInterrupt  # the user stops it

    request = {"prompts": None, "generations": [2], "pass_rates": str(rates_file), "backend": "transformers",
               "device": "cpu", "progress": False}
    with pytest.raises(KeyboardInterrupt):
        core.probe(str(config), on_chunk=stop_after_two, **request)
    assert seen == [(16, 48, 0), (32, 48, 0)] and len(pass_rates.read(rates_file)) == 32
    result = core.probe(str(config), on_chunk=lambda *a: seen.append(a[:3]), **request)
    assert (result.prompts, result.resumed, seen[-1]) == (16, 32, (16, 16, 32))
    written = [json.loads(line) for line in rates_file.read_text().splitlines()]
    assert sorted(r["row"] for r in written) == list(range(48)) and len({r["key"] for r in written}) == 48
    assert all(r["samples"] == 4 and 0 <= r["pass_rate"] <= 1 for r in written)  # max(G): the config's 4

    # the command: everything is there now
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert probe_command.main([str(config), "--prompts", "all", "--pass-rates", str(rates_file),
                                   "--generations", "2", "--backend", "transformers", "--no-progress"]) == 0
    assert "nothing left to sample" in out.getvalue()

    # a band of every third row; check says how many it keeps, training trains on those alone
    for r in written:
        r["pass_rate"] = 0.5 if r["row"] % 3 == 0 else 0.0
    rates_file.write_text("".join(json.dumps(r) + "\n" for r in written))
    config, raw = smoke_config(tmp_path, embedded_model_dir, pass_rate_filter={"file": str(rates_file)})
    code, text = check_text(config)
    assert code == 0 and "the band (0, 1) keeps 16 of the 48 rows" in text, text
    proc, logged = run_axolotl_train(config, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "pass_rate_filter: training on 16 of 48 rows (0 without a pass rate" in proc.stdout + proc.stderr
    from axolotl_grpo_plugin.observe import read_rollouts

    kept = [raw[i]["question"] for i in range(0, 48, 3)]
    prompts = {r["prompt"] for r in read_rollouts(tmp_path / "out")}
    assert prompts and all(any(q in p for q in kept) for p in prompts)


def test_check_refuses_a_band_that_keeps_no_row_of_the_file(tmp_path, embedded_model_dir):
    rates = tmp_path / "rates.jsonl"
    pass_rates.append(rates, [pass_rates.record([{"role": "user", "content": f"q{i}"}], 1.0, 4, i) for i in range(5)])
    config, _ = smoke_config(tmp_path, embedded_model_dir, pass_rate_filter={"file": str(rates)})
    code, text = check_text(config)
    assert code == 2 and "grpo_plugin.pass_rate_filter = " in text and "no row of" in text and "(5 rows)" in text
    assert "fix: widen the band" in text
