"""`check` validates with Axolotl's schema without importing `axolotl.utils.config` (transformers'
model classes, peft: most of a full check's CPU), and gets Axolotl's own answer: the same
validated config for every shipped config, the same error for a bad one."""

from __future__ import annotations

import copy
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from axolotl.utils.dict import DictDefault
from conftest import subprocess_env

from axolotl_grpo_plugin.check import axolotl_validation
from axolotl_grpo_plugin.check.whole import CPU_CAPABILITIES, GPU_CAPABILITIES
from axolotl_grpo_plugin.config import defaults


REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.yaml"))
ENV = {"torch_version": "2.13.0"}
fast_path = pytest.mark.skipif(defaults.AXOLOTL.merges_builtin_plugins,
                               reason="this Axolotl merges built-in plugins: check uses validate_config itself")


def capabilities(gpu: bool) -> dict:
    return {**(GPU_CAPABILITIES if gpu else CPU_CAPABILITIES), "n_gpu": 1 if gpu else 0}


def fell_back(*args):
    raise AssertionError("the fast path failed and handed the config to Axolotl's validate_config")


def validated_both_ways(raw: dict, gpu: bool):
    results = []
    for validate in (axolotl_validation.validate, axolotl_validation.axolotl_validate):
        try:
            results.append(validate(DictDefault(copy.deepcopy(raw)), capabilities(gpu), dict(ENV)))
        except Exception as exc:  # noqa: BLE001 - the error itself is compared
            results.append(f"{type(exc).__name__}: {exc}")
    return results


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates_as_axolotl_validates_it(config, monkeypatch):
    raw = yaml.safe_load(config.read_text())
    gpu = "cpu" not in config.name and config.name not in ("smoke.yaml", "mixed_smoke.yaml", "demo.yaml")
    if not defaults.AXOLOTL.merges_builtin_plugins:  # the fast path itself must answer, not its fallback
        monkeypatch.setattr(axolotl_validation, "axolotl_validate", fell_back)
        fast = axolotl_validation.validate(DictDefault(copy.deepcopy(raw)), capabilities(gpu), dict(ENV))
        monkeypatch.undo()
    fast, axolotl = validated_both_ways(raw, gpu)
    assert not isinstance(fast, str), fast
    assert json.dumps(fast, sort_keys=True, default=str) == json.dumps(axolotl, sort_keys=True, default=str)


@pytest.mark.parametrize("change", [{"learning_rate": "fast"}, {"micro_batch_size": None, "base_model": None},
                                    {"grpo_plugin": {"vllm_max_restarts": "many"}}],
                         ids=["bad-axolotl-value", "missing-required", "bad-plugin-value"])
def test_a_bad_config_gets_axolotls_own_error(change):
    raw = {**yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text()), **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    fast, axolotl = validated_both_ways(raw, gpu=False)
    assert isinstance(fast, str) and fast == axolotl


@fast_path
def test_a_full_check_leaves_transformers_models_peft_and_datasets_unimported(embedded_model_dir):
    """`datasets` too (issue 51): the dry run and the audit read the smoke config's local JSON Lines
    file with pyarrow (sources/data.head_rows)."""
    config = REPO / "configs" / "smoke.yaml"  # its base_model is the embedded model, built by the fixture
    code = ("import sys; from axolotl_grpo_plugin.commands.check import main; rc = main([sys.argv[1], '--cpu', '--offline']); "
            "print([rc, *(m in sys.modules for m in ('axolotl.utils.config', 'peft', 'axolotl.integrations.base', "
            "'datasets'))])")
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=subprocess_env())
    assert done.stdout.strip().splitlines()[-1] == "[0, False, False, False, False]", done.stdout + done.stderr


def test_the_builtin_plugins_fact_matches_the_installed_axolotl():
    import axolotl.utils.config as axolotl_config

    merges = "get_builtin_plugins" in inspect.getsource(axolotl_config.validate_config)
    assert defaults.AXOLOTL.merges_builtin_plugins is merges
