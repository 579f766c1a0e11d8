"""The rewards/ package: every public reward has runnable examples, and the package stays pure
(relative imports between its modules, nothing from the plugin), so that it can be installed
under another name."""

import ast
import doctest
import importlib
from pathlib import Path

import pytest


REWARDS_DIR = Path(__file__).resolve().parents[1] / "rewards"
MODULES = sorted(p.stem for p in REWARDS_DIR.glob("*.py") if p.stem != "__init__")
PURE_MODULES = MODULES  # router.py moved into the plugin (axolotl_grpo_plugin/registry/routing.py)


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name):
    module = importlib.import_module(f"axolotl_grpo_rewards.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_each_public_reward_has_examples(name):
    module = importlib.import_module(f"axolotl_grpo_rewards.{name}")
    rewards = [obj for attr, obj in vars(module).items()
               if attr.endswith("_reward_func") and callable(obj) and obj.__module__ == module.__name__]
    for func in rewards:
        examples = doctest.DocTestFinder(recurse=False).find(func, func.__name__)
        assert "Examples:" in (func.__doc__ or "") and examples and examples[0].examples, func.__name__


@pytest.mark.parametrize("name", PURE_MODULES)
def test_imports_within_rewards_are_relative_and_never_the_plugin(name):
    tree = ast.parse((REWARDS_DIR / f"{name}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            root = module.split(".")[0]
            assert root not in ("rewards", "axolotl_grpo_rewards", "axolotl_grpo_plugin"), f"{name}.py imports {module}"
