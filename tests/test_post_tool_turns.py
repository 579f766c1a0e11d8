"""tools/post_tool_turns.py: on a TRL whose tool loop samples a group's worth of continuations per
post-tool history (1.9), each history gets its own one; the trainer is otherwise left as it was."""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version

from axolotl_grpo_plugin.tools import post_tool_turns


class GroupedTrainer:
    """TRL 1.9's shape: `_generate_single_turn` reads self.num_generations, as its server path does
    (every num_generations-th prompt, num_generations continuations of each)."""

    def __init__(self):
        self.num_generations, self.num_generations_eval, self.seen = 4, 4, []

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
        self.seen.append(self.num_generations)
        unique = prompt_ids[::self.num_generations]
        return [p + [f"after {p[-1]}"] for p in unique for _ in range(self.num_generations)], None

    def _tool_call_loop(self, histories):
        return self._generate_single_turn(histories, None, {})[0]


class PerCallTrainer(GroupedTrainer):
    """TRL 1.14's shape: the loop says how many continuations it wants."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields)


def test_each_history_continues_after_itself():
    trainer = GroupedTrainer()
    histories = [["p", f"call {i}", f"result {i}"] for i in range(8)]
    wrong = trainer._tool_call_loop(histories)
    assert [h[-1] for h in wrong][:4] == ["after result 0"] * 4  # the bug: 0's history for 1, 2 and 3
    assert post_tool_turns.fix(trainer)
    fixed = trainer._tool_call_loop(histories)
    assert [h[-1] for h in fixed] == [f"after result {i}" for i in range(8)]
    assert trainer.seen == [4, 1]
    # outside the loop (the first turn's groups) nothing changed
    assert (trainer.num_generations, trainer.num_generations_eval) == (4, 4)
    assert "_generate_single_turn" not in vars(trainer)
    trainer._generate_single_turn([["q"]] * 4, None, {})
    assert trainer.seen[-1] == 4


def test_a_failing_turn_leaves_the_trainer_as_it_was():
    def boom(*args):
        raise RuntimeError("server gone")

    GroupedTrainer._generate_single_turn, original = boom, GroupedTrainer._generate_single_turn
    try:
        fresh = GroupedTrainer()
        post_tool_turns.fix(fresh)
        try:
            fresh._tool_call_loop([["p"]])
        except RuntimeError:
            pass
        assert (fresh.num_generations, fresh.num_generations_eval) == (4, 4)
        assert "_generate_single_turn" not in vars(fresh)
    finally:
        GroupedTrainer._generate_single_turn = original


def test_a_trl_that_asks_per_call_is_left_alone():
    trainer = PerCallTrainer()
    assert not post_tool_turns.needed(PerCallTrainer) and not post_tool_turns.fix(trainer)
    assert "_tool_call_loop" not in vars(trainer)


def test_the_installed_trl_is_read_right():
    """TRL 1.9 samples a group's worth per post-tool history; 1.14 passes num_generations=1."""
    from trl import GRPOTrainer

    assert post_tool_turns.needed(GRPOTrainer) is (Version(version("trl")) < Version("1.14"))


def test_a_single_turn_patched_after_the_fix_is_the_one_called():
    """Another plugin's post_trainer_create may replace `_generate_single_turn` after ours: the loop
    calls that one (with one continuation per history), and leaves it in place."""
    trainer = GroupedTrainer()
    post_tool_turns.fix(trainer)
    calls = []

    def scripted(prompt_ids, images, multimodal_fields):
        calls.append(trainer.num_generations)
        return [p + ["scripted"] for p in prompt_ids], None

    trainer._generate_single_turn = scripted
    assert [h[-1] for h in trainer._tool_call_loop([["a"], ["b"]])] == ["scripted", "scripted"]
    assert calls == [1] and trainer._generate_single_turn is scripted and trainer.num_generations == 4
