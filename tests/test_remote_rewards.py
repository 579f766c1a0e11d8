"""Remote rewards declared in yaml (`grpo_plugin.remote_rewards`) against a real HTTP verifier
(tests/verifier_server.py: Starlette on uvicorn, on 127.0.0.1) with injected faults: every faulty
call ends as None within its deadline, good calls score, nothing raises; the cache, the budget,
the config checks, Axolotl's own loader, pickling into a fresh process, `check` and `score`."""

from __future__ import annotations

import json
import logging
import multiprocessing
import pickle

import pytest
import yaml
from conftest import REPO_ROOT
from verifier_server import Running

from axolotl_grpo_plugin.config.args import RemoteRewardSettings
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.names import resolve_names
from axolotl_grpo_plugin.remote import declared
from axolotl_grpo_plugin.remote.calls import deadline_s
from axolotl_grpo_plugin.remote.checks import check


GOOD = ["<answer>7</answer>", "<answer>8</answer>"]
FAULTS = ["FAULT:slow=30", "FAULT:500", "FAULT:429", "FAULT:malformed", "FAULT:drop", "FAULT:nofield"]


@pytest.fixture(scope="module")
def verifier():
    with Running() as server:
        yield server


def reward_for(url, name="verifier", **keys):
    spec = RemoteRewardSettings(name=name, kind="http", url=url, **keys)
    declared.declare([spec])
    return declared.load(name), spec


class Collected:
    """TRL's `log_metric` and `log_extra` keywords, as the trainer would receive them."""

    def __init__(self):
        self.metrics, self.extra = {}, {}

    def kwargs(self):
        return {"log_metric": self.metrics.__setitem__, "log_extra": self.extra.__setitem__}


def test_faulty_calls_end_as_none_within_their_deadline_and_good_ones_score(verifier, tmp_path):
    reward, spec = reward_for(verifier.url, name="faults", timeout_s=6.0, retries=1,  # 1 s, then 3 s missed the retry under CI load
                              cache=str(tmp_path / "c.db"))
    completions = GOOD + FAULTS + ["FAULT:500once <answer>7</answer>"]
    seen = Collected()
    values = reward(prompts=["q"] * len(completions), completions=completions,
                    answer=["7"] * len(completions), **seen.kwargs())
    assert values[:2] == [1.0, 0.0]
    assert values[2:-1] == [None] * len(FAULTS)
    assert values[-1] == 1.0  # a 500 then a good answer: the retry scored it
    records = seen.extra["remote/faults"]
    assert all(r["latency_ms"] <= deadline_s(spec) * 1000 + 500 for r in records)
    assert [r.get("failed") is not None for r in records] == [False] * 2 + [True] * len(FAULTS) + [False]
    # retried: timeouts, 5xx, 429 and the dropped connection; not malformed or fieldless answers
    assert {c: verifier.verifier.calls[c] for c in FAULTS} == {
        "FAULT:slow=30": 2, "FAULT:500": 2, "FAULT:429": 2, "FAULT:malformed": 1, "FAULT:drop": 2, "FAULT:nofield": 1}
    assert seen.metrics["remote/faults/failures"] == len(FAULTS)
    assert seen.metrics["remote/faults/calls"] == 2 + 10 + 2  # good, faults (as counted above), 500once
    assert seen.metrics["rewards/faults/errors"] == 0.0


def test_the_cache_answers_a_repeated_batch_without_calls_but_retries_failures(verifier, tmp_path):
    reward, _ = reward_for(verifier.url, name="cached", timeout_s=1.0, retries=0, cache=str(tmp_path / "c.db"))
    completions = ["<answer>3</answer> cache", "<answer>4</answer> cache", "FAULT:500 cache"]
    first = reward(prompts=["q"] * 3, completions=completions, answer=["3"] * 3)
    before = dict(verifier.verifier.calls)
    seen = Collected()
    again = reward(prompts=["q"] * 3, completions=completions, answer=["3"] * 3, **seen.kwargs())
    assert first == again == [1.0, 0.0, None]
    calls = {c: verifier.verifier.calls[c] - before.get(c, 0) for c in completions}
    assert calls == {completions[0]: 0, completions[1]: 0, completions[2]: 1}
    assert seen.metrics["remote/cached/cache_hits"] == 2
    # another answer is another key
    assert reward(prompts=["q"], completions=completions[:1], answer=["4"]) == [0.0]


def test_the_budget_stops_calls_and_says_how_to_raise_it(verifier, tmp_path, caplog):
    reward, _ = reward_for(verifier.url, name="budgeted", budget_calls=3, concurrency=1, cache=False)
    completions = [f"<answer>{i}</answer> budget" for i in range(6)]
    with caplog.at_level(logging.WARNING):
        values = reward(prompts=["q"] * 6, completions=completions, answer=["0"] * 6)
    assert sum(verifier.verifier.calls[c] for c in completions) == 3
    assert values[:3] == [1.0, 0.0, 0.0] and values[3:] == [None] * 3
    assert "budget_calls=3 spent" in caplog.text and "raise the budget" in caplog.text


def test_the_api_key_is_sent_and_never_logged(verifier, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VERIFIER_TEST_KEY", "sk-secret-123")
    spec = RemoteRewardSettings(name="keyed", kind="judge", base_url=verifier.url.rsplit("/", 1)[0] + "/v1",
                                model="m", api_key_env="VERIFIER_TEST_KEY", template="{completion}",
                                timeout_s=1.0, retries=0, cache=False)
    declared.declare([spec])
    with caplog.at_level(logging.DEBUG):
        values = declared.load("keyed")(prompts=["q"], completions=["x"])
    assert values == [None]  # the verifier has no chat endpoint: a 404, said once
    assert "404" in caplog.text and "sk-secret-123" not in caplog.text
    request = declared.load("keyed").__wrapped__.kind.request({"prompt": "q", "completion": "x"})
    assert request.headers == {"Authorization": "Bearer sk-secret-123"} and "sk-secret" not in repr(request)


def test_a_declared_name_reaches_axolotls_loader(verifier):
    cfg = {"trl": {"reward_funcs": ["verifier_cfg", "correctness"]},
           "grpo_plugin": {"remote_rewards": [{"name": "verifier_cfg", "kind": "http", "url": verifier.url}]}}
    assert resolve_names(cfg, read_run(cfg))[1] == []
    path = cfg["trl"]["reward_funcs"][0]
    assert path == "axolotl_grpo_plugin.reward_remote__verifier_cfg"
    from axolotl.core.trainers.grpo import GRPOStrategy

    fn = GRPOStrategy.get_reward_func(path)
    assert fn.__name__ == "verifier_cfg"  # TRL's metric name: rewards/verifier_cfg/mean
    assert fn(prompts=["q", "q"], completions=GOOD, answer=["7", "7"]) == [1.0, 0.0]
    assert resolve_names(cfg, read_run(cfg))[1] == []  # resolving twice keeps the path


def _score_in_fresh_process(blob, queue):
    reward = pickle.loads(blob)
    queue.put(reward(prompts=["q"], completions=["<answer>5</answer> spawn"], answer=["5"]))


def test_the_reward_pickles_by_value_into_a_spawned_process(verifier):
    reward, _ = reward_for(verifier.url, name="pickled", cache=False)
    blob = pickle.dumps(reward)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_score_in_fresh_process, args=(blob, queue))
    proc.start()
    try:
        assert queue.get(timeout=120) == [1.0]
    finally:
        proc.join(timeout=30)


@pytest.mark.parametrize(("entry", "key", "says"), [
    ({"name": "j", "kind": "judge", "model": "m", "template": "{completion}"}, "[0].base_url", "needs `base_url`"),
    ({"name": "j", "kind": "judge", "base_url": "http://127.0.0.1:1/v1", "model": "m", "template": "{prompt}"},
     "[0].template", "never shows the judge the completion"),
    ({"name": "j", "kind": "judge", "base_url": "http://127.0.0.1:1/v1", "model": "m", "template": "{completion} {0}"},
     "[0].template", "not a column name"),
    ({"name": "j", "kind": "judge", "base_url": "http://127.0.0.1:1/v1", "model": "m", "template": "{completion}",
      "score": {"regex": "SCORE: [0-9]+"}}, "[0].score.regex", "no group"),
    ({"name": "j", "kind": "judge", "base_url": "http://127.0.0.1:1/v1", "model": "m", "template": "{completion}",
      "api_key_env": "SURELY_UNSET_KEY_VAR"}, "[0].api_key_env", "not set"),
    ({"name": "v", "kind": "http", "url": "127.0.0.1:8080/verify"}, "[0].url", "not an http(s) URL"),
    ({"name": "v", "kind": "http", "url": "http://127.0.0.1:1/v", "template": "{completion}"}, "[0].template",
     "a `kind: judge` key"),
    ({"name": "correctness", "kind": "http", "url": "http://127.0.0.1:1/v"}, "[0].name", "registered reward"),
])
def test_check_names_the_key_the_value_and_the_fix(entry, key, says):
    problems = check(read_run({"grpo_plugin": {"remote_rewards": [entry]}}))
    assert [p.key for p in problems] == [f"grpo_plugin.remote_rewards{key}"]
    assert says in problems[0].message and problems[0].fix


def test_a_bad_value_is_a_config_error_naming_the_nested_key():
    from axolotl_grpo_plugin.config.args import settings

    with pytest.raises(GRPOConfigError) as err:
        settings({"grpo_plugin": {"remote_rewards": [{"name": "v", "kind": "http", "url": "http://x/",
                                                      "timeout_s": 0}]}})
    assert [p.key for p in err.value.problems] == ["grpo_plugin.remote_rewards[0].timeout_s"]


def _write_config(tmp_path, url, funcs):
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text()) if (REPO_ROOT / "configs" / "smoke.yaml").exists() else {}
    cfg.setdefault("trl", {})["reward_funcs"] = funcs
    cfg["trl"]["reward_weights"] = [1.0, 0.5]
    cfg.setdefault("grpo_plugin", {})["remote_rewards"] = [{"name": "verifier", "kind": "http", "url": url}]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_score_writes_rewards_by_listed_name_and_the_weighted_sum(verifier, tmp_path, capsys):
    from axolotl_grpo_plugin.commands import main

    config = _write_config(tmp_path, verifier.url, ["correctness", "verifier"])
    rows = [{"step": 1, "prompt": "q", "completion": "<answer>7</answer>", "answer": "7", "rewards": {"old": 1}},
            {"step": 1, "prompt": "q", "completion": "FAULT:500", "answer": "7"},
            {"type": "doctor", "finding": "not a rollout"}]
    source = tmp_path / "rollouts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(config), "--input", str(source), "--output", str(out)]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rewards"] for r in scored] == [{"correctness": 2.0, "verifier": 1.0},
                                             {"correctness": 0.0, "verifier": None}]
    assert [r["reward"] for r in scored] == [2.5, 0.0]
    assert scored[0]["step"] == 1 and scored[0]["answer"] == "7"
    text = capsys.readouterr().out
    assert "scored 2 rows" in text and "skipped 1 row without a `completion`" in text
    assert "verifier" in text and "1 failed" in text


def test_score_leaves_a_good_output_when_it_fails_midway(verifier, tmp_path):
    from axolotl_grpo_plugin.commands.score import main

    config = _write_config(tmp_path, verifier.url, ["by_data_source", "verifier"])
    rows = [{"prompt": "q", "completion": "<answer>7</answer>", "answer": "7", "data_source": "gsm8k"}] * 3
    rows.append({"prompt": "q", "completion": "x", "answer": "7", "data_source": "no_such_task"})
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    out.write_text("good output\n")
    assert main([str(config), "--input", str(source), "--output", str(out), "--batch-size", "2"]) == 2
    assert out.read_text() == "good output\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".scored")] == []


def test_check_reaches_the_verifier_unless_offline(verifier, embedded_model_dir, tmp_path, capsys):
    from axolotl_grpo_plugin.commands import check as check_tool

    config = _write_config(tmp_path, verifier.url, ["correctness", "verifier"])
    asked = verifier.verifier.calls[""]
    assert check_tool.main([str(config), "--cpu", "--offline"]) == 0
    assert "remote reward" not in capsys.readouterr().out and verifier.verifier.calls[""] == asked
    assert check_tool.main([str(config), "--cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"remote reward 'verifier': {verifier.url} answered HTTP 200, score = 0.0 for an empty sample" in printed
    assert verifier.verifier.calls[""] == asked + 1
    down = _write_config(tmp_path, "http://127.0.0.1:9/verify", ["correctness", "verifier"])
    assert check_tool.main([str(down), "--cpu"]) == 0
    assert "warning: remote reward 'verifier': http://127.0.0.1:9/verify did not answer" in capsys.readouterr().out


@pytest.mark.integration
def test_axolotl_train_scores_with_a_yaml_declared_verifier(verifier, embedded_model_dir, tmp_path):
    """The route a yaml name takes under a real `axolotl train`: register resolves it, Axolotl's
    loader imports it, TRL calls it; the metrics, the rollout log and the report show the calls."""
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.observe import read_rollouts
    from axolotl_grpo_plugin.report import notices
    from axolotl_grpo_plugin.report.data import collect

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(tmp_path / "out")
    cfg["max_steps"] = 2
    cfg["trl"]["reward_funcs"] = ["correctness", "verifier_train"]
    cfg["grpo_plugin"] = {"remote_rewards": [{"name": "verifier_train", "kind": "http", "url": verifier.url,
                                              "cache": str(tmp_path / "cache.sqlite")}]}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(steps) == 2
    assert all(s["remote/verifier_train/calls"] == 4 and s["remote/verifier_train/failures"] == 0 for s in steps)
    assert all("rewards/verifier_train/mean" in s for s in steps)
    rollouts = list(read_rollouts(tmp_path / "out"))
    assert len(rollouts) == 8 and all(r["rewards"]["verifier_train"] is not None for r in rollouts)
    assert all(r["remote/verifier_train"]["calls"] == 1 for r in rollouts)
    assert any(line.startswith("Remote reward verifier_train: 8 samples, 8 calls")
               for line in notices(collect(read_rollouts(tmp_path / "out"))))


def test_the_report_counts_the_calls_the_rollout_log_recorded():
    from axolotl_grpo_plugin.report import notices
    from axolotl_grpo_plugin.report.data import collect

    base = {"step": 1, "prompt": "q", "completion": "c", "rewards": {"judge": 1.0}, "reward": 1.0}
    records = [base | {"remote/judge": {"latency_ms": 30.0, "calls": 1}},
               base | {"remote/judge": {"latency_ms": 90.0, "calls": 3, "failed": "HTTP 503"}},
               base | {"remote/judge": {"cached": True}},
               base | {"remote/judge": {"latency_ms": 60.0, "calls": 1, "unscored": "no score"}}]
    assert "Remote reward judge: 4 samples, 5 calls, 1 from the cache, 1 failed (scored None), "\
           "1 without a usable score, 60 ms per sample." in notices(collect(records))


def test_a_stuck_loop_ends_the_batch_at_its_guard_keeping_answers_and_counting_calls(verifier, monkeypatch):
    """The guard is for a loop that stops running: past it, finished samples keep their score,
    the rest end as None, and the calls already made are still counted."""
    import asyncio
    import time

    from axolotl_grpo_plugin.remote import calls

    monkeypatch.setattr(calls, "GUARD_SLACK_S", 0.5)
    reward, spec = reward_for(verifier.url, name="stuck", timeout_s=2.0, retries=0, cache=False)
    assert reward(prompts=["q"], completions=["<answer>1</answer> warm"], answer=["1"]) == [1.0]
    loop = calls.process_loop()
    loop.call_soon_threadsafe(loop.call_later, 0.5, time.sleep, 2.5)  # the loop thread blocks 0.5 s from now
    seen = Collected()
    start = time.monotonic()
    values = reward(prompts=["q"] * 2, completions=["<answer>7</answer> stuck", "FAULT:slow=30 stuck"],
                    answer=["7"] * 2, **seen.kwargs())
    took = time.monotonic() - start
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=30)  # the loop runs again
    assert values == [1.0, None]
    assert calls.batch_guard_s(spec, 2) <= took < calls.batch_guard_s(spec, 2) + 2
    assert "did not finish within" in seen.extra["remote/stuck"][1]["failed"]
    assert seen.metrics["remote/stuck/calls"] == 2 and seen.metrics["remote/stuck/failures"] == 1
