"""Evaluation while training (`grpo_plugin.eval_every`) and keep-best (`grpo_plugin.keep_best`):
the schedule, the metrics reaching the trainer's log and the rollout log, the best step forced
to a checkpoint on a degrading metric stream, the launch-time checks, the report's eval curve,
and one real `axolotl train` on CPU."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import prepared
from transformers import TrainerControl, TrainerState

from axolotl_grpo_plugin.check.trainer import check_eval_every
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.evaluate import periodic
from axolotl_grpo_plugin.evaluate.best import BestTracker
from axolotl_grpo_plugin.report import collect, render_html
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, read_rollouts
from axolotl_grpo_plugin.system.launch import Launch


TEST_FILE = "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl"


def smoke_cfg(repo_root, **plugin):
    from axolotl_grpo_plugin.config.load import read_yaml

    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["grpo_plugin"] = plugin
    return cfg


# --- keep-best on a metric stream --------------------------------------------------------

def test_best_tracker_picks_the_peak_and_says_how_much_it_beat_the_last():
    best = BestTracker("eval/accuracy", "max")
    news = [best.update(s, {"eval/accuracy": v}) for s, v in [(2, 0.2), (4, 0.5), (6, 0.5), (8, 0.1)]]
    assert news == [True, True, False, False]  # a tie keeps the earlier step
    assert (best.best_step, best.best_value, best.last_step) == (4, 0.5, 8)
    line = best.summary("out/checkpoint-4")
    assert "step 4 (out/checkpoint-4)" in line and "step 8" in line and "by 0.4" in line

    low = BestTracker("eval/mean_length", "min")
    assert [low.update(s, {"eval/mean_length": v}) for s, v in [(1, 9.0), (2, 7.0), (3, 8.0)]] == [True, True, False]
    assert low.best_step == 2
    none = BestTracker()
    assert not none.update(1, {"eval/accuracy": float("nan")}) and none.best_step is None
    assert "no best checkpoint" in none.summary()


class FakeTrainer:
    """What the callback touches on a trainer: accelerator, state, args, the callback handler
    (through `transformers.Trainer.log`)."""

    def __init__(self, output_dir):
        self.accelerator = SimpleNamespace(is_main_process=True, num_processes=1)
        self.state = TrainerState(max_steps=8)
        self.args = SimpleNamespace(include_num_input_tokens_seen="no", output_dir=str(output_dir))
        self.logged = []
        self.callback_handler = SimpleNamespace(on_log=self._on_log)
        self.control = TrainerControl()

    def _on_log(self, args, state, control, logs):
        """As transformers' CallbackHandler.on_log: it clears should_log."""
        self.logged.append(dict(logs))
        control.should_log = False
        return control


def test_callback_logs_every_n_steps_and_forces_a_save_at_the_best(tmp_path, monkeypatch, repo_root):
    """A learning-rate spike at the end, as a fake metric stream: accuracy peaks at step 4."""
    trainer = FakeTrainer(tmp_path)
    writer = RolloutLogWriter(tmp_path)
    callback = periodic.PeriodicEvaluation(
        smoke_cfg(repo_root), trainer, {"steps": 2, "limit": 4},
        SimpleNamespace(metric="eval/accuracy", mode="max"), writer)
    stream = iter([0.25, 0.75, 0.5, 0.0])
    calls = []

    def fake_eval():
        calls.append(trainer.state.global_step)
        return {"eval/accuracy": next(stream), "eval/pass@1": 0.5, "eval/rewards/x/mean": 1.0}, 0.1

    monkeypatch.setattr(callback, "_evaluate_on_main", fake_eval)
    saves = []
    for step in range(1, 9):
        trainer.state.global_step = step
        trainer.control = TrainerControl(should_log=True)  # logging_steps: 1
        control = callback.on_step_end(trainer.args, trainer.state, trainer.control)
        saves.append(control.should_save)
        assert control.should_log, "the step's own training log must still run"
    assert calls == [2, 4, 6, 8]
    assert [s for s, saved in zip(range(1, 9), saves) if saved] == [2, 4]
    assert trainer.state.best_global_step == 4 and trainer.state.best_metric == 0.75
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-4")
    # through Trainer.log: every tracker sees eval_* (shown as eval/*), log_history keeps them
    assert [log["eval_accuracy"] for log in trainer.logged] == [0.25, 0.75, 0.5, 0.0]
    assert "eval_rewards/x/mean" in trainer.logged[0]
    assert [h["step"] for h in trainer.state.log_history] == [2, 4, 6, 8]
    assert not list(read_rollouts(tmp_path))  # evaluations are not rollouts
    records = list(read_rollouts(tmp_path, everything=True))
    assert [(r["step"], r["kind"], r["metrics"]["eval/accuracy"]) for r in records] == [
        (2, "eval", 0.25), (4, "eval", 0.75), (6, "eval", 0.5), (8, "eval", 0.0)]

    callback.on_train_end(trainer.args, trainer.state, TrainerControl())
    best = json.loads((tmp_path / periodic.BEST_FILE).read_text())
    assert (best["step"], best["value"], best["last_step"], best["last_value"]) == (4, 0.75, 8, 0.0)


def test_schedule_includes_the_last_step_and_a_resume_keeps_the_best(tmp_path, repo_root, monkeypatch):
    trainer = FakeTrainer(tmp_path)
    trainer.state.max_steps = 5
    callback = periodic.PeriodicEvaluation(smoke_cfg(repo_root), trainer, {"steps": 2},
                                           SimpleNamespace(metric="eval/accuracy", mode="max"))
    trainer.state.best_global_step, trainer.state.best_metric = 2, 0.9  # from the checkpoint
    callback.on_train_begin(trainer.args, trainer.state, TrainerControl())
    monkeypatch.setattr(callback, "_evaluate_on_main", lambda: ({"eval/accuracy": 0.5}, 0.0))
    saves = []
    for step in range(3, 6):
        trainer.state.global_step = step
        saves.append(callback.on_step_end(trainer.args, trainer.state, TrainerControl()).should_save)
    assert [h["step"] for h in trainer.state.log_history] == [4, 5]
    assert trainer.state.best_global_step == 2 and not any(saves)


# --- which engine generates, and with which weights ------------------------------------------

def engine_trainer(mode="server", **generation):
    """Only what `generation.trainer_engine` reads."""
    return SimpleNamespace(use_vllm=True, args=SimpleNamespace(),
                           vllm_generation=SimpleNamespace(mode=mode, **generation))


@pytest.mark.parametrize(("trainer", "engine"), [
    (engine_trainer("server"), "vllm-server"),
    (engine_trainer("colocate", enable_sleep_mode=False, tensor_parallel_size=1), "vllm-colocate"),
    (engine_trainer("colocate", enable_sleep_mode=True), None),       # weights discarded while asleep
    (engine_trainer("colocate", tensor_parallel_size=2), None),        # rank 0 alone would hang
    (SimpleNamespace(use_vllm=True, args=SimpleNamespace(async_prefetch=True), data_producer=object(),
                     vllm_generation=SimpleNamespace(mode="server")), None),  # generates at any time
    # Axolotl's legacy async queue: idle once its batches are done, which the evaluation waits for
    (SimpleNamespace(use_vllm=True, args=SimpleNamespace(async_prefetch=True), data_producer=None,
                     vllm_generation=SimpleNamespace(mode="server")), "vllm-server"),
    (SimpleNamespace(use_vllm=False, args=SimpleNamespace()), None),
])
def test_the_trainers_own_engine_is_chosen_when_it_can_serve_rank_0(trainer, engine):
    from axolotl_grpo_plugin.sampling.generation import trainer_engine

    chosen, why = trainer_engine(trainer)
    assert chosen == engine and (why == "") == (engine is not None)


class FakeEngine:
    """TRL's VLLMGeneration with its server client (or colocated LLM): `sync_weights` loads the
    trainer's current weights, and the engine answers every problem right only while it holds
    the weights of the current step (stale weights answer -1)."""

    def __init__(self, trainer, tokenizer, answers, mode="server"):
        self.trainer, self.tokenizer, self.answers = trainer, tokenizer, answers
        self.mode, self.enable_sleep_mode, self.tensor_parallel_size = mode, False, 1
        self.loaded = trainer.weights
        self.syncs, self.requests = [], []
        self.vllm_client = self.llm = self

    def sync_weights(self):
        self.syncs.append(self.trainer.state.global_step)
        self.loaded = self.trainer.weights

    def _completion(self, prompt):
        answer = self.answers[tuple(prompt)] if self.loaded == self.trainer.weights else "-1"
        text = f"<reasoning>\nsum\n</reasoning>\n<answer>\n{answer}\n</answer>\n"
        return self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]

    def generate(self, prompts, *args, **kwargs):
        if self.mode == "server":  # TRL's VLLMClient.generate
            self.requests.append({k: kwargs[k] for k in ("n", "temperature", "max_tokens")}
                                 | {"seed": kwargs["generation_kwargs"]["seed"]})
            return {"completion_ids": [self._completion(p) for p in prompts for _ in range(kwargs["n"])]}
        params = args[0] if args else kwargs["sampling_params"]  # vllm.LLM.generate
        self.requests.append({k: params[k] for k in ("n", "temperature", "max_tokens", "seed")})
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=self._completion(p["prompt_token_ids"]))
                                         for _ in range(params["n"])]) for p in prompts]


def vllm_trainer(tmp_path, repo_root, embedded_model_dir, mode="server", main=True, processes=1):
    """A FakeTrainer that trains with a (fake) vLLM engine, on the embedded model's tokenizer."""
    from axolotl_grpo_plugin.sampling import models, prompts

    cfg = smoke_cfg(repo_root)
    cfg["base_model"] = str(embedded_model_dir)
    cfg["trl"] = {**cfg["trl"], "use_vllm": True, "vllm_mode": mode}
    tokenizer = models.load_tokenizer(read_run(cfg), str(embedded_model_dir))
    trainer = FakeTrainer(tmp_path)
    trainer.accelerator = SimpleNamespace(is_main_process=main, num_processes=processes,
                                          unwrap_model=lambda model: model)
    trainer.model = SimpleNamespace(device=None, config=SimpleNamespace(_name_or_path="policy"))
    trainer.processing_class, trainer.use_vllm, trainer.weights = tokenizer, True, 0
    trainer._last_loaded_step = -1
    problems = prompts.build_problems(cfg, tokenizer, run=read_run(cfg), dataset=str(repo_root / TEST_FILE), limit=3)
    answers = {tuple(p.input_ids): p.columns["answer"] for p in problems}
    trainer.vllm_generation = FakeEngine(trainer, tokenizer, answers, mode)
    return cfg, trainer


def train_steps(trainer, callback, steps):
    """TRL's loop as far as the engine sees it: before each step's generation the weights are
    pushed when `_last_loaded_step` is behind; the optimizer step moves the weights."""
    engine = trainer.vllm_generation
    for _ in range(steps):
        if trainer._last_loaded_step != trainer.state.global_step:
            engine.sync_weights()
            trainer._last_loaded_step = trainer.state.global_step
        engine.generate  # (the training generation itself is not modelled)
        trainer.weights += 1
        trainer.state.global_step += 1
        callback.on_step_end(trainer.args, trainer.state, TrainerControl())


@pytest.mark.usefixtures("without_cpu_vllm")  # a GPU engine, seeded per request (the CPU build is not)
@pytest.mark.parametrize("mode", ["server", "colocate"])
def test_eval_generates_with_the_trainers_engine_after_pushing_this_steps_weights(
        mode, tmp_path, repo_root, embedded_model_dir, monkeypatch):
    """The engine answers right only from the current weights: an evaluation that did not push
    them first (TRL pushes lazily, before its next generation) would score 0, and one that
    generated with transformers would not reach the engine at all (nor find a model)."""
    import sys

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(SamplingParams=lambda **kw: kw))
    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir, mode)
    writer = RolloutLogWriter(tmp_path)
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 2, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 3, "samples": 2, "seed": 7,
                                                          "max_new_tokens": 24}, writer=writer)
    assert callback.backend == f"vllm-{mode}"
    train_steps(trainer, callback, 4)
    engine = trainer.vllm_generation
    assert [log["eval_accuracy"] for log in trainer.logged] == [1.0, 1.0]
    assert [log["eval_pass@2"] for log in trainer.logged] == [1.0, 1.0]
    # one push per step that moved the weights: the evaluation's push at step 2 is the one TRL's
    # next generation then skips; only the last step's evaluation adds one
    assert engine.syncs == [0, 1, 2, 3, 4] and trainer._last_loaded_step == 4
    greedy = {"n": 1, "temperature": 0.0, "max_tokens": 24, "seed": 7}
    sampled = {"n": 2, "temperature": 1.0, "max_tokens": 24, "seed": 7}
    assert engine.requests == [greedy, sampled, greedy, sampled]
    records = list(read_rollouts(tmp_path, everything=True))
    assert [(r["step"], r["backend"]) for r in records] == [(2, f"vllm-{mode}"), (4, f"vllm-{mode}")]


def test_an_engine_that_already_holds_the_step_is_not_pushed_again(tmp_path, repo_root, embedded_model_dir):
    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir)
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 1, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 3})
    trainer.state.global_step = trainer._last_loaded_step = 5
    assert callback._sync_engine() == 0.0 and trainer.vllm_generation.syncs == []


def test_on_the_async_trainer_the_push_waits_for_the_background_batch(tmp_path, repo_root, embedded_model_dir):
    """Axolotl's async trainer generates the next batch in a background thread. The evaluation's
    push waits until that batch is generated (as Axolotl's own push does: weights changing
    halfway through a batch), then records the step as Axolotl's `_last_synced_step`, so the
    trainer skips its own push of the same weights."""
    import concurrent.futures
    import queue
    import threading

    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir)
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 1, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 3})
    release, seen = threading.Event(), []
    trainer._async_queue, trainer._last_synced_step = queue.Queue(), 2
    background = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    batch = background.submit(release.wait, 5)
    trainer._async_queue.put(batch)
    engine_push = trainer.vllm_generation.sync_weights
    trainer.vllm_generation.sync_weights = lambda: (seen.append(batch.done()), engine_push())
    trainer.state.global_step = 3
    threading.Timer(0.2, release.set).start()
    callback._sync_engine()
    background.shutdown()
    assert seen == [True] and trainer._last_synced_step == 3 and trainer._last_loaded_step == 3


def test_other_ranks_push_their_engine_and_wait_for_rank_0(tmp_path, repo_root, embedded_model_dir, monkeypatch):
    """Colocate on rank 1: its own engine gets the weights (so TRL's bookkeeping stays true on
    every rank), it never generates the evaluation, and it logs rank 0's broadcast metrics."""
    import accelerate.utils

    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir, "colocate", main=False, processes=2)
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 2, "dataset": str(repo_root / TEST_FILE)})

    def broadcast(box, from_process=0):
        assert box == [None] and from_process == 0
        box[0] = ({"eval/accuracy": 0.5}, 1.0)

    monkeypatch.setattr(accelerate.utils, "broadcast_object_list", broadcast)
    train_steps(trainer, callback, 2)
    assert trainer.vllm_generation.syncs == [0, 1, 2] and trainer.vllm_generation.requests == []
    assert [log["eval_accuracy"] for log in trainer.logged] == [0.5]


@pytest.mark.parametrize("every", [{"backend": "transformers"}, {}])
def test_transformers_generates_when_the_engine_cannot(every, tmp_path, repo_root, embedded_model_dir):
    """`backend: transformers`, or a colocated engine that sleeps between generations: the
    trainer's in-memory model generates, the engine is neither pushed nor asked."""
    from axolotl_grpo_plugin.sampling import models

    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir, "colocate")
    trainer.vllm_generation.enable_sleep_mode = not every
    trainer.model = models.load_model(str(embedded_model_dir), "cpu")
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 1, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 2, "max_new_tokens": 4, **every})
    assert callback.backend == "transformers" and callback.why_not_engine
    trainer.state.global_step = 1
    callback.on_step_end(trainer.args, trainer.state, TrainerControl())
    assert trainer.vllm_generation.syncs == [] and trainer.vllm_generation.requests == []
    assert callback.history[0]["backend"] == "transformers" and "eval_accuracy" in trainer.logged[0]


def test_an_engine_that_refuses_the_slice_hands_over_to_transformers(tmp_path, repo_root, embedded_model_dir,
                                                                    caplog):
    """A request the engine refuses (a prompt past its max_model_len, say) must not end the
    training run: that evaluation and the later ones generate with transformers. A dead server
    (the liveness watchdog's PluginError) still ends it."""
    from axolotl_grpo_plugin.sampling import models
    from axolotl_grpo_plugin.vllm.server import ServerError

    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir)
    trainer.model = models.load_model(str(embedded_model_dir), "cpu")
    engine = trainer.vllm_generation

    def refuses(*args, **kwargs):
        engine.requests.append("refused")
        raise RuntimeError("Request failed: 400, prompt is longer than the maximum model length")

    engine.generate = refuses
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 1, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 2, "max_new_tokens": 4})
    with caplog.at_level("ERROR", logger="axolotl_grpo_plugin.evaluate"):
        train_steps(trainer, callback, 2)
    assert engine.requests == ["refused"] and callback.backend == "transformers"
    assert [h["backend"] for h in callback.history] == ["transformers", "transformers"]
    assert len(trainer.logged) == 2 and "the vllm-server engine failed (RuntimeError" in caplog.text

    def dies(*args, **kwargs):
        raise ServerError("the server died.", "read its log")

    cfg, trainer = vllm_trainer(tmp_path, repo_root, embedded_model_dir)
    trainer.vllm_generation.generate = dies
    callback = periodic.PeriodicEvaluation(cfg, trainer, {"steps": 1, "dataset": str(repo_root / TEST_FILE),
                                                          "limit": 2})
    with pytest.raises(ServerError):
        train_steps(trainer, callback, 1)


# --- launch-time checks -------------------------------------------------------------------

def keys(cfg):
    return [p.key for p in check_eval_every(read_run(cfg), Launch())]


def test_checks_name_the_key_and_the_fix(repo_root):
    test_file = str(repo_root / TEST_FILE)
    assert keys(smoke_cfg(repo_root, eval_every={"steps": 2})) == ["grpo_plugin.eval_every.split"]
    assert keys(smoke_cfg(repo_root, eval_every={"steps": 2, "dataset": "./nope.jsonl"})) == \
        ["grpo_plugin.eval_every.dataset"]
    assert keys(smoke_cfg(repo_root, eval_every={"steps": 2, "dataset": test_file})) == []
    assert keys(smoke_cfg(repo_root, keep_best={"metric": "eval/accuracy"})) == ["grpo_plugin.keep_best"]
    every = {"steps": 2, "dataset": test_file, "samples": 2}
    assert keys(smoke_cfg(repo_root, eval_every=every, keep_best={"metric": "eval/pass@4"})) == \
        ["grpo_plugin.keep_best.metric"]
    assert keys(smoke_cfg(repo_root, eval_every=every, keep_best={"metric": "reward"})) == \
        ["grpo_plugin.keep_best.metric"]
    for ok in ("eval/pass@2", "eval/rewards/correctness_reward_func/mean", "eval/format_compliance"):
        assert keys(smoke_cfg(repo_root, eval_every=every, keep_best={"metric": ok})) == [], ok
    zero3 = {**smoke_cfg(repo_root, eval_every=every), "deepspeed": "deepspeed_configs/zero3_bf16.json"}
    assert keys(zero3) == ["grpo_plugin.eval_every"]


# --- the report ---------------------------------------------------------------------------

def test_report_draws_the_eval_curve_and_does_not_count_eval_records_as_rollouts():
    rollout = {"step": 1, "mode": "train", "prompt": "p", "completion": "c", "rewards": {"r": 1.0},
               "reward": 1.0, "length": 3}
    evals = [{"step": s, "mode": "eval", "kind": "eval", "metrics": {"eval/accuracy": a,
              "eval/rewards/r/mean": 0.0}, "seconds": 1.0} for s, a in [(2, 0.1), (4, 0.4), (4, 0.3)]]
    data = collect([rollout, *evals])
    assert data.total == 1 and data.evals == {2: {"eval/accuracy": 0.1, "eval/rewards/r/mean": 0.0},
                                              4: {"eval/accuracy": 0.3, "eval/rewards/r/mean": 0.0}}
    page = render_html(data, "t")
    assert 'alt="held-out eval/accuracy"' in page and "held-out eval/rewards" not in page
    assert 'alt="held-out' not in render_html(collect([rollout]), "t")


# --- a real run ---------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.slow
def test_axolotl_train_evaluates_every_n_steps_and_keeps_the_best(repo_root, embedded_model_dir, tmp_path):
    import yaml
    from conftest import run_axolotl_train

    cfg = smoke_cfg(repo_root, eval_every={"steps": 2, "dataset": str(repo_root / TEST_FILE),
                                           "limit": 4, "samples": 2, "max_new_tokens": 8},
                    keep_best={"metric": "eval/accuracy"})
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"), max_steps=4,
               dataset_prepared_path=str(tmp_path / "prepared"), save_strategy="steps",
               save_steps=100, save_total_limit=1, use_tensorboard=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, logged = run_axolotl_train(config, cwd=tmp_path, timeout=900)
    out = tmp_path / "out"
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(logged) == 4  # every step's training log line, evaluation steps included
    evals = [r for r in read_rollouts(out, everything=True) if r.get("kind") == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"eval/accuracy", "eval/pass@2", "eval/format_compliance", "eval/mean_length"} <= set(evals[0]["metrics"])
    assert proc.stdout.count("grpo_plugin.eval_every: step") == 2 and "completions with transformers in" in proc.stdout
    events = list(out.rglob("events.out.tfevents*"))
    assert any(b"eval/accuracy" in p.read_bytes() for p in events)
    # keep-best: the earliest step with the highest logged accuracy, saved and named
    values = [(r["metrics"]["eval/accuracy"], -r["step"]) for r in evals]
    best_step = -max(values)[1]
    best = json.loads((out / periodic.BEST_FILE).read_text())
    assert best["step"] == best_step and (out / f"checkpoint-{best_step}" / "model.safetensors").is_file()
    assert f"best eval/accuracy = {best['value']:.4g} at step {best_step}" in proc.stdout
    state = json.loads((out / f"checkpoint-{best_step}" / "trainer_state.json").read_text())
    assert state["best_global_step"] == best_step


def test_a_correct_reward_that_names_no_reward_is_refused_at_launch(repo_root, embedded_model_dir, monkeypatch):
    """eval_every's (and eval_at_end's) `correct_reward` was first read at the first evaluation, or
    after the last step: a wrong one is now a launch problem, with the names a config writes."""
    from axolotl_grpo_plugin.errors import GRPOConfigError

    monkeypatch.chdir(repo_root)  # smoke.yaml's base_model is relative to the checkout
    test_file = str(repo_root / TEST_FILE)
    wrong = smoke_cfg(repo_root, eval_every={"steps": 2, "dataset": test_file, "correct_reward": "correctnes"},
                      eval_at_end={"dataset": test_file, "correct_reward": "nope"})
    with pytest.raises(GRPOConfigError) as caught:
        prepared(wrong, Launch(1, False))
    found = {p.key: p.fix for p in caught.value.problems}
    assert set(found) == {"grpo_plugin.eval_every.correct_reward", "grpo_plugin.eval_at_end.correct_reward"}
    assert found["grpo_plugin.eval_at_end.correct_reward"].startswith("name one of correctness, int, ")
    for named in ("correctness", "correctness_reward_func", "int"):
        prepared(smoke_cfg(repo_root, eval_every={"steps": 2, "dataset": test_file, "correct_reward": named}),
                       Launch(1, False))
