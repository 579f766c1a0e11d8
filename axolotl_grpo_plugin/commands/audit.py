"""`axolotl-grpo audit CONFIG`: find the reward hacks before the GPUs do.

Scores a correct completion and families of degenerate ones (empty, a format shell, a wrong
integer, the answer outside the tags, every number listed, hedges with several answers, tags
repeated, padding to the length cap, look-alike tags, the prompt copied back, ...) on the
config's own training prompts, with the config's rewards exactly as training loads them
(registered names, entry points, import paths; weights; the containment layer). No model,
no GPU: the full audit takes seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, PluginError
from ..system.safe_files import config_inputs, input_clash, overwritten_input, unwritable
from .flags import at_least, exit_for, prog


EPILOG = """\
what it reports, per reward and for the weighted total:
  correct          what the correct completion (the gold in the format the prompt asks for) scores
  best degenerate  the highest mean score of a completion with no single committed gold answer,
                   as a share of the correct one's, with the family and an example
  terse            what the gold with no reasoning, repeated or padded scores: what the reward
                   pays for reasoning and for length
  verdict          hackable when (a) some family scores MORE than the correct completion on a
                   prompt (a length, repetition or tag bonus), or (b) the reward checks the answer
                   (a wrong integer scores less) and yet a degenerate family scores as much as the
                   correct completion; answer-blind format rewards are reported, not hackable
  issues           rewards that raise, return non-finite values, are non-deterministic, or take
                   more than 100 ms per call

  --rollouts OUTPUT_DIR reads a run's rollout log instead: the completions GRPO reinforced that
  look degenerate (repetition, numbers spam, several answers, tags repeated, prompt copied, at the
  length cap), step by step, and the first step where reward hacking is suspected.

examples (from a checkout):
  axolotl-grpo audit configs/gsm8k.yaml --dataset axolotl_grpo_plugin/data/gsm8k_sample.jsonl
      (the config's rewards on the bundled GSM8K sample instead of the Hub's GSM8K: offline)
  axolotl-grpo audit configs/smoke.yaml --json
  axolotl-grpo audit configs/smoke.yaml --json-file audit.json
  axolotl-grpo audit --rollouts outputs/smoke
  axolotl-grpo audit configs/smoke.yaml --rollouts outputs/smoke   (the config gives the length cap)

exit codes: 0 nothing hackable (or no step suspected), 1 something is (the fix is named),
2 bad input.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("audit"), description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the Axolotl yaml you give `axolotl train`")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="print the result as JSON instead of the table (as in stats and plan); "
                        "with a PATH, the old spelling of --json-file PATH")
    parser.add_argument("--json-file", metavar="PATH", help="also write the result as JSON to PATH")
    parser.add_argument("--prompts", type=at_least(1, "e.g. --prompts 32 (the default)"), default=32,
                        help="training prompts with a gold answer to audit, taken in turn from each dataset "
                        "entry (default 32)")
    parser.add_argument("--dataset", metavar="FILE", help="read the training rows from this file (or Hub "
                        "id) instead of the config's `datasets:`, with the config's dataset type")
    parser.add_argument("--rollouts", metavar="OUTPUT_DIR", help="scan a run's rollout log "
                        "(OUTPUT_DIR/rollouts.jsonl) for reinforced degenerate completions instead")
    parser.add_argument("--verbose", action="store_true", help="also show what datasets and the "
                        "rewards print while loading (by default it goes to a log file)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.json_flag = "--json-file"
    if args.json not in (None, "-") and args.config is None and args.json.endswith((".yaml", ".yml")):
        args.config, args.json = args.json, "-"  # `--json CONFIG`: as in stats, never a file to write over
    if args.json not in (None, "-"):  # the old `--json PATH`
        print("note: --json PATH is now --json-file PATH (the old spelling still works, for now)", file=sys.stderr)
        args.json_file, args.json, args.json_flag = args.json, None, "--json"
    args.json = "-" if args.json == "-" else args.json_file
    if args.config is None and args.rollouts is None:
        parser.print_usage(sys.stderr)
        print("error: CONFIG = (not set): name the training yaml to audit, or --rollouts OUTPUT_DIR. "
              "Fix: `axolotl-grpo audit configs/gsm8k.yaml`", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json not in (None, "-") and (clash := overwritten_input(args.json, _inputs(args))):
        print(f"error: {input_clash(args.json_flag, args.json, clash)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json not in (None, "-") and (why := unwritable(args.json)):  # before the audit, not after
        print(f"error: {args.json_flag} = {args.json!r}: {why}. Fix: choose a writable path", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ..system.quiet import captured_stderr, tool_log

    log = None if args.verbose else tool_log("audit")
    failure = None
    result = None
    with captured_stderr(log, enabled=log is not None):
        try:
            result = _rollouts(args) if args.rollouts else _audit(args)
        except PluginError as exc:
            failure = exc
    if failure is not None:
        return exit_for(failure)
    if log is not None and args.json != "-":
        print(f"full log: {log}")
    return result


def _inputs(args) -> list:
    """What the audit reads, for the check that --json-file overwrites none of it."""
    from ..rollouts.log import log_files

    logs = log_files(args.rollouts) if args.rollouts and Path(args.rollouts).is_dir() else []
    return (config_inputs(args.config) + [(args.dataset, "the --dataset file")]
            + [(path, "the run's rollout log") for path in logs])


def _audit(args) -> int:
    from tqdm.auto import tqdm

    from ..audit.core import audit
    from ..audit.summary import summary
    from ..system.quiet import terminal

    with tqdm(total=args.prompts, desc="audit: scoring", unit="prompt", file=terminal(), disable=None,
              leave=False) as bar:
        result = audit(args.config, prompts=args.prompts, dataset=args.dataset, progress=bar)
    data = result.as_json()
    _write_json(args.json, data, args.json_flag)
    if args.json != "-":
        print(summary(result))
    return EXIT_FAILED if result.hackable or result.total.hackable else EXIT_OK


def _rollouts(args) -> int:
    from ..audit.core import AuditError
    from ..audit.summary import rollouts_summary
    from ..rollouts.log import log_files, read_rollouts
    from ..rollouts.scan import first_suspected, scan

    out = Path(args.rollouts)
    if not out.is_dir():
        raise AuditError(f"--rollouts = {str(out)!r}: not a directory. Fix: pass the run's `output_dir`")
    if not log_files(out):
        raise AuditError(f"--rollouts = {str(out)!r}: no rollout log (rollouts.jsonl) in it. Fix: pass the "
                         "`output_dir` of a run trained with the plugin and `grpo_plugin.rollout_log: true`")
    cap = None
    if args.config:
        from ..config.run import read_run
        from ..names import load_config

        cap = read_run(load_config(args.config, rewards=False)).completion_length
    findings = scan(read_rollouts(out), cap)
    first = first_suspected(findings)
    _write_json(args.json, {"output_dir": str(out), "max_completion_length": cap,
                            "steps": [f.as_json() for f in findings],
                            "first_suspected_step": first.step if first else None}, args.json_flag)
    if args.json != "-":
        print(rollouts_summary(out, findings))
    return EXIT_FAILED if first else EXIT_OK


def _write_json(path: str | None, data: dict, flag: str) -> None:
    """Print `data` ("-") or write it to `path`; `flag`: the one the user gave it with."""
    if path is None:
        return
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if path == "-":
        print(text)
        return
    from ..audit.core import AuditError
    from ..system.safe_files import replacing

    try:
        with replacing(Path(path), "w") as handle:
            handle.write(text + "\n")
    except OSError as exc:
        raise AuditError(f"{flag} = {path!r}: cannot write it ({exc.strerror or exc}). Fix: choose a "
                         "writable path") from None


if __name__ == "__main__":
    sys.exit(main())
