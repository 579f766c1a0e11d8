"""A bench-only Axolotl plugin: the time of every step's end, in OUTPUT_DIR/step_stamps.txt.

bench/bench_step_time.py adds it to both arms, so each step's wall time (end to end, as
`time/step` counts it) is measured the same way whether the step-time breakdown is on or off.
"""

from __future__ import annotations

import time
from pathlib import Path

from axolotl.integrations.base import BasePlugin


class StepStamps(BasePlugin):
    def add_callbacks_post_trainer(self, cfg, trainer):
        from transformers import TrainerCallback

        stamps: list[float] = []

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                stamps.append(time.perf_counter())

            def on_train_end(self, args, state, control, **kwargs):
                Path(args.output_dir, "step_stamps.txt").write_text("\n".join(map(repr, stamps)) + "\n")

        return [Stamp()]
