"""Zero-advantage rows skip the forward and backward (training/zero_advantage.py).

The claim is exactness: TRL's real GRPOTrainer trains the embedded tiny model twice from the same
seed, once as TRL ships it and once with the skip, and the weights must come out the same.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest


torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from conftest import REPO_ROOT, module_from  # noqa: E402

from axolotl_grpo_plugin.training import zero_advantage  # noqa: E402


RUN = module_from(REPO_ROOT / "tests" / "fixtures" / "ddp_grpo.py")  # prompts, reward, settings: every run's
PROMPTS, spread_on_half = RUN.PROMPTS, RUN.spread_on_half


def trained(model_dir, tmp_path, reward, skip: bool, **config):
    """The embedded tiny model after 2 GRPO steps of 2 prompts x 4 completions (generated in the
    trainer, sampled), with or without the skip; the trainer too, for its metrics."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = RUN.settings(str(tmp_path / ("skip" if skip else "plain")), **config)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[reward], args=GRPOConfig(**settings),
                          train_dataset=Dataset.from_dict({"prompt": PROMPTS}))
    if skip:
        assert zero_advantage.install(trainer) is None
    trainer.train()
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}, trainer.state.log_history


def constant(prompts, completions, **_):
    return [1.0] * len(prompts)


def test_skipping_zero_advantage_micro_batches_leaves_the_weights_bit_for_bit(embedded_model_dir, tmp_path):
    plain, _ = trained(embedded_model_dir, tmp_path, spread_on_half, skip=False)
    skipped, logged = trained(embedded_model_dir, tmp_path, spread_on_half, skip=True)
    shares = [row[zero_advantage.METRIC] for row in logged if zero_advantage.METRIC in row]
    assert len(shares) == 2 and sum(shares) > 0 and min(shares) < 1  # some micro-batches skipped, some ran
    assert plain.keys() == skipped.keys()
    for name in plain:
        assert torch.equal(plain[name], skipped[name]), name


def test_a_step_with_no_spread_at_all_still_steps_adamw_as_before(embedded_model_dir, tmp_path):
    """Every micro-batch skipped: the zero tied to the parameters gives zero gradients, so AdamW's
    weight decay (and its moments) move the weights exactly as the unskipped step would."""
    plain, _ = trained(embedded_model_dir, tmp_path, constant, skip=False)
    skipped, logged = trained(embedded_model_dir, tmp_path, constant, skip=True)
    assert [row[zero_advantage.METRIC] for row in logged if zero_advantage.METRIC in row] == [1.0, 1.0]
    moved = 0
    for name in plain:
        assert torch.equal(plain[name], skipped[name]), name
    from transformers import AutoModelForCausalLM

    start = dict(AutoModelForCausalLM.from_pretrained(str(embedded_model_dir)).named_parameters())
    moved = sum(not torch.equal(start[name], plain[name]) for name in plain)
    assert moved  # weight decay moved them: a skip that left the gradients unset would not


def test_dropping_zero_rows_from_a_micro_batch_keeps_the_dapo_update(embedded_model_dir, tmp_path):
    """dapo normalizes by the whole batch's tokens: a micro-batch of 4 drops its zero rows and
    the update is the same up to float rounding (the products run on fewer rows). Plain SGD without
    clipping: AdamW or a clipped norm would hide a wrong scale (neither step follows the gradient's size)."""
    config = dict(loss_type="dapo", per_device_train_batch_size=4, gradient_accumulation_steps=2, optim="sgd",
                  weight_decay=0.0, max_grad_norm=0.0)
    plain, _ = trained(embedded_model_dir, tmp_path, spread_on_half, skip=False, **config)
    skipped, logged = trained(embedded_model_dir, tmp_path, spread_on_half, skip=True, **config)
    shares = [row[zero_advantage.METRIC] for row in logged if zero_advantage.METRIC in row]
    assert len(shares) == 2 and sum(shares) > 0 and min(shares) < 1
    for name in plain:
        torch.testing.assert_close(plain[name], skipped[name], rtol=1e-5, atol=1e-7, msg=name)


# --- the wrapper, on a recorded loss ----------------------------------------------------------

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)


def wrapped(drop_rows: bool, collective: str | None = None):
    seen = []

    def original(model, inputs, return_outputs=False, num_items_in_batch=None):
        seen.append(inputs)
        return (model.w * inputs["advantages"].float().sum()).sum()

    trainer = SimpleNamespace(_metrics={"train": {zero_advantage.METRIC: []}})
    return zero_advantage._skipping(original, drop_rows, collective).__get__(trainer), trainer, seen


def batch(advantages, **extra):
    rows = len(advantages)
    return {"prompt_ids": torch.arange(rows * 2).view(rows, 2), "completion_mask": torch.ones(rows, 3),
            "advantages": torch.tensor(advantages), "num_items_in_batch": torch.tensor(7), **extra}


def test_rows_are_dropped_only_where_the_loss_allows_and_the_batch_is_text():
    model = Model().train()
    compute, trainer, seen = wrapped(drop_rows=True)
    compute(model, batch([0.0, 1.5, 0.0, -2.0]))
    assert seen[-1]["advantages"].tolist() == [1.5, -2.0]
    assert seen[-1]["prompt_ids"].tolist() == [[2, 3], [6, 7]]
    assert seen[-1]["num_items_in_batch"].item() == 7  # the whole batch's count, kept
    compute(model, batch([0.0, 1.5], pixel_values=torch.ones(5, 2)))  # images: rows stay
    assert seen[-1]["advantages"].tolist() == [0.0, 1.5]
    assert trainer._metrics["train"][zero_advantage.METRIC] == [0.5, 0.0]
    compute, trainer, seen = wrapped(drop_rows=False)  # grpo: each micro-batch's mean over its rows
    compute(model, batch([0.0, 1.5]))
    assert seen[-1]["advantages"].tolist() == [0.0, 1.5] and trainer._metrics["train"][zero_advantage.METRIC] == [0.0]


def test_an_all_zero_micro_batch_runs_nothing_and_ties_its_zero_only_when_no_gradient_exists():
    model = Model().train()
    compute, trainer, seen = wrapped(drop_rows=False)
    loss = compute(model, batch([0.0, 0.0]))
    assert seen == [] and loss.item() == 0
    loss.backward()
    assert torch.equal(model.w.grad, torch.zeros(3)) and model.frozen.grad is None
    model.w.grad = torch.full((3,), 2.0)  # a backward ran earlier in the window
    compute(model, batch([0.0, 0.0])).backward()
    assert model.w.grad.tolist() == [2.0, 2.0, 2.0]
    per_token = compute(model, batch([[0.0, 0.0], [0.0, 0.0]]))  # (B, T) advantages: rows all 0
    assert seen == [] and per_token.item() == 0
    model.eval()
    compute(model, batch([0.0, 0.0]))  # evaluation: TRL's loss as it is
    assert len(seen) == 1


@pytest.mark.parametrize("change, reason", [
    (dict(beta=0.04), "trl.beta is 0.04"),
    (dict(_entropy_bonus_enabled=True), "entropy bonus"),
    (dict(aux_loss_enabled=True), "router"),
])
def test_the_skip_stays_off_where_it_could_change_the_training(change, reason):
    from trl import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)
    settings = {"beta": 0.0, "accelerator": SimpleNamespace(num_processes=1, distributed_type="NO"), **change}
    for key, value in settings.items():
        setattr(trainer, key, value)
    assert reason in zero_advantage.install(trainer)
    assert "compute_loss" not in vars(trainer)


@pytest.mark.parametrize("processes, kind, named", [
    (1, "NO", None), (2, "MULTI_GPU", "2 processes"), (1, "DEEPSPEED", "DEEPSPEED"), (4, "FSDP", "FSDP"),
])
def test_with_collectives_a_skipped_micro_batch_runs_trls_loss_on_one_token(processes, kind, named):
    """DDP, DeepSpeed and FSDP wait for every process's forward and backward, and TRL's loss
    gathers its metrics: the skip stays on and calls TRL's loss on one token, where the batch is text."""
    from trl import GRPOTrainer

    trainer = object.__new__(GRPOTrainer)
    trainer.beta, trainer.accelerator = 0.0, SimpleNamespace(num_processes=processes, distributed_type=kind)
    assert zero_advantage.install(trainer) is None and zero_advantage.collective(trainer.accelerator) == named
    compute, _, seen = wrapped(drop_rows=True, collective=named)
    model = Model().train()
    loss = compute(model, batch([0.0, 0.0], completion_ids=torch.arange(6).view(2, 3),
                                ref_per_token_logps=torch.ones(2, 3)))
    loss.backward()
    assert loss.item() == 0 and torch.equal(model.w.grad, torch.zeros(3))
    if not named:
        assert seen == []  # nothing ran
        return
    one = seen[-1]
    assert one["prompt_ids"].tolist() == [[1]] and one["completion_ids"].tolist() == [[0]]
    assert one["completion_mask"].shape == one["ref_per_token_logps"].shape == (1, 1)
    assert one["advantages"].tolist() == [0.0] and one["num_items_in_batch"].item() == 7
    per_token = compute(model, batch([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert per_token.item() == 0 and seen[-1]["advantages"].tolist() == [[0.0]]
    compute(model, batch([0.0, 0.0], pixel_values=torch.ones(5, 2)))  # images: the whole batch runs
    assert seen[-1]["advantages"].tolist() == [0.0, 0.0]


def test_a_trainer_with_its_own_loss_is_left_alone():
    from trl import GRPOTrainer

    class OwnLoss(GRPOTrainer):
        def _compute_loss(self, model, inputs):
            raise AssertionError("never called")

    trainer = object.__new__(OwnLoss)
    trainer.beta, trainer.accelerator = 0.0, SimpleNamespace(num_processes=1, distributed_type="NO")
    assert "OwnLoss computes its loss its own way" in zero_advantage.install(trainer)
    plain = object.__new__(GRPOTrainer)
    plain.beta, plain.accelerator = 0.0, SimpleNamespace(num_processes=1, distributed_type="NO")
    plain.loss_type = "dapo"
    assert zero_advantage.install(plain) is None and zero_advantage.install(plain) is None
    assert plain.compute_loss.skips_zero_advantage


def test_a_loss_set_on_the_trainer_after_the_install_is_called_as_it_is():
    """A plugin that replaces `_compute_loss` on the trainer (a recorder, another loss) after ours
    installed: not TRL's own loss, so every micro-batch reaches it."""
    model = Model().train()
    compute, trainer, seen = wrapped(drop_rows=True)
    trainer._compute_loss = lambda model, inputs: None
    compute(model, batch([0.0, 0.0]))
    assert len(seen) == 1 and seen[0]["advantages"].tolist() == [0.0, 0.0]


# --- more than one process ---------------------------------------------------------------------

def ddp_run(model_dir, out, mode: str) -> list[dict]:
    """The 2-process gloo run of tests/fixtures/ddp_grpo.py; each rank's record."""
    import socket
    import subprocess
    import sys

    from conftest import subprocess_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out.mkdir(parents=True)
    procs = [subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "fixtures" / "ddp_grpo.py"), str(model_dir), str(out), mode],
        env=subprocess_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(port), OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]  # the test, both runs: 49 s at nice 19 beside a GRPO run
    except subprocess.TimeoutExpired:  # a process left waiting in a collective: the skip broke DDP
        for p in procs:
            p.kill()
        pytest.fail(f"the {mode} run hung (a rank waited in a gradient collective)")
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-3000:]
    return [torch.load(out / f"rank-{r}.pt") for r in range(2)]


def test_under_ddp_a_skipped_micro_batch_runs_one_token_and_the_weights_stay_bit_for_bit(
        embedded_model_dir, tmp_path):
    """Two processes (gloo, CPU): a rank whose micro-batch is all zero runs one token's forward
    and backward while the other trains real rows, and both end where TRL alone takes them."""
    plain = ddp_run(embedded_model_dir, tmp_path / "plain", "plain")
    skipped = ddp_run(embedded_model_dir, tmp_path / "skip", "skip")
    zero = [rank["all_zero"] for rank in skipped]
    assert zero == [rank["all_zero"] for rank in plain]  # the same rollouts both ways
    assert any(a != b for a, b in zip(*zero))  # one rank skipped while the other trained
    shares = skipped[0]["skipped_share"]
    assert len(shares) == 2 and 0 < sum(shares) and min(shares) < 1 and plain[0]["skipped_share"] == []
    for rank in range(2):
        for name, weight in plain[rank]["weights"].items():
            assert torch.equal(weight, skipped[rank]["weights"][name]), (rank, name)
    for name, weight in skipped[0]["weights"].items():  # DDP kept the ranks together
        assert torch.equal(weight, skipped[1]["weights"][name]), name
