"""`axolotl-grpo audit`: rewards that can be gamed are caught with the family that games them, the
cookbook set is not called hackable, broken rewards are named, bad input exits 2; the rollout
scan finds the step where a run starts to be paid for degenerate completions."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import cli_exit, importable_module

from axolotl_grpo_plugin.audit.core import audit
from axolotl_grpo_plugin.audit.families import KINDS, build_case, solve_countdown, wrong_integer
from axolotl_grpo_plugin.commands.audit import main
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.rollouts.scan import first_suspected, scan, signs
from axolotl_grpo_plugin.transforms.gsm8k import transform_row
from axolotl_grpo_rewards.countdown import solves


DATA = Path("axolotl_grpo_plugin/data")
COOKBOOK = ["correctness", "int", "strict_format", "soft_format", "xmlcount"]

MODULE = textwrap.dedent('''
    import random
    import re

    from axolotl_grpo_rewards.gsm8k import correctness_reward_func, extract_answer, gold_number
    from axolotl_grpo_rewards.text import completion_text

    def length_bonus(completions, **kwargs):
        """Pays for length: padding wins."""
        return [min(len(completion_text(c)) / 1000, 1.0) for c in completions]

    def lax_correct(completions, answer, **kwargs):
        """Checks the answer, but accepts it anywhere among the numbers of the answer block."""
        out = []
        for c, gold in zip(completions, answer):
            numbers = re.findall(r"-?\\d+", extract_answer(completion_text(c)))
            out.append(2.0 if str(gold) in numbers else 0.0)
        return out

    def tag_bonus(completions, **kwargs):
        """0.1 per answer tag: repeating the tags wins."""
        return [0.1 * completion_text(c).count("<answer>") for c in completions]

    def raises_on_empty(completions, **kwargs):
        return [1.0 / len(completion_text(c)) for c in completions]

    def noisy(completions, **kwargs):
        return [random.random() for c in completions]
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    return importable_module(tmp_path, monkeypatch, "audit_rewards", MODULE)


def small_golds(tmp_path: Path, n: int = 40) -> Path:
    """GSM8K-shaped rows whose golds are small, so listing 0..N always covers them."""
    path = tmp_path / "small.jsonl"
    rows = [{"question": f"Ann has {i % 7 + 2} pens and gets {i % 5 + 1} more. How many pens?",
             "answer": f"#### {i % 7 + 2 + i % 5 + 1}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path: Path, rewards: list[str], data: Path | str = DATA / "gsm8k_sample.jsonl",
           kind: str = "gsm8k", weights: list[float] | None = None, cap: int = 512) -> Path:
    cfg = {"base_model": "x", "rl": "grpo", "trl": {"reward_funcs": rewards, "max_completion_length": cap},
           "datasets": [{"path": str(Path(data).resolve()), "type": kind}]}
    if weights:
        cfg["trl"]["reward_weights"] = weights
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_cookbook_set_is_not_hackable_and_its_47_percent_is_the_wrong_integer(tmp_path):
    result = audit(config(tmp_path, COOKBOOK))
    assert result.prompts == 32
    assert result.hackable == [] and not result.total.hackable
    by_name = {v.name: v for v in result.rewards}
    assert by_name["correctness"].answer_sensitive and by_name["correctness"].max_degenerate == 0.0
    for name in ("int", "strict_format", "soft_format", "xmlcount"):
        assert not by_name[name].answer_sensitive, name
        assert "answer-blind" in by_name[name].why
    total = result.total
    assert total.family == "format, wrong integer"
    assert total.correct == pytest.approx(3.751) and total.max_degenerate == pytest.approx(1.751)
    assert round(total.ratio, 2) == 0.47
    assert total.pays_for_reasoning == pytest.approx(1.0) and total.pays_for_length == pytest.approx(0.0)


def test_a_length_bonus_is_hackable_by_padding(tmp_path, user_module):
    result = audit(config(tmp_path, ["correctness", f"{user_module}.length_bonus"]))
    assert result.hackable == [f"{user_module}.length_bonus"]
    verdict = result.rewards[1]
    assert verdict.evidence.family.startswith("padded") and KINDS[verdict.evidence.family] == "terse"
    assert verdict.pays_for_length > 0 and "cap it" in verdict.fix


def test_an_answer_check_fooled_by_listing_numbers_is_hackable(tmp_path, user_module):
    name = f"{user_module}.lax_correct"
    result = audit(config(tmp_path, [name], data=small_golds(tmp_path)))
    verdict = result.rewards[0]
    assert result.hackable == [name] and verdict.answer_sensitive
    assert verdict.evidence.family == "question's numbers listed" or verdict.evidence.family == "numbers 0..N listed"
    assert verdict.families["numbers 0..N listed"] == pytest.approx(verdict.correct)
    assert verdict.family == "numbers 0..N listed" and verdict.ratio == pytest.approx(1.0)
    assert "one answer block" in verdict.fix
    # the same check done right (the cookbook's correctness) is not fooled on the same rows
    assert audit(config(tmp_path, ["correctness"], data=small_golds(tmp_path))).hackable == []


def test_a_tag_bonus_is_hackable_and_the_weighted_total_too(tmp_path, user_module):
    name = f"{user_module}.tag_bonus"
    result = audit(config(tmp_path, ["correctness", name], weights=[1.0, 30.0]))
    assert result.hackable == [name]
    assert result.rewards[1].evidence.family in ("answer repeated", "tags repeated", "several answer blocks",
                                                 "nested answer tags")
    assert result.total.hackable  # 30 x 0.1 per extra tag outweighs correctness


def test_broken_rewards_are_named(tmp_path, user_module):
    result = audit(config(tmp_path, ["correctness", f"{user_module}.raises_on_empty", f"{user_module}.noisy"]),
                   prompts=4)
    issues = {v.name.rsplit(".", 1)[-1]: " ".join(v.issues) for v in result.rewards}
    assert issues["correctness"] == ""
    assert "raises (ZeroDivisionError" in issues["raises_on_empty"]
    assert "non-deterministic" in issues["noisy"]


def test_mixed_tasks_get_their_own_reference(tmp_path):
    cfg = {"base_model": "x", "rl": "grpo",
           "trl": {"reward_funcs": ["by_data_source", "strict_format"], "max_completion_length": 256},
           "datasets": [{"path": str((DATA / f).resolve()), "type": t}
                        for f, t in (("gsm8k_sample.jsonl", "gsm8k"), ("countdown_sample.jsonl", "countdown"))]}
    result = audit(cfg, prompts=8)
    assert result.tasks == {"number": 4, "countdown": 4}
    routed = result.rewards[0]
    assert routed.correct == pytest.approx((4 * 2.0 + 4 * 1.0) / 8)  # every reference is right
    assert routed.answer_sensitive and not routed.hackable


def test_countdown_solver_and_wrong_integers():
    for numbers, target in (([3, 5, 25], 60), ([1, 2, 3, 4], 24), ([6, 4], 10)):
        equation = solve_countdown(numbers, target)
        assert equation and solves(equation, numbers, target)
    assert solve_countdown([2, 2], 7) is None
    assert [wrong_integer(g) for g in ("72", "-3", "0", "18.5")] == ["77", "-8", "5", "19"]


def test_prefilled_template_families_leave_the_prefill_to_the_containment_layer():
    row = transform_row({"question": "1 + 1?", "answer": "#### 2"})
    row["reasoning_prefill"] = "<reasoning>\n"
    case = build_case(0, row, 64)
    assert not case.reference.startswith("<reasoning>") and case.reference.endswith("</answer>")


def test_a_huge_completion_budget_builds_capped_completions_at_once():
    """`trl.max_completion_length: 1000000000` made `check`'s audit build gigabyte strings (it hung);
    the synthetic completions stop at MAX_SYNTHETIC_TOKENS, and budgets under it are unchanged."""
    import time

    from axolotl_grpo_plugin.audit.families import CHARS_PER_TOKEN, MAX_SYNTHETIC_TOKENS

    row = transform_row({"question": "1 + 1?", "answer": "#### 2"})
    start = time.monotonic()
    huge = build_case(0, row, 10**9)
    assert time.monotonic() - start < 5
    assert huge.variants == build_case(0, row, MAX_SYNTHETIC_TOKENS).variants
    longest = max(len(text) for texts in huge.variants.values() for text in texts)
    assert MAX_SYNTHETIC_TOKENS * CHARS_PER_TOKEN * 0.9 < longest < MAX_SYNTHETIC_TOKENS * CHARS_PER_TOKEN * 1.1
    assert build_case(0, row, 512).variants != build_case(0, row, MAX_SYNTHETIC_TOKENS).variants


def test_cli_exit_codes_and_json(tmp_path, user_module, capsys):
    out = tmp_path / "audit.json"
    assert main([str(config(tmp_path, COOKBOOK)), "--prompts", "4", "--json", str(out), "--verbose"]) == 0
    data = json.loads(out.read_text())
    assert set(data) >= {"rewards", "total", "hackable"} and data["hackable"] == []
    assert set(data["rewards"]) == set(COOKBOOK)
    assert set(data["rewards"]["int"]) >= {"max_degenerate", "correct", "ratio", "family", "example", "answer_sensitive"}
    assert "by design" in capsys.readouterr().out
    assert main([str(config(tmp_path, [f"{user_module}.length_bonus"])), "--prompts", "4", "--verbose"]) == 1
    assert "HACKABLE" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    ([], "CONFIG = (not set)"),
    (["missing.yaml"], "file not found"),
    (["{cfg}", "--prompts", "0"], "argument --prompts: '0' must be at least 1. Fix: "),
    (["{cfg}", "--dataset", "{tmp}/missing.jsonl"], "error: --dataset = '{tmp}/missing.jsonl': file not found"),
    (["--rollouts", "{tmp}"], "no rollout log"),
])
def test_bad_input_exits_2_with_the_fix(tmp_path, capsys, argv, needle):
    cfg = config(tmp_path, COOKBOOK)
    argv = [a.format(cfg=cfg, tmp=tmp_path) for a in argv]
    assert cli_exit(main, [*argv, "--verbose"]) == 2
    err = capsys.readouterr().err
    assert needle.format(tmp=tmp_path) in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--json-file", "--json"])
def test_an_unwritable_json_path_names_the_flag_given(tmp_path, capsys, flag):
    cfg = config(tmp_path, COOKBOOK)
    target = str(cfg / "a.json")  # a file where its folder would be
    assert main([str(cfg), "--prompts", "2", flag, target, "--verbose"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: {flag} = {target!r}: {cfg} is a file, not a folder. Fix: choose a writable path"


@pytest.mark.parametrize("onto, what", [("config", "the config"), ("data", "its dataset datasets[0].path"),
                                        ("dataset", "the --dataset file"), ("log", "the run's rollout log")])
def test_a_json_file_onto_an_input_is_refused_and_the_input_kept(tmp_path, capsys, monkeypatch, onto, what):
    """`audit CONFIG --json-file CONFIG` once replaced the config with the JSON, exit 0."""
    data = tmp_path / "data.jsonl"
    data.write_bytes((DATA / "gsm8k_sample.jsonl").read_bytes())
    (tmp_path / "other.jsonl").write_bytes(data.read_bytes())
    cfg = config(tmp_path, COOKBOOK, data)
    run = tmp_path / "run"
    run.mkdir()
    (run / "rollouts.jsonl").write_text(json.dumps({"step": 1, "completion": "x"}) + "\n")
    monkeypatch.chdir(tmp_path)
    target, extra = {"config": ("./cfg.yaml", []), "data": ("sub/../data.jsonl", []),
                     "dataset": ("other.jsonl", ["--dataset", str(tmp_path / "other.jsonl")]),
                     "log": ("run/rollouts.jsonl", ["--rollouts", "run"])}[onto]
    before = {path: path.read_bytes() for path in (cfg, data, run / "rollouts.jsonl")}
    assert main([str(cfg), "--prompts", "2", *extra, "--json-file", target, "--verbose"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: --json-file = {target!r} is {what}: writing it would replace it. Fix: write to another file"
    assert {path: path.read_bytes() for path in before} == before


@pytest.mark.parametrize("flag", ["--json-file", "--json"])
def test_a_json_path_in_a_missing_folder_is_written_and_its_folder_made(tmp_path, flag):
    """`--json-file sub/dir/a.json` once failed with 'No such file or directory'; score made its folder."""
    target = tmp_path / "sub" / "dir" / "a.json"
    assert main([str(config(tmp_path, COOKBOOK)), "--prompts", "2", flag, str(target), "--verbose"]) == 0
    assert json.loads(target.read_text())["hackable"] == []


def test_the_help_says_what_json_with_a_path_does_and_its_examples_run_from_a_checkout(repo_root, capsys):
    import re

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--json [PATH] print the result as JSON instead of the table (as in stats and plan); with a PATH, " \
           "the old spelling of --json-file PATH" in " ".join(out.split())
    examples = [line for line in out.splitlines() if line.strip().startswith("axolotl-grpo audit ")]
    named = re.findall(r"(configs/\S+\.yaml|--dataset \S+)", "\n".join(examples))
    assert "--dataset axolotl_grpo_plugin/data/gsm8k_sample.jsonl" in named
    for path in named:
        assert (repo_root / path.removeprefix("--dataset ")).is_file(), path


def test_json_before_the_config_prints_json_and_writes_no_file(tmp_path, capsys):
    """`audit --json CONFIG`, as `stats --json CONFIG`: the yaml is the config, not the old
    `--json PATH` to write over (with --rollouts, the config was replaced by the JSON)."""
    cfg = config(tmp_path, COOKBOOK)
    before = cfg.read_text()
    assert main(["--rollouts", str(rollouts(tmp_path)), "--json", str(cfg), "--verbose"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["max_completion_length"] == 512 and "note:" not in captured.err
    assert cfg.read_text() == before


def test_an_unknown_reward_exits_2_naming_it(tmp_path, capsys):
    assert main([str(config(tmp_path, ["corectness"])), "--verbose"]) == 2
    assert "Did you mean 'correctness'" in capsys.readouterr().err


# --- rollouts --------------------------------------------------------------------------------

GOOD = "<reasoning>\nThree plus four is seven.\n</reasoning>\n<answer>\n7\n</answer>"
SPAM = "<reasoning>\nok\n</reasoning>\n<answer>\n" + ", ".join(map(str, range(40))) + "\n</answer>"


def test_signs_of_degenerate_completions():
    assert signs(GOOD) == []
    assert "numbers spam" in signs(SPAM)
    assert "repetition" in signs("I think so. " * 60)
    assert "several answers" in signs("<answer>3</answer><answer>4</answer>")
    assert "prompt copied" in signs("Ann has three pens and gets four more pens today. How many pens does she have now?",
                                    prompt="Question: Ann has three pens and gets four more pens today. How many pens "
                                    "does she have now?")
    assert signs(GOOD, length=32, cap=32) == ["at the length cap"]


def rollouts(tmp_path: Path) -> Path:
    """Steps 1-3 reinforce good answers; from step 4 the numbers spam gets the positive advantages."""
    records = []
    for step in range(1, 7):
        for i in range(8):
            hacked = step >= 4 and i < 4
            completion = SPAM if hacked else (GOOD if i < 4 else "no idea")
            records.append({"step": step, "mode": "train", "group": 0, "prompt": "What is 3 + 4?",
                            "completion": completion, "rewards": {"r": 1.0 if i < 4 else 0.0},
                            "reward": 1.0 if i < 4 else 0.0, "advantage": 1.0 if i < 4 else -1.0, "length": 20})
    out = tmp_path / "run"
    out.mkdir()
    (out / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


def test_the_rollout_scan_names_the_step_hacking_started(tmp_path, capsys):
    findings = scan(json.loads(line) for line in (rollouts(tmp_path) / "rollouts.jsonl").read_text().splitlines())
    assert [f.degenerate for f in findings] == [0, 0, 0, 4, 4, 4]
    assert first_suspected(findings).step == 4
    assert main(["--rollouts", str(tmp_path / "run"), "--verbose"]) == 1
    assert "reward hacking suspected at step 4" in capsys.readouterr().out


def test_a_clean_rollout_log_gets_a_sentence_not_an_empty_table(tmp_path, capsys):
    run = rollouts(tmp_path)
    records = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    (run / "rollouts.jsonl").write_text("".join(json.dumps({**r, "completion": GOOD}) + "\n" for r in records))
    assert main(["--rollouts", str(run), "--verbose"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Rollout audit of {run}: 6 training steps, 24 reinforced completions, none of them looks degenerate.", "",
        "No step suspected (a step is when 2+ and 25%+ of the completions GRPO reinforced look degenerate)."]


def test_the_html_report_says_when_hacking_started(tmp_path):
    from axolotl_grpo_plugin.report import write_report
    from axolotl_grpo_plugin.report.data import findings_by_curve
    from axolotl_grpo_plugin.rollouts.log import read_rollouts

    run = rollouts(tmp_path)
    data = write_report(read_rollouts(run), run / "report.html", title="run")
    page = (run / "report.html").read_text()
    assert "reward hacking suspected at step 4" in page and 'id="hacking"' in page
    assert findings_by_curve(data) == {"reward": [(4, "reward_hacking")]}


def test_check_warns_about_a_hackable_reward_only(tmp_path, user_module):
    from axolotl_grpo_plugin.audit.check import reward_warnings

    def raw(rewards, path=DATA / "gsm8k_sample.jsonl"):
        return yaml.safe_load(config(tmp_path, rewards, data=path).read_text())

    assert reward_warnings(raw(COOKBOOK), read_run(raw(COOKBOOK))) == []
    warnings = reward_warnings(raw(["correctness", f"{user_module}.length_bonus"]), read_run(raw(["correctness", f"{user_module}.length_bonus"])))
    assert len(warnings) == 2 and f"`{user_module}.length_bonus` hackable" in warnings[0] and "Fix: cap it" in warnings[0]
    assert "`total` hackable" in warnings[1]  # the weighted sum inherits the bonus
    hub = raw([f"{user_module}.length_bonus"])
    hub["datasets"][0]["path"] = "openai/gsm8k"
    assert reward_warnings(hub, read_run(hub)) == []  # not a local file: the dry run's warning says so already
