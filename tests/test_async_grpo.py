"""Axolotl's async GRPO (`trl.async_prefetch`, `trl.use_data_producer`) is refused before the
model loads where the installed Axolotl's async trainer cannot read the installed TRL's
generation output (Axolotl 0.19/0.20), and allowed where it can (0.21). The version table's
answer is checked against the installed code itself, in every venv the project sets up."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
import yaml

from axolotl_grpo_plugin.check.trainer import async_grpo_warnings, check_async_grpo
from axolotl_grpo_plugin.config import defaults
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.system.launch import Launch


def _tree(fn) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(fn)))


def returned_values(fn) -> int:
    """How many values `fn` returns (its tuple returns; all alike in TRL's `_generate`)."""
    sizes = {len(node.value.elts) for node in ast.walk(_tree(fn))
             if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple)}
    assert len(sizes) == 1, sizes
    return sizes.pop()


def unpacked_names(fn) -> tuple[int, bool]:
    """(names, starred) of the tuple `fn` unpacks from its `..._generate...(prompts)` call."""
    found = set()
    for node in ast.walk(_tree(fn)):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple)
                and isinstance(node.value, ast.Call) and "generate" in ast.unparse(node.value.func)):
            elts = node.targets[0].elts
            found.add((sum(not isinstance(e, ast.Starred) for e in elts), any(isinstance(e, ast.Starred) for e in elts)))
    assert found, "no tuple unpacked from a generate call"
    assert len(found) == 1, found
    return found.pop()


def test_the_version_table_says_what_the_installed_async_trainer_does():
    from axolotl.core.trainers.grpo.async_trainer import AsyncGRPOTrainer
    from trl import GRPOTrainer

    returned = returned_values(GRPOTrainer._generate)
    names, starred = unpacked_names(AsyncGRPOTrainer._generate_only)
    reads_it = names == returned or (starred and names <= returned)
    assert defaults.AXOLOTL.async_grpo_works == reads_it, (defaults.AXOLOTL_NAME, returned, names, starred)


@pytest.mark.parametrize("key", ["async_prefetch", "use_data_producer"])
def test_check_refuses_async_grpo_only_where_it_cannot_work(key):
    cfg = {"trl": {key: True}}
    [problem] = check_async_grpo(read_run(cfg), Launch(), works=False)
    assert problem.key == f"trl.{key}" and problem.value is True
    assert "too many values to unpack (expected 7)" in problem.message
    assert f"remove `trl.{key}`" in problem.fix and "Axolotl 0.21" in problem.fix
    assert check_async_grpo(read_run(cfg), Launch(), works=True) == []
    assert check_async_grpo(read_run({"trl": {key: False}}), Launch(), works=False) == []
    assert check_async_grpo(read_run({}), Launch(), works=False) == []


@pytest.mark.integration
@pytest.mark.skipif(defaults.AXOLOTL.async_grpo_works, reason="this Axolotl's async trainer works")
def test_axolotl_train_with_async_prefetch_stops_before_the_model_loads(repo_root, embedded_model_dir, tmp_path):
    """Without the refusal, this config loads the model and stops at step 1 with
    `ValueError: too many values to unpack (expected 7)` (Axolotl 0.19 + TRL 1.9, run by hand:
    docs/versions.md)."""
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.config.load import read_yaml

    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["trl"]["async_prefetch"] = True
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"),
               dataset_prepared_path=str(tmp_path / "prepared"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not steps
    assert "trl.async_prefetch = True" in output and "too many values to unpack (expected 7)" in output
    assert "Loading weights" not in output and "Traceback" not in output.split("trl.async_prefetch = True")[0][-2000:]


def test_where_async_runs_check_says_what_does_not_follow_it_yet():
    [warning] = async_grpo_warnings(read_run({"trl": {"async_prefetch": True}, "bf16": True}))
    assert "trl.async_prefetch" in warning and "weight-sync guard allows for it" in warning
    [_, precision] = async_grpo_warnings(read_run({"trl": {"use_data_producer": True}, "bf16": False}))
    assert "trl.use_data_producer" in precision and "bfloat16 autocast" in precision
    assert async_grpo_warnings(read_run({"trl": {"async_prefetch": False}})) == []


# --- the legacy async path's prompts (`trl.async_prefetch` without `trl.use_data_producer`) ------

class LegacyPromptDraws:
    """A stand-in trainer running the installed Axolotl's own legacy `_setup_async`, whose
    `_submit_generation` queues the prompts of each draw as a finished generation, and whose
    steps take the head of the queue and draw the next batch, as `_prepare_inputs_legacy_async`."""

    def __init__(self, rows: int, generations: int = 2, prompts_per_step: int = 2, depth: int = 1):
        from types import SimpleNamespace

        from axolotl.core.trainers.grpo.async_trainer import AsyncGRPOTrainer

        self._setup_async_of_axolotl = AsyncGRPOTrainer._setup_async
        self._shutdown_async = lambda: None
        self.train_dataset = [{"prompt": f"question {i}"} for i in range(rows)]
        self.num_generations = generations
        self.num_iterations = 1
        self._train_batch_size = prompts_per_step * generations
        self.args = SimpleNamespace(generation_batch_size=prompts_per_step * generations, seed=0,
                                    prefetch_depth=depth, gradient_accumulation_steps=1,
                                    steps_per_generation=1)
        self.data_collator = lambda batch: batch  # Axolotl's GRPO collator hands rows on as they are

    def _submit_generation(self):
        import concurrent.futures

        generated = concurrent.futures.Future()
        generated.set_result([row["prompt"] for row in next(self._prompt_iter)])
        self._async_queue.put(generated)

    def build(self):
        self._setup_async_of_axolotl(self)  # queues `prefetch_depth` batches, as the trainer's init does
        return self

    def step(self) -> list[str]:
        batch = self._async_queue.get().result()
        self._submit_generation()
        return batch

    def steps(self, n: int) -> list[list[str]]:
        self.build()
        return [self.step() for _ in range(n)]


class Fixed(LegacyPromptDraws):
    pass


def test_axolotls_legacy_async_path_draws_its_first_prompts_at_every_step():
    """The failure the plugin mends, in the installed Axolotl: TRL's RepeatSampler repeats each batch
    `repeat_count` times, and the legacy path asks for 10,000."""
    steps = LegacyPromptDraws(rows=12).steps(5)
    assert all(batch == steps[0] for batch in steps), steps
    assert len(set(steps[0])) == 2  # 2 prompts, each num_generations times


def test_with_the_plugins_mend_each_step_draws_new_prompts_and_passes_go_on():
    from axolotl_grpo_plugin.training.async_prompts import install

    class Once(LegacyPromptDraws):
        pass

    assert install(Once) and not install(Once)  # once
    install(Fixed)
    broken = LegacyPromptDraws(rows=12).steps(1)
    steps = Fixed(rows=12).steps(9)  # 6 steps make a pass over the 12 prompts, then a new pass
    assert steps[0] == broken[0]  # the same seeded order, from its first batch
    for batch in steps:  # each prompt num_generations times in a row: GRPO's groups
        assert batch[0::2] == batch[1::2], batch
    first_pass = [p for batch in steps[:6] for p in batch[0::2]]
    assert sorted(first_pass) == sorted(f"question {i}" for i in range(12)), first_pass
    second_pass = [p for batch in steps[6:] for p in batch[0::2]]
    assert len(set(second_pass)) == 6 and second_pass != first_pass[:6], second_pass


def test_the_mend_changes_nothing_where_the_sampler_repeats_each_batch_once():
    from torch.utils.data import DataLoader
    from trl.trainer.utils import RepeatSampler

    from axolotl_grpo_plugin.training.async_prompts import endless, repair

    class Trainer:
        pass

    trainer = Trainer()
    rows = list(range(8))
    trainer._prompt_dataloader = DataLoader(rows, batch_size=4, collate_fn=list,
                                            sampler=RepeatSampler(rows, mini_repeat_count=2, batch_size=2))
    trainer._prompt_iter = iter(trainer._prompt_dataloader)
    kept = trainer._prompt_iter
    assert not repair(trainer) and trainer._prompt_iter is kept
    assert list(endless([])) == []  # an empty pass ends it


@pytest.mark.parametrize("depth", [1, 2])
def test_a_resumed_run_continues_the_prompt_order_where_the_first_run_stopped(depth):
    """transformers' Trainer skips the batches a resumed sync run trained on; on the legacy async
    path the plugin drops the batches queued while the trainer was built (the order's first ones)
    and draws from where the first run stopped."""
    from axolotl_grpo_plugin.training.async_prompts import install, resume_at

    install(Fixed)
    whole = Fixed(rows=40, depth=depth).steps(8)
    resumed = Fixed(rows=40, depth=depth).build()
    assert not resume_at(resumed, 0)  # a fresh run: nothing to skip
    assert resume_at(resumed, 5)
    assert [resumed.step() for _ in range(3)] == whole[5:]
    unmended = LegacyPromptDraws(rows=40, depth=depth).build()
    assert not resume_at(unmended, 5)  # only where the plugin mended the sampler


def test_batches_trained_follows_accumulation_generation_and_iterations():
    from types import SimpleNamespace

    from axolotl_grpo_plugin.training.async_prompts import batches_trained

    def trainer(accumulation, per_generation, iterations):
        return SimpleNamespace(num_iterations=iterations, args=SimpleNamespace(
            gradient_accumulation_steps=accumulation, steps_per_generation=per_generation))

    assert batches_trained(trainer(1, 1, 1), 5) == 5
    assert batches_trained(trainer(4, None, 1), 5) == 5  # TRL's default: one batch per step
    assert batches_trained(trainer(2, 4, 1), 6) == 3  # a batch serves two steps
    assert batches_trained(trainer(1, 1, 2), 6) == 3  # each batch trained twice
