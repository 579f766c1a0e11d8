"""A remote reward's budget is the run's, not each process's (remote/ledger.py): real processes
(spawned, as ranks and reward workers are) score against the real verifier of
tests/verifier_server.py and share OUTPUT_DIR/remote-rewards-spend.sqlite; a resumed run
continues its spend, a fresh output_dir starts at 0, and a broken ledger never raises into the
trainer but says which file and what to do."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from queue import Empty

import pytest
from verifier_server import Running

from axolotl_grpo_plugin.config.args import RemoteRewardSettings
from axolotl_grpo_plugin.remote import declared, ledger
from axolotl_grpo_plugin.remote.ledger import LEDGER_FILE, Ledger, LedgerError


CTX = multiprocessing.get_context("spawn")


@pytest.fixture(scope="module")
def verifier():
    with Running() as server:
        yield server


@pytest.fixture(autouse=True)
def unbound():
    yield
    declared.bind_ledger(None)  # later tests count per process again


def completions(tag: str, n: int, extra: str = "FAULT:slow=0.05") -> list[str]:
    """n distinct completions (each its own request); slow enough that the processes overlap."""
    return [f"<answer>{i}</answer> {tag} {extra}" for i in range(n)]


def _rank(url, output_dir, keys, texts, start, queue, start_run):
    """One training process: bound to the run's ledger as `register` binds it, then one batch."""
    if output_dir is not None:
        declared.start_run(output_dir, [keys["name"]], **start_run)
    declared.declare([RemoteRewardSettings(kind="http", url=url, cache=False, **keys)])
    reward = declared.load(keys["name"])
    start.wait(60)
    metrics = {}
    values = reward(prompts=["q"] * len(texts), completions=texts, answer=["0"] * len(texts),
                    log_metric=metrics.__setitem__)
    queue.put((values, metrics))


def run_ranks(verifier, output_dir, keys, batches, start_run=None):
    """Each batch scored in its own spawned process, all started together; their (values, metrics)."""
    start, queue = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_rank, args=(verifier.url, output_dir, keys, texts, start, queue,
                                              start_run or {"fresh": False, "main": False}))
             for texts in batches]
    for proc in procs:
        proc.start()
    start.set()
    results, deadline = [], time.monotonic() + 120
    try:
        while len(results) < len(procs):
            try:
                results.append(queue.get(timeout=0.5))
            except Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                assert not dead and time.monotonic() < deadline, f"a rank failed (exit codes {dead})"
        return results
    finally:
        for proc in procs:
            proc.join(timeout=30)


def made(verifier, texts) -> int:
    return sum(verifier.verifier.calls[t] for t in texts)


@pytest.mark.parametrize(("shared", "expected"), [(True, 10), (False, 20)])
def test_two_processes_share_one_call_budget(verifier, tmp_path, shared, expected):
    """budget_calls=10 between two ranks: 10 calls in all with the ledger (20 without: the gap)."""
    batches = [completions(f"rank{r} shared={shared}", 10) for r in range(2)]
    keys = {"name": "shared_calls", "budget_calls": 10, "concurrency": 4}
    results = run_ranks(verifier, str(tmp_path) if shared else None, keys, batches)
    assert made(verifier, batches[0] + batches[1]) == expected
    assert sum(v is not None for values, _ in results for v in values) == expected
    if shared:  # every call was reserved before it was sent: never past the budget
        assert Ledger(tmp_path / LEDGER_FILE).totals("shared_calls") == (10, 0)
        assert max(m["remote/shared_calls/spent_calls"] for _, m in results) == 10


def test_two_processes_overshoot_tokens_by_at_most_the_calls_in_flight(verifier, tmp_path):
    """Tokens are known only from the answer: calls start while the run is under budget_tokens,
    so it ends at most (processes x concurrency) answers past it."""
    per_call, budget, concurrency = 30, 100, 3
    batches = [completions(f"rank{r} tokens", 20, f"FAULT:slow=0.1 TOKENS={per_call}") for r in range(2)]
    keys = {"name": "shared_tokens", "budget_tokens": budget, "concurrency": concurrency}
    run_ranks(verifier, str(tmp_path), keys, batches)
    calls, tokens = Ledger(tmp_path / LEDGER_FILE).totals("shared_tokens")
    assert made(verifier, batches[0] + batches[1]) == calls
    assert tokens == calls * per_call
    assert budget <= tokens <= budget + 2 * concurrency * per_call


def _hammer(path, start, queue):
    book = Ledger(path)
    start.wait(60)
    queue.put(sum(book.reserve("hammered", 500, None) is None for _ in range(200)))


def test_reservations_are_atomic_across_processes(tmp_path):
    """4 processes x 200 reservations against budget_calls=500: exactly 500 granted, none lost."""
    start, queue = CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_hammer, args=(tmp_path / LEDGER_FILE, start, queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    start.set()
    granted = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sum(granted) == 500 and Ledger(tmp_path / LEDGER_FILE).totals("hammered") == (500, 0)


def test_a_resumed_run_continues_the_spend_and_a_fresh_one_starts_at_zero(verifier, tmp_path):
    keys = {"name": "resumed", "budget_calls": 10}
    first = completions("first", 6)
    run_ranks(verifier, str(tmp_path / "run"), keys, [first], {"fresh": True, "main": True})
    assert made(verifier, first) == 6
    resumed = completions("resumed", 10)
    [(values, metrics)] = run_ranks(verifier, str(tmp_path / "run"), keys, [resumed], {"fresh": False, "main": True})
    assert made(verifier, resumed) == 4 and values.count(None) == 6  # which 4: whichever reserved first
    assert metrics["remote/resumed/spent_calls"] == 10  # the run's, not this process's 4
    elsewhere = completions("new output_dir", 10)
    [(values, metrics)] = run_ranks(verifier, str(tmp_path / "other"), keys, [elsewhere], {"fresh": False, "main": True})
    assert made(verifier, elsewhere) == 10 and None not in values
    again = completions("fresh run, same output_dir", 10)
    [(values, _)] = run_ranks(verifier, str(tmp_path / "run"), keys, [again], {"fresh": True, "main": True})
    assert made(verifier, again) == 10 and None not in values


def test_a_raised_budget_on_resume_lets_the_run_go_on(verifier, tmp_path):
    run_ranks(verifier, str(tmp_path), {"name": "raised", "budget_calls": 3}, [completions("raised a", 5)])
    more = completions("raised b", 5)
    [(values, _)] = run_ranks(verifier, str(tmp_path), {"name": "raised", "budget_calls": 5}, [more])
    assert made(verifier, more) == 2 and values.count(None) == 3


def _broken_ledger(path, how):
    if how == "corrupt":
        path.write_bytes(b"this is not a sqlite database\n" * 40)
    else:
        path.mkdir()  # a folder where the file should be: cannot be opened or written


@pytest.mark.parametrize(("how", "fix"), [("corrupt", "delete"), ("unwritable", "writable")])
def test_a_broken_ledger_stops_the_run_at_start_naming_the_file_and_the_fix(tmp_path, how, fix):
    _broken_ledger(tmp_path / LEDGER_FILE, how)
    with pytest.raises(LedgerError) as err:
        declared.start_run(str(tmp_path), ["judge"], fresh=False, main=True)
    text = err.value.render()
    assert str(tmp_path / LEDGER_FILE) in text and "fix:" in text and fix in text
    with pytest.raises(LedgerError):  # a fresh run cannot empty it either
        declared.start_run(str(tmp_path), ["judge"], fresh=True, main=True)


@pytest.mark.parametrize("how", ["corrupt", "unwritable"])
def test_a_broken_ledger_in_a_rank_scores_none_and_never_raises(verifier, tmp_path, caplog, how):
    """A rank that finds it broken (another process corrupted it mid-run): no call is made."""
    _broken_ledger(tmp_path / LEDGER_FILE, how)
    declared.start_run(str(tmp_path), ["broken"], fresh=False, main=False)  # ranks > 0 only bind
    declared.declare([RemoteRewardSettings(name="broken", kind="http", url=verifier.url, cache=False,
                                           budget_calls=100)])
    reward = declared.load("broken")
    texts = completions(f"broken {how}", 4, "")
    metrics = {}
    with caplog.at_level(logging.WARNING):
        values = reward(prompts=["q"] * 4, completions=texts, answer=["0"] * 4, log_metric=metrics.__setitem__)
        reward(prompts=["q"] * 4, completions=texts, answer=["0"] * 4)
    assert values == [None] * 4 and made(verifier, texts) == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(tmp_path / LEDGER_FILE) in errors[0].getMessage()
    assert "Fix:" in errors[0].getMessage() and metrics["rewards/broken/errors"] == 0.0


def test_without_a_budget_a_broken_ledger_only_stops_the_counting(verifier, tmp_path, caplog):
    _broken_ledger(tmp_path / LEDGER_FILE, "corrupt")
    declared.start_run(str(tmp_path), ["counted"], fresh=False, main=False)
    declared.declare([RemoteRewardSettings(name="counted", kind="http", url=verifier.url, cache=False)])
    texts = completions("counted", 3, "")
    with caplog.at_level(logging.WARNING):
        values = declared.load("counted")(prompts=["q"] * 3, completions=texts, answer=["1"] * 3)
    assert values == [0.0, 1.0, 0.0] and made(verifier, texts) == 3
    assert str(tmp_path / LEDGER_FILE) in caplog.text and "in this process from now on" in caplog.text


def test_the_ledger_travels_with_the_pickled_reward(tmp_path):
    """Axolotl's reward workers get the reward by pickle: it keeps counting in the run's ledger."""
    import pickle

    declared.start_run(str(tmp_path), ["pickled_run"], fresh=True, main=True)
    declared.declare([RemoteRewardSettings(name="pickled_run", kind="http", url="http://127.0.0.1:9/v")])
    blob = pickle.dumps(declared.load("pickled_run"))
    declared.bind_ledger(None)
    assert pickle.loads(blob).__wrapped__.ledger == tmp_path.resolve() / LEDGER_FILE


def test_no_remote_rewards_leave_no_ledger(tmp_path):
    assert declared.start_run(str(tmp_path), [], fresh=True, main=True) is None
    assert not os.path.exists(tmp_path / LEDGER_FILE)


def _register(cfg, monkeypatch):
    """The plugin's `register` as rank 0 of a training launch runs it (no server, no relaunch)."""
    from axolotl_grpo_plugin.plugin import GRPOPlugin
    from axolotl_grpo_plugin.system import launch
    from axolotl_grpo_plugin.training import run_lock
    from axolotl_grpo_plugin.vllm import autostart

    monkeypatch.setattr(launch, "cuda_gpu_count", lambda: 2)
    monkeypatch.setattr(autostart, "is_training_process", lambda *a, **k: True)
    for name in ("RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    cfg["grpo_plugin"] = {"vllm_autostart": False, "remote_rewards": [
        {"name": "judged", "kind": "http", "url": "http://127.0.0.1:9/verify", "budget_calls": 5}]}
    cfg["trl"]["reward_funcs"] = ["judged"]
    cfg["trl"]["reward_weights"] = [1.0]
    try:
        GRPOPlugin().register(cfg)
    finally:
        run_lock.release(cfg["output_dir"])


def test_register_binds_the_run_and_a_fresh_run_empties_the_ledger(gsm8k_cfg, monkeypatch):
    path = ledger.ledger_path(gsm8k_cfg["output_dir"])
    path.parent.mkdir(parents=True)
    Ledger(path).reserve("judged", None, None)
    _register(gsm8k_cfg, monkeypatch)
    assert declared.load("judged").__wrapped__.ledger == path
    assert Ledger(path).everything() == {}  # no checkpoint to resume: a fresh run starts at 0


def test_register_keeps_the_spend_of_the_run_it_resumes(gsm8k_cfg, monkeypatch):
    from axolotl_grpo_plugin.training.checkpoints import STATE_FILE

    path = ledger.ledger_path(gsm8k_cfg["output_dir"])
    (path.parent / "checkpoint-4").mkdir(parents=True)
    (path.parent / "checkpoint-4" / STATE_FILE).write_text("{}")
    for _ in range(3):
        Ledger(path).reserve("judged", None, None)
    gsm8k_cfg["auto_resume_from_checkpoints"] = True
    _register(gsm8k_cfg, monkeypatch)
    assert Ledger(path).totals("judged") == (3, 0)


def test_register_refuses_a_corrupt_ledger_with_the_file_and_the_fix(gsm8k_cfg, monkeypatch):
    path = ledger.ledger_path(gsm8k_cfg["output_dir"])
    path.parent.mkdir(parents=True)
    _broken_ledger(path, "corrupt")
    with pytest.raises(SystemExit) as exc:  # reported_as_exit: the message, no traceback
        _register(gsm8k_cfg, monkeypatch)
    assert str(path) in str(exc.value.code) and "fix: delete" in str(exc.value.code)


def test_the_run_says_whether_it_continues_the_spend(tmp_path, caplog):
    from axolotl_grpo_plugin.remote.ledger import open_for_run

    open_for_run(tmp_path, fresh=False)  # no level set here: the logger's own must let it through
    assert f"a resumed run continues the spend in {tmp_path}" in caplog.text and "nothing yet" in caplog.text
