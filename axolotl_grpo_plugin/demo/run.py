"""The embedded demo, end to end: base -> held-out "before" -> ``axolotl train`` -> "after".

Training runs as ``axolotl train CONFIG`` in a child process, exactly as a user
would launch it, from a copy of the packaged ``configs/demo.yaml`` that only pins
absolute paths, the seed and (optionally) the step count, so the printed numbers are
those of the shipped config. Its inputs are checked before the minutes of pre-training.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config.load import read_yaml
from ..config.run import read_run
from ..embedded.builder import DEFAULT_OUT
from ..embedded.pretrain import build_base
from ..errors import PluginError, Problem
from ..system.childenv import offline_child_env
from ..system.paths import checkout_root, resolve_packaged_paths
from ..system.quiet import captured_stderr
from ..system.safe_files import open_nofollow, write_atomic
from . import DEMO_CONFIG, curves, heldout


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and what to do."""


class DemoInputError(PluginError):
    """The demo cannot start: a missing config or dataset, an unwritable directory."""


def check_inputs(config: Path, output_dir: Path, base_out: Path) -> dict:
    """The demo config (read and paths resolved) once every input is known good, else
    DemoInputError naming each problem: checked before minutes of pre-training are spent."""
    cfg = resolve_packaged_paths(read_yaml(config))
    problems = []
    for dataset in cfg.get("datasets") or []:
        if not Path(dataset["path"]).is_file():
            problems.append(Problem("datasets.path", dataset["path"], "file not found",
                                    "reinstall the package (the demo data ships inside it) or pass a config "
                                    "whose datasets exist"))
    for key, directory in (("--output-dir", output_dir), ("--base-dir", base_out)):
        reason = unwritable(directory)
        if reason:
            problems.append(Problem(key, str(directory), reason, "pass a directory you can write to"))
    if shutil.which("axolotl", path=child_env()["PATH"]) is None:
        problems.append(Problem("axolotl", "PATH", "the `axolotl` command is not on PATH",
                                "install axolotl in the environment you run the demo from"))
    if problems:
        raise DemoInputError(problems)
    return cfg


def unwritable(directory: Path) -> str | None:
    """Why files cannot be written under ``directory`` (created if missing), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return None


@dataclass
class DemoResult:
    before: heldout.Scores | None
    after: heldout.Scores | None
    history: list[dict]
    output_dir: Path
    plot_path: Path | None
    seconds: dict[str, float] = field(default_factory=dict)


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def child_env() -> dict[str, str]:
    """Offline, no telemetry (it hangs at exit without network), a checkout importable."""
    env = offline_child_env(checkout_root())
    # The tiny model's matrices are too small for intra-op threads to pay off; on a
    # busy machine two threads per process were 5x slower. A user's own setting wins.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def write_run_config(base_dir: Path, output_dir: Path, seed: int, steps: int | None,
                     config: Path = DEMO_CONFIG) -> Path:
    """A copy of the demo config with absolute paths, the seed and the step count pinned."""
    cfg = resolve_packaged_paths(read_yaml(config))
    cfg["base_model"] = str(base_dir.resolve())
    cfg["output_dir"] = str(output_dir.resolve())
    cfg["seed"] = seed
    # Axolotl otherwise caches the tokenized dataset in ./last_run_prepared of the cwd
    cfg["dataset_prepared_path"] = str((output_dir / "prepared").resolve())
    if steps is not None:
        cfg["max_steps"] = steps
    cfg["save_steps"] = cfg["max_steps"]  # one save, at the end: it carries trainer_state.json
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "demo_run.yaml"
    return write_atomic(path, yaml.safe_dump(cfg, sort_keys=False))


def train(run_config: Path, log_path: Path, echo: bool = True, steps: int | None = None) -> str:
    """``axolotl train run_config``, its output in ``log_path``: echoed with ``echo``, else
    shown as one progress bar over the ``steps`` logged training steps."""
    axolotl = shutil.which("axolotl", path=child_env()["PATH"])
    if axolotl is None:
        raise DemoError("the `axolotl` command is not on PATH; install axolotl (pip install axolotl) "
                        "in the environment you run the demo from")
    lines: list[str] = []
    bar = None if echo else _progress(steps)
    with open_nofollow(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
        [axolotl, "train", str(run_config.resolve())], cwd=run_config.parent, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    ) as proc:
        for line in proc.stdout:
            lines.append(line)
            log.write(line)
            log.flush()
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            elif bar is not None:
                for step in curves.parse_log_lines(line):
                    bar.set_postfix(reward=f"{step[curves.TOTAL_KEY]:.2f}", refresh=False)
                    bar.update(1)
    if bar is not None:
        bar.close()
    if proc.returncode != 0:
        tail = "".join(lines[-15:])
        raise DemoError(f"`axolotl train {run_config}` exited with {proc.returncode}; "
                        f"full log: {log_path}\n{tail}")
    return "".join(lines)


def _progress(steps: int | None):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="GRPO training", unit="step", file=sys.stdout)


def build_base_quietly(base_out: str | Path, seed: int, force: bool, log: Path, echo: bool):
    """The tiny base, built on first use with its bar on the terminal and the chatter of the
    imports it needs (torchao's "Failed to load", transformers' save bars) in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with captured_stderr(log, enabled=not echo):
        return build_base(base_out, seed=seed, force=force, progress=True)


def run_demo(seed: int = 0, steps: int | None = None, output_dir: str | Path = "outputs/demo",
             base_out: str | Path = DEFAULT_OUT, device: str = "auto", echo: bool = True,
             plot_path: str | Path | None = None, rebuild_base: bool = False,
             score_heldout: bool = True, report: Callable[[str], None] = lambda line: None) -> DemoResult:
    """Build/reuse the base, evaluate it, GRPO-train it with Axolotl, evaluate again, plot.

    ``score_heldout=False`` skips both held-out evaluations (``before``/``after`` are None).
    ``report`` gets a line as each long stage starts: the command prints them, a library never does.
    """
    seconds: dict[str, float] = {}
    output_dir = Path(output_dir)
    cfg = check_inputs(DEMO_CONFIG, output_dir, Path(base_out))
    device = pick_device(device)

    log = output_dir / "demo.log"
    start = time.perf_counter()
    base = build_base_quietly(base_out, seed, rebuild_base, log, echo)
    seconds["base"] = time.perf_counter() - start

    run_config = write_run_config(base.model_dir, output_dir, seed, steps)

    def score(model_dir: Path, stage: str) -> heldout.Scores:
        start = time.perf_counter()
        with captured_stderr(log, enabled=not echo):
            scores, _ = heldout.evaluate(model_dir, device=device, config=run_config)
        seconds[stage] = time.perf_counter() - start
        return scores

    before = after = None
    # The base is scored on the second core while Axolotl starts up (mostly single-threaded
    # imports and data preparation) and trains single-threaded: on a 2-core machine the
    # "before" column then costs no wall time.
    with ThreadPoolExecutor(max_workers=1) as pool:
        if score_heldout:
            report("Scoring the base on the held-out problems (greedy, and sampled for pass@k) "
                   "while Axolotl starts...")
            scoring = pool.submit(score, base.model_dir, "eval_before")
        start = time.perf_counter()
        if not echo:
            report(f"Training with `axolotl train` (full log: {output_dir / 'train.log'})")
        stdout = train(run_config, output_dir / "train.log", echo=echo, steps=steps or cfg.get("max_steps"))
        seconds["train"] = time.perf_counter() - start
        if score_heldout:
            before = scoring.result()
    history = curves.log_history(output_dir) or curves.parse_log_lines(stdout)

    if score_heldout:
        report("Scoring the trained model on the held-out problems (greedy, and sampled for pass@k)...")
        after = score(output_dir, "eval_after")

    plot_file = None
    if history:
        plot_file = curves.plot(history, plot_path or output_dir / "reward_curves.png",
                                title=f"GRPO on the embedded base (seed {seed})",
                                temperature=read_run(cfg).trl.temperature)
    return DemoResult(before, after, history, output_dir, plot_file, seconds)


def table(result: DemoResult) -> str:
    """The before/after comparison as an aligned text table."""
    before, after = result.before, result.after
    rows = [
        ("format compliance (strict)", f"{before.format_compliance:.1%}", f"{after.format_compliance:.1%}"),
        ("answer accuracy (in <answer>)", f"{before.accuracy:.1%}", f"{after.accuracy:.1%}"),
        ("last number right, any layout", f"{before.any_layout_accuracy:.1%}", f"{after.any_layout_accuracy:.1%}"),
        ("mean total reward (max 3.75)", f"{before.mean_total_reward:.3f}", f"{after.mean_total_reward:.3f}"),
    ]
    notes = []
    if before.pass_at_1 is not None and after.pass_at_1 is not None:
        k = min(before.samples, after.samples)
        rows += [("  sampled pass@1, any layout", f"{before.pass_at_1:.1%}", f"{after.pass_at_1:.1%}"),
                 (f"  sampled pass@{k}, any layout", f"{before.pass_at_k:.1%}", f"{after.pass_at_k:.1%}")]
        notes.append(f"pass@: {k} samples per problem at the training temperature, first "
                     f"{after.sampled_problems} problems")
    header = (f"Held-out: {after.problems} problems, greedy", "before", "after")
    width = max(len(r[0]) for r in [header, *rows])
    lines = [f"{header[0]:<{width}}  {header[1]:>8}  {header[2]:>8}", "-" * (width + 20)]
    lines += [f"{name:<{width}}  {b:>8}  {a:>8}" for name, b, a in rows]
    return "\n".join(lines + notes)
