"""CLI: axolotl-grpo report OUTPUT_DIR [--html report.html]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..report import DEFAULT_MAX_ROLLOUTS, write_report
from ..rollouts.log import log_files, read_rollouts
from ..system.safe_files import input_clash, overwritten_input, unwritable
from ..training.interrupted import read_marker
from .flags import at_least, prog, renamed


EPILOG = """\
examples:
  axolotl-grpo report outputs/smoke
      writes outputs/smoke/report.html from outputs/smoke/rollouts.jsonl (and its .gz parts)
  axolotl-grpo report outputs/run --html /tmp/run.html --max-rollouts 20000
  axolotl-grpo report outputs/run --phrase wait --phrase "let me verify"
      recount reflections with your own phrases (default: the ones the run logged)

The report works while training runs (the log is append-only and a torn last
line is skipped) and after a crash.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("report"),
        description="Write one self-contained HTML report (curves + browsable rollouts) "
                    "from a GRPO run's rollout log.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path, help="the run's output_dir (holds rollouts.jsonl)")
    parser.add_argument("--html", type=Path, metavar="FILE", help="HTML file to write (default: OUTPUT_DIR/report.html)")
    renamed(parser, "--out", "--html", type=Path)  # --out is a folder in every other tool
    renamed(parser, "-o", "--html", type=Path)
    parser.add_argument("--max-rollouts", type=at_least(1, f"e.g. --max-rollouts {DEFAULT_MAX_ROLLOUTS}"),
                        default=DEFAULT_MAX_ROLLOUTS, metavar="N",
                        help="rollouts to embed for browsing; larger logs are sampled uniformly "
                             f"(default: {DEFAULT_MAX_ROLLOUTS:,}); curves always use every rollout")
    parser.add_argument("--phrase", action="append", dest="phrases", metavar="TEXT",
                        help="a reflection phrase (repeatable); replaces the logged reflection marks")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the sample (default: 0)")
    args = parser.parse_args(argv)

    if not args.output_dir.is_dir():
        print(f"error: OUTPUT_DIR {str(args.output_dir)!r} is not a directory; pass the run's "
              "`output_dir`", file=sys.stderr)
        return 2
    if not log_files(args.output_dir):
        print(f"error: no rollout log in {str(args.output_dir)!r} (expected rollouts.jsonl); it is "
              "written by training runs with the plugin and `grpo_plugin.rollout_log: true`",
              file=sys.stderr)
        return 2
    out = args.html or args.output_dir / "report.html"
    if clash := overwritten_input(out, [(path, "the run's rollout log") for path in log_files(args.output_dir)]):
        print(f"error: {input_clash('--html', out, clash)} (default: OUTPUT_DIR/report.html)", file=sys.stderr)
        return 2
    if why := unwritable(out):  # before the whole log is read, not after
        where = f"--html = {str(out)!r}" if args.html else repr(str(out))
        print(f"error: {where}: {why}. Fix: choose a writable path with --html FILE", file=sys.stderr)
        return 2
    counts: dict = {}
    records = tqdm(read_rollouts(args.output_dir, counts, everything=True), desc="reading rollouts", unit=" rollouts",
                   disable=None)
    interrupted = read_marker(args.output_dir)
    try:
        data = write_report(records, out, args.output_dir.resolve().name, max_rollouts=args.max_rollouts,
                            phrases=args.phrases, seed=args.seed, interrupted=interrupted,
                            read_skipped=lambda: counts.get("skipped", 0))
    except OSError as exc:
        where = f"--html = {str(out)!r}: cannot write it" if args.html else f"cannot write {str(out)!r}"
        print(f"error: {where} ({exc.strerror or exc}). Fix: choose a writable path with --html FILE",
              file=sys.stderr)
        return 2
    if not data.total:  # nothing was written: a report of 0 rollouts must not replace a good one
        print(f"error: {no_rollout(args.output_dir, counts)}. Fix: pass the output_dir of a run that "
              f"logged rollouts; {str(out)!r} is left as it was", file=sys.stderr)
        return 2
    shown = f"{len(data.rows):,} shown (sampled)" if data.sampled else "all shown"
    skipped = data.skipped + counts.get("skipped", 0)
    print(f"Wrote {out}: {data.total:,} rollouts, {shown}"
          + (f", {skipped:,} unreadable log lines skipped" if skipped else "") + "."
          + (f" The run was interrupted at step {interrupted.get('step')}." if interrupted else ""))
    return 0


def no_rollout(output_dir: Path, counts: dict) -> str:
    """Why the log gave nothing to report: how many lines were unreadable and where the first is."""
    log = output_dir / "rollouts.jsonl"
    skipped = counts.get("skipped", 0)
    if not skipped:
        return f"no readable rollout in {str(log)!r} (no rollout records in it)"
    path, line = counts["skipped_at"][0]
    where = f"line {line}" if path.name == log.name else f"line {line} of {path.name}"
    return (f"no readable rollout in {str(log)!r} ({skipped:,} line{'s' * (skipped != 1)} unreadable, "
            f"first at {where})")


if __name__ == "__main__":
    sys.exit(main())
