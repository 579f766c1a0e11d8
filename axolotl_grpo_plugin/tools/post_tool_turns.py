"""One continuation per history after a tool turn, on TRL releases that sample a group's worth.

Why: TRL 1.9's tool loop generates each rollout's next turn (after its call and the tool's result)
through `_generate_single_turn`, which reads `self.num_generations`. Generating through a vLLM
server, TRL then takes every num_generations-th history and samples num_generations continuations of
it (the first turn's deduplication of a group's identical prompts), so most rollouts continue after
ANOTHER rollout's call and result. The trainer scores each turn after its own history: in float32
the log-probs were up to 8-20 nats apart (`sampling/sampling_logp_difference/max`), TRL's
sequence-level importance sampling zeroed most tool-using completions (its ratio's mean 0.12-0.62 a
step, in eighths), and what was left taught answers written after someone else's tool result.
TRL 1.14 asks for one continuation per history there; where `_generate_single_turn` has no
`num_generations` parameter, `fix` makes the loop generate one continuation per history the same way.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any


LOG = logging.getLogger("axolotl_grpo_plugin.tools")


def needed(trainer_cls: type) -> bool:
    """Whether this GRPOTrainer's tool loop samples a group's worth per post-tool history."""
    single_turn = getattr(trainer_cls, "_generate_single_turn", None)
    if single_turn is None or not hasattr(trainer_cls, "_tool_call_loop"):
        return False
    return "num_generations" not in inspect.signature(single_turn).parameters


def fix(trainer: Any) -> bool:
    """Make this trainer's tool loop generate one continuation per history; True when it was needed."""
    if not needed(type(trainer)):
        return False
    loop = trainer._tool_call_loop

    def tool_call_loop(*args: Any, **kwargs: Any) -> Any:
        own = trainer.__dict__.get("_generate_single_turn")  # another patch's, kept and called
        single_turn = trainer._generate_single_turn

        def one_per_history(*turn_args: Any, **turn_kwargs: Any) -> Any:
            saved = trainer.num_generations, trainer.num_generations_eval
            trainer.num_generations = trainer.num_generations_eval = 1
            try:
                return single_turn(*turn_args, **turn_kwargs)
            finally:
                trainer.num_generations, trainer.num_generations_eval = saved

        trainer._generate_single_turn = one_per_history
        try:
            return loop(*args, **kwargs)
        finally:
            if own is None:
                del trainer._generate_single_turn
            else:
                trainer._generate_single_turn = own

    trainer._tool_call_loop = tool_call_loop
    LOG.info("axolotl_grpo_plugin: tools: each post-tool turn is sampled once, after its own history (this TRL "
             "would sample %d continuations of every %d-th history; TRL 1.14 does the same fix)",
             trainer.num_generations, trainer.num_generations)
    return True
