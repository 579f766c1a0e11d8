"""The one config reader (axolotl_grpo_plugin.config.load): every tool reads configs through it,
so a yaml error or a misspelled name reads the same in check, stats, evaluate and plan."""

from __future__ import annotations

import re

import pytest
import yaml

from axolotl_grpo_plugin.config.load import ConfigFileError, read_yaml
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.names import load_config


def _config(tmp_path, **extra):
    cfg = {"datasets": [{"path": "rows.jsonl", "type": "gsm8k", "split": "train"}],
           "trl": {"reward_funcs": ["correctness"]}, **extra}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path, cfg


def test_config_from_a_path_or_a_mapping_is_a_private_resolved_copy(tmp_path):
    from axolotl.utils.dict import DictDefault

    from axolotl_grpo_plugin.registry import REWARDS, TRANSFORMS

    path, raw = _config(tmp_path)
    from_path = load_config(path)
    from_mapping = load_config(DictDefault(raw))
    assert from_path.pop("axolotl_config_path") == str(path.resolve())  # recorded as Axolotl records it
    assert from_path == from_mapping and type(from_mapping) is dict
    assert from_path["datasets"][0]["type"] == TRANSFORMS.import_path("gsm8k")
    assert from_path["trl"]["reward_funcs"] == [REWARDS.import_path("correctness")]
    assert raw["datasets"][0]["type"] == "gsm8k"  # the caller's mapping is not rewritten


def test_config_name_problems_name_the_key_and_rewards_can_be_ignored(tmp_path):
    path, _ = _config(tmp_path, trl={"reward_funcs": ["corectness"]})
    with pytest.raises(GRPOConfigError) as info:
        load_config(path)
    assert re.match(r"^trl\.reward_funcs\[0\] = 'corectness': .*Did you mean 'correctness'.*Fix:",
                    info.value.problems[0].line())
    assert load_config(path, rewards=False)["trl"]["reward_funcs"] == ["corectness"]


@pytest.mark.parametrize("text, words", [("datasets: [", "not valid yaml"), ("- a\n- b\n", "mapping")])
def test_bad_yaml_is_one_line_with_a_fix(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value).startswith("config = ") and words in str(info.value)
    assert "Fix:" in str(info.value) and "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigFileError, match=r"^config = .*none\.yaml'?: file not found.*Fix:"):
        load_config(tmp_path / "none.yaml")


def test_a_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rl: grpo\ntrl:\n  num_generations: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as info:
        read_yaml(path)
    assert re.search(r"not valid yaml at line \d+, column \d+", str(info.value))


def test_the_check_cli_calls_a_yaml_error_a_yaml_error_not_an_axolotl_rejection(tmp_path, capsys):
    """Issue 13: `check bad.yaml` used to say "Axolotl rejected bad.yaml" for a syntax error."""
    from axolotl_grpo_plugin.commands.check import main

    path = tmp_path / "bad.yaml"
    path.write_text("base_model: x\nrl: grpo\n  trl: {\n", encoding="utf-8")
    assert main([str(path), "--cpu"]) == 2
    err = capsys.readouterr().err
    assert "not valid yaml at line" in err and "Axolotl rejected" not in err and "Traceback" not in err


@pytest.mark.parametrize(("text", "line"), [
    ("a: 1\nb: 2\nc\nd: 4\n", 3),          # a key without `:` (PyYAML notices on line 4)
    ("a: 1\nb: [1, 2\nc: 3\n", 2),         # an unclosed bracket
    ("a: 1\n  b: 2\n", 2),
])
def test_a_yaml_error_names_the_line_that_holds_it(tmp_path, text, line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(GRPOConfigError) as info:
        load_config(path)
    assert f"not valid yaml at line {line}," in str(info.value)


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path):
    """yaml keeps the last of two `trl:` sections without a word: the first one's keys would be lost."""
    path = tmp_path / "twice.yaml"
    path.write_text("rl: grpo\ntrl:\n  beta: 0.1\n  beta: 0.2\ndatasets:\n  - path: a.jsonl\n    path: b.jsonl\n"
                    "trl:\n  use_vllm: false\n<<: {}\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as info:
        read_yaml(path)
    lines = str(info.value).splitlines()
    assert [line.split("`")[1] for line in lines] == ["trl.beta", "datasets[0].path", "trl"]
    assert "(lines 2 and 8)" in lines[2] and "keep one `trl`" in lines[2]
    path.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", encoding="utf-8")
    assert read_yaml(path)["other"] == {"x": 1, "y": 2}  # a merge key is not a repeated key


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigFileError, match="is a folder, not a yaml file"):
        read_yaml(tmp_path)


def test_the_yaml_is_parsed_once(tmp_path, monkeypatch):
    """One parse gives both the nodes (the lines of a repeated key) and the data: neither PyYAML's
    `safe_load` nor a second `compose` of the same text runs."""
    parses = []
    real = yaml.SafeLoader.get_single_node
    monkeypatch.setattr(yaml.SafeLoader, "get_single_node", lambda self: parses.append(1) or real(self))
    for name in ("safe_load", "compose", "load"):
        monkeypatch.setattr(yaml, name, lambda *a, _name=name, **k: pytest.fail(f"yaml.{_name} parsed it again"))
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {x: 1, y: 1}\nother:\n  <<: *b\n  y: 2\ntrl: {beta: 0.1}\n", encoding="utf-8")
    assert read_yaml(path) == {"base": {"x": 1, "y": 1}, "other": {"x": 1, "y": 2}, "trl": {"beta": 0.1}}
    assert len(parses) == 1  # a key a merge brings in and the mapping then sets is not a repeated key
    path.write_text("trl: {beta: 0.1}\ntrl: {beta: 0.2}\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"`trl` is written twice \(lines 1 and 2\)"):
        read_yaml(path)
    assert len(parses) == 2


def test_check_reads_the_config_file_once(tmp_path, monkeypatch):
    """`check --gpu` takes the yaml and its `# Processes: N` comment from one read of the file."""
    from pathlib import Path

    from axolotl_grpo_plugin.check import whole
    from axolotl_grpo_plugin.commands import check as command

    path = tmp_path / "cfg.yaml"
    path.write_text("# Processes: 3\nrl: grpo\nbase_model: x\n", encoding="utf-8")
    reads, launches, real = [], [], Path.read_text

    def read_text(self, *args, **kwargs):
        reads.append(self == path)
        return real(self, *args, **kwargs)

    def validate(raw, launch, run):
        launches.append(launch)
        raise RuntimeError("stop here")

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(whole, "validate_with_axolotl", validate)
    assert command.main([str(path), "--gpu", "--offline"]) == 2  # the stop, reported as Axolotl's rejection
    assert [launch.processes for launch in launches] == [3]  # the comment was read
    assert reads.count(True) == 1
