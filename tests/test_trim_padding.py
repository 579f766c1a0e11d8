"""Padding trimmed per micro-batch (axolotl_grpo_plugin/training/trim_padding.py): TRL's own
per-token log-prob method on a tiny random model, with and without the trim, on rows padded to a
longer completion than any of them holds."""

from __future__ import annotations

import functools

import pytest
import torch

from axolotl_grpo_plugin.training import trim_padding


@functools.cache
def load_bench():
    from conftest import bench_module

    return bench_module("bench_trim_padding")


def shell(model):
    """What TRL's log-prob method reads from its trainer, with that method (TRL's own code):
    the bench's shell, so the bench times what these tests check."""
    return load_bench().TrainerShell(model, temperature=0.7)


@pytest.fixture(scope="module")
def model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return Qwen2ForCausalLM(config).eval()


def batch(completion_lengths, prompt=5, width=40, seed=0):
    """Rows of a left-padded prompt (`prompt` tokens) and right-padded completions of the given
    lengths, all `width` completion columns wide: what TRL hands its micro-batches."""
    generator = torch.Generator().manual_seed(seed)
    rows = len(completion_lengths)
    prompt_ids = torch.randint(1, 97, (rows, prompt), generator=generator)
    completion_ids = torch.randint(1, 97, (rows, width), generator=generator)
    completion_mask = torch.zeros(rows, width, dtype=torch.long)
    for row, length in enumerate(completion_lengths):
        completion_mask[row, :length] = 1
        completion_ids[row, length:] = 0  # the pad token
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([torch.ones(rows, prompt, dtype=torch.long), completion_mask], dim=1)
    return ids, mask, completion_mask, width


def counted(model, widths):
    """The model, recording the sequence width of each forward it runs."""
    forward = model.forward

    def recording(*args, **kwargs):
        widths.append(kwargs["input_ids"].size(1))
        return forward(*args, **kwargs)

    model.forward = recording
    return forward


def test_each_chunk_runs_its_own_length_and_every_attended_log_prob_is_the_same(model):
    ids, mask, completion_mask, width = batch([40, 3, 7, 2, 12, 9])  # one row at the full width
    plain = shell(model)
    before, entropies_before, _ = plain._get_per_token_logps_and_entropies(
        model, ids, mask, width, batch_size=2, compute_entropy=True)
    trimmed = shell(model)
    assert trim_padding.install(trimmed) and not trim_padding.install(trimmed)  # once
    widths = []
    forward = counted(model, widths)
    try:
        after, entropies_after, aux = trimmed._get_per_token_logps_and_entropies(
            model, ids, mask, width, batch_size=2, compute_entropy=True)
    finally:
        model.forward = forward
    assert widths == [5 + 40, 5 + 7, 5 + 12]  # each pair of rows at its longer completion
    assert trimmed._metrics["eval"][trim_padding.METRIC] == [pytest.approx(1 - (45 + 12 + 17) / (3 * 45))]
    assert after.shape == before.shape == (6, 40) and entropies_after.shape == entropies_before.shape
    kept = completion_mask.bool()
    torch.testing.assert_close(after[kept], before[kept], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropies_after[kept], entropies_before[kept], atol=1e-5, rtol=1e-5)
    # the columns a chunk dropped come back as zeros (masked out of every loss and metric)
    assert (after[2:4, 7:] == 0).all() and (after[4:6, 12:] == 0).all() and aux is None


def test_gradients_through_the_trimmed_rows_match(model):
    """The loss is a masked sum of the log-probs: its gradient must not change with the trim."""
    ids, mask, completion_mask, width = batch([4, 9, 2, 30], seed=1)
    grads = []
    for trim in (False, True):
        trainer = shell(model)
        if trim:
            trim_padding.install(trainer)
        model.zero_grad()
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, width, batch_size=2)
        (logps * completion_mask).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_a_chunk_of_empty_completions_keeps_one_column(model):
    ids, mask, completion_mask, width = batch([0, 0, 5, 1], seed=2)
    trainer = shell(model)
    trim_padding.install(trainer)
    widths = []
    forward = counted(model, widths)
    try:
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, width, batch_size=2)
    finally:
        model.forward = forward
    assert widths == [5 + 1, 5 + 5] and logps.shape == (4, width)


def test_images_or_token_types_pass_untouched():
    class Recording:
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, **kwargs):
            self.seen = (input_ids.shape, logits_to_keep, batch_size, sorted(kwargs))
            return input_ids.float(), None, None

    trainer = Recording()
    assert trim_padding.install(trainer)
    ids, mask = torch.ones(2, 10, dtype=torch.long), torch.tensor([[1] * 4 + [0] * 6] * 2)
    trainer._get_per_token_logps_and_entropies(None, ids, mask, 8, batch_size=1, pixel_values=torch.zeros(1))
    assert trainer.seen == ((2, 10), 8, 1, ["pixel_values"])
    trainer._get_per_token_logps_and_entropies(None, ids, mask, 8, batch_size=1, pixel_values=None)
    assert trainer.seen == ((1, 4), 2, None, ["pixel_values"])  # text only: trimmed, one chunk a call


def test_axolotls_async_trainer_gets_its_two_outputs_back():
    """Axolotl's AsyncGRPOTrainer overrides the method with a (log-probs, entropies) result."""
    class AsyncLike:
        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False):
            logps = torch.ones(input_ids.size(0), logits_to_keep)
            return logps, (logps * 2 if compute_entropy else None)

    trainer = AsyncLike()
    assert trim_padding.install(trainer)
    ids, mask = torch.ones(4, 10, dtype=torch.long), torch.tensor([[1] * 4 + [0] * 6] * 2 + [[1] * 9 + [0]] * 2)
    model = torch.nn.Linear(1, 1)
    logps, entropies = trainer._get_per_token_logps_and_entropies(model, ids, mask, 8, batch_size=2,
                                                                  compute_entropy=True)
    assert logps.shape == entropies.shape == (4, 8)
    assert logps[:2].tolist() == [[1, 1] + [0] * 6] * 2 and logps[2:].tolist() == [[1] * 7 + [0]] * 2
    assert (entropies == 2 * logps).all()
    assert trainer._get_per_token_logps_and_entropies(model, ids, mask, 8)[1] is None
    by_position = trainer._get_per_token_logps_and_entropies(model, ids, mask, 8, 2)[0]  # batch_size by position
    assert by_position.tolist() == logps.tolist()


def test_trailing_padding_counts_the_columns_no_row_attends_to():
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 0]])
    assert trim_padding.trailing_padding(mask) == 1
    assert trim_padding.trailing_padding(torch.zeros(2, 3, dtype=torch.long)) == 3
    assert trim_padding.trailing_padding(torch.ones(2, 3, dtype=torch.long)) == 0


def test_install_leaves_a_method_of_another_shape_alone():
    class Other:
        def _get_per_token_logps_and_entropies(self, inputs):
            return inputs

    other = Other()
    assert not trim_padding.install(other)
    assert other._get_per_token_logps_and_entropies(3) == 3
    assert not trim_padding.install(object())


def test_the_bench_times_both_ways_on_a_runs_lengths(embedded_model_dir, tmp_path, capsys):
    """bench/bench_trim_padding.py on the embedded model: a step whose completions all have one
    length has nothing to trim; one with a long completion among short ones has."""
    import json

    bench = load_bench()
    records = [{"step": 1, "mode": "train", "prompt": "two plus two", "length": 12} for _ in range(4)]
    records += [{"step": 2, "mode": "train", "prompt": "two plus two", "length": n} for n in (60, 3, 4, 2)]
    records += [{"step": 2, "mode": "eval", "prompt": "x", "length": 500}]
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert bench.main(["--model", str(embedded_model_dir), "--rollouts", str(rollouts), "--bf16", "false"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first, second, summary = lines
    assert (first["longest"], first["trimmed_share"]) == (12, 0)
    assert second["longest"] == 60 and 0.3 < second["trimmed_share"] < 1  # 3 of 4 rows pair short
    assert summary["steps"] == 2 and summary["plain_s"] > 0 and summary["trimmed_s"] > 0
    assert bench.main(["--model", str(embedded_model_dir), "--rollouts", str(rollouts), "--bf16", "false",
                       "--from-step", "2"]) == 0
    only, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (only["step"], only["longest"], summary["steps"]) == (2, 60, 1)
