"""`axolotl-grpo probe CONFIG`: will this GRPO run learn? Sample the base model on
training prompts with the run's settings and rewards before the long run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from ..errors import EXIT_FAILED, PluginError
from .flags import add_output_flags, add_sampling_flags, at_least, prog, sampling_main


EPILOG = """\
what it reports:
  truncation       share of completions cut by trl.max_completion_length, length percentiles,
                   and the length that removes the truncation (+ vllm.max_model_len)
  pass rates       per prompt (correctness reward > 0), and the expected share of groups whose
                   rewards differ at each G (the rest get advantage 0 and teach nothing)
  rewards          mean and variance of each reward; a constant reward is flagged
  verdict          will likely learn / will not, because ..., change ...

examples:
  axolotl-grpo probe configs/demo.yaml
  axolotl-grpo probe configs/gsm8k.yaml --prompts 64 --generations 4 8 16
  axolotl-grpo probe configs/gsm8k.yaml --write-filtered data/learnable.jsonl
  axolotl-grpo probe configs/gsm8k.yaml --prompts all --pass-rates pass-rates.jsonl
      (every training row's pass rate; run it again to go on where it stopped; then
       `grpo_plugin.pass_rate_filter: {file: pass-rates.jsonl}` trains on the band)
  axolotl-grpo probe configs/demo.yaml --json --plot probe.png

exit codes: 0 the probe ran (read the verdict), 1 it failed at run time, 2 bad input.
"""


class ProbeFailed(PluginError):
    """The probe could not finish (generation or file errors): exit 1, not a bad-input 2."""

    exit_code = EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("probe"), description=__doc__,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the Axolotl yaml of the run")
    parser.add_argument("--prompts", type=_prompt_count, default=32,
                        help="training prompts to sample, drawn with --seed (default 32); `all`: every row")
    parser.add_argument("--generations", nargs="+",
                        type=at_least(2, "GRPO compares completions within a group: e.g. --generations 4 8 16"),
                        help="group sizes to compare (default: the config's trl.num_generations); "
                             "max(G) completions are sampled per prompt")
    parser.add_argument("--budget", type=int,
                        help="tokens sampled per completion, above the configured cut-off so longer "
                             "answers are seen (default: max(2 x max_completion_length, +64))")
    parser.add_argument("--model", help="sample this model instead of base_model")
    add_sampling_flags(parser, decides="pass/fail")
    parser.add_argument("--write-filtered", metavar="PATH",
                        help="write the probed prompts with pass rate strictly inside --band as jsonl")
    parser.add_argument("--pass-rates", metavar="FILE",
                        help="append each probed row's pass rate to FILE (JSON Lines), 64 prompts at a time, "
                             "with the progress and time; rows already in FILE are skipped, so the same "
                             "command goes on where a stopped one was. grpo_plugin.pass_rate_filter reads it")
    parser.add_argument("--band", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                        help="pass-rate band for --write-filtered (default 0 1: exclusive)")
    parser.add_argument("--threads", type=at_least(1, "leave it out for the cores idle now, or e.g. --threads 2"),
                        help="torch CPU threads (default: the cores idle right now, at least 1; "
                             "an oversubscribed CPU generates >10x slower)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the summary")
    parser.add_argument("--plot", metavar="PATH", help="write the histograms as a PNG")
    add_output_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return sampling_main("probe", build_parser(), argv, _work)


def _work(args: argparse.Namespace) -> Callable[[], None]:
    """The probe of the parsed flags, to run under the capture; its modules imported first."""
    from ..probe.core import probe
    from ..probe.findings import check_band, check_plot, format_summary, plot, to_json, write_filtered

    def work() -> None:
        from ..sampling.checks import check_device, check_output, config_inputs

        check_band(args.band)  # before the prompts are sampled, not after
        if args.plot:
            check_plot(args.plot)
        if args.write_filtered:
            check_output("--write-filtered", args.write_filtered, config_inputs(args.config))
        if args.pass_rates:
            check_output("--pass-rates", args.pass_rates, config_inputs(args.config))
        device = check_device(args.device)
        try:
            _set_threads(args.threads)
            result = probe(args.config, prompts=args.prompts, generations=args.generations,
                           budget=args.budget, seed=args.seed, backend=args.backend, device=device,
                           batch_size=args.batch_size, progress=not args.no_progress,
                           correct_reward=args.correct_reward, model=args.model, pass_rates=args.pass_rates,
                           on_chunk=_progress(args.pass_rates) if args.pass_rates or args.prompts is None else None)
        except (RuntimeError, OSError) as exc:
            raise ProbeFailed(f"the probe failed: {type(exc).__name__}: {exc}") from None
        if not result.prompts:
            print(f"every chosen row's pass rate is already in {args.pass_rates} ({result.resumed} rows): "
                  "nothing left to sample")
            return
        data = to_json(result)
        extra = []
        if args.pass_rates:
            data["pass_rates"] = {"path": args.pass_rates, "rows": result.prompts, "resumed": result.resumed}
            before = f" (after the {result.resumed} already there)" if result.resumed else ""
            extra.append(f"wrote the pass rates of {result.prompts} rows to {args.pass_rates}{before}; train on "
                         f"the band with `grpo_plugin.pass_rate_filter: {{file: {args.pass_rates}}}`")
        if args.write_filtered:
            n = write_filtered(result, args.write_filtered, tuple(args.band))
            data["filtered"] = {"path": args.write_filtered, "rows": n, "band": list(args.band), "written": n > 0}
            band = f"({args.band[0]:g}, {args.band[1]:g})"
            if n:
                extra.append(f"wrote {n} prompts with pass rate in {band} to {args.write_filtered}; point "
                             "the config's dataset `path:` at it (same `type:`)")
            else:
                kept = " (the file already there is kept)" if os.path.exists(args.write_filtered) else ""
                extra.append(f"no probed prompt has a pass rate in {band}: wrote nothing to "
                             f"{args.write_filtered}{kept}; widen --band or probe more --prompts")
        if args.plot:
            try:
                plot(result, args.plot)
            except OSError as exc:  # checked before sampling: a full disk, a folder removed since
                raise ProbeFailed(f"--plot = {args.plot!r}: cannot write it ({exc.strerror or exc})") from None
            extra.append(f"wrote {args.plot}")
        if args.json:
            print(json.dumps(data, indent=2, default=str))
        else:
            print(format_summary(result))
            for line in extra:
                print(line)

    return work


def _prompt_count(text: str) -> int | None:
    """--prompts N (at least 1), or `all` (None: every training row)."""
    return None if text.strip().lower() == "all" else at_least(1, "e.g. --prompts 32 (the default) or --prompts all")(text)


def _progress(path: str | None):
    """One line per chunk on the terminal: rows done, the time spent and the time left."""
    from ..system.quiet import terminal

    def line(done: int, todo: int, resumed: int, seconds: float) -> None:
        left = seconds / done * (todo - done) if done else 0.0
        where = f" in {path}" if path else ""
        before = f" ({resumed} there before)" if resumed else ""
        print(f"probe: {done + resumed} of {todo + resumed} rows{where}{before}, {_clock(seconds)} spent, "
              f"about {_clock(left)} left", file=terminal(), flush=True)

    return line


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _set_threads(threads: int | None) -> None:
    """torch's default (one thread per core) spins against other busy processes on a shared CPU."""
    import torch

    torch.set_num_threads(max(1, threads if threads is not None else free_threads()))


def free_threads() -> int:
    """The cores idle right now (at least 1, at most torch's default). Measured over a quarter of a
    second, not from the load average: that lags a minute behind, so a job that just ended would
    halve the probe's threads (the 32 x 8 SmolLM2 probe ran on one of two idle cores that way)."""
    import psutil
    import torch

    cores = os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=0.25) / 100 * cores
    return max(1, min(torch.get_num_threads(), round(cores - busy)))


if __name__ == "__main__":
    sys.exit(main())
