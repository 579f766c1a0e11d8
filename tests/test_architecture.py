"""The package's shape (issue 13, docs/architecture.md): one owner per concept, no import circle,
`rewards/` pure, the plugin-keys table and the packaged module list in step with the code."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "axolotl_grpo_plugin"
REWARDS = REPO / "rewards"


def _module_name(path: Path) -> str:
    if path.is_relative_to(REWARDS):
        parts = ("axolotl_grpo_rewards", *path.relative_to(REWARDS).with_suffix("").parts)
    else:
        parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for root in (PACKAGE, REWARDS) for p in root.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `path` imports, at module level or inside functions."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doorway = {id(n) for guard in tree.body if isinstance(guard, ast.If) and "__main__" in ast.unparse(guard.test)
               for n in ast.walk(guard)}  # `python -m` runs it as a script: a doorway, not the module's own import
    for node in ast.walk(tree):
        if id(node) in doorway:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else pkg itself
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle():
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_circle_finder_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_rewards_import_nothing_from_the_plugin():
    graph = _graph()
    leaks = {m: sorted(d for d in deps if d.startswith("axolotl_grpo_plugin"))
             for m, deps in graph.items() if m.startswith("axolotl_grpo_rewards")}
    assert not any(leaks.values()), leaks


# The config layer is the bottom layer (issue 27): config/ imports only config/, args, defaults, errors.
CONFIG_LAYER = "axolotl_grpo_plugin.config"
CONFIG_MAY_IMPORT = (CONFIG_LAYER, "axolotl_grpo_plugin.config.args", "axolotl_grpo_plugin.config.defaults",
                     "axolotl_grpo_plugin.errors")


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _config_imports_from_above(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    above = {m: sorted(d for d in deps if not _within(d, CONFIG_MAY_IMPORT))
             for m, deps in graph.items() if _within(m, (CONFIG_LAYER,))}
    return {m: deps for m, deps in above.items() if deps}


def test_the_config_layer_imports_nothing_above_it():
    assert _config_imports_from_above(_graph()) == {}


def test_the_layer_check_finds_a_planted_upward_import():
    planted = {"axolotl_grpo_plugin.config.x": {"axolotl_grpo_plugin.registry", "axolotl_grpo_plugin.config.args"},
               "axolotl_grpo_plugin.config.y": {"axolotl_grpo_plugin.config.x", "axolotl_grpo_plugin.errors"},
               "axolotl_grpo_plugin.config.z": {"axolotl_grpo_plugin.configs"},
               "axolotl_grpo_plugin.check.prepare": {"axolotl_grpo_plugin.registry"}}
    assert _config_imports_from_above(planted) == {"axolotl_grpo_plugin.config.x": ["axolotl_grpo_plugin.registry"],
                                                   "axolotl_grpo_plugin.config.z": ["axolotl_grpo_plugin.configs"]}


# The watchdogs (watch/) use the vLLM server's life cycle (vllm/), never the other way round, and
# neither imports the layers above the services: the plugin's hooks, the checks, the commands.
ABOVE_SERVICES = tuple(f"axolotl_grpo_plugin.{m}" for m in ("plugin", "check", "commands"))
MUST_NOT_IMPORT = {
    "axolotl_grpo_plugin.vllm": ("axolotl_grpo_plugin.watch", *ABOVE_SERVICES),
    "axolotl_grpo_plugin.watch": ABOVE_SERVICES,
}


def _forbidden_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    found = {m: sorted(d for d in deps if _within(d, banned))
             for package, banned in MUST_NOT_IMPORT.items()
             for m, deps in graph.items() if _within(m, (package,))}
    return {m: deps for m, deps in found.items() if deps}


def test_the_server_life_cycle_and_the_watchdogs_import_only_downwards():
    graph = _graph()
    assert any(_within(m, ("axolotl_grpo_plugin.watch",)) for m in graph)  # the rule has something to check
    assert _forbidden_imports(graph) == {}



def test_the_watchdog_rule_finds_a_planted_upward_import():
    planted = {"axolotl_grpo_plugin.vllm.server": {"axolotl_grpo_plugin.watch.liveness", "axolotl_grpo_plugin.errors"},
               "axolotl_grpo_plugin.watch.liveness": {"axolotl_grpo_plugin.vllm.server"},
               "axolotl_grpo_plugin.watch.saves": {"axolotl_grpo_plugin.check.prepare"},
               "axolotl_grpo_plugin.vllmx": {"axolotl_grpo_plugin.watch"}}
    assert _forbidden_imports(planted) == {"axolotl_grpo_plugin.vllm.server": ["axolotl_grpo_plugin.watch.liveness"],
                                           "axolotl_grpo_plugin.watch.saves": ["axolotl_grpo_plugin.check.prepare"]}


# Issue 64: the rooms (sub-packages and top-level modules) in the layers docs/architecture.md draws,
# read from that page, so the page and the code cannot part. An import (function-level too) goes
# down or sideways, never up; the services sit side by side (none imports another: what two of
# them share lives below both); no circle between rooms. `X/__main__.py` is a doorway for
# `python -m axolotl_grpo_plugin.X` into commands/, not part of its room.
ARCHITECTURE = REPO / "docs" / "architecture.md"
SIDE_BY_SIDE = "services"


def _layers() -> list[tuple[str, list[str]]]:
    """(layer, rooms) from the first code block under '## Layers', top layer first."""
    page = ARCHITECTURE.read_text(encoding="utf-8")
    block = page.split("## Layers", 1)[1].split("```", 2)[1]
    layers = []
    for line in block.splitlines():  # `layer   room/, room.py, ...`; indented lines describe it
        if line.strip() and not line.startswith(" "):
            name, _, rooms = line.partition(" ")
            layers.append((name, re.findall(r"(\w+)(?:/|\.py)", rooms)))
    return layers


def _room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _room_graph() -> dict[str, dict[str, list[str]]]:
    """room -> room -> the modules that import across, for our package's modules (not __main__)."""
    edges: dict[str, dict[str, list[str]]] = {}
    for module, deps in _graph().items():
        if not module.startswith("axolotl_grpo_plugin") or module.endswith(".__main__"):
            continue
        edges.setdefault(_room(module), {})
        for dep in deps:
            if dep.startswith("axolotl_grpo_plugin") and _room(dep) != _room(module):
                edges[_room(module)].setdefault(_room(dep), []).append(module)
    return edges


def _rooms_on_disk() -> set[str]:
    return {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.is_file() and p.suffix == ".py") or (p / "__init__.py").is_file()}


def _climbs(layers: list[tuple[str, list[str]]], edges: dict[str, dict[str, list[str]]]) -> list[str]:
    level = {room: i for i, (_, rooms) in enumerate(layers) for room in rooms}
    side_by_side = dict(layers).get(SIDE_BY_SIDE, [])
    found = []
    for a, targets in sorted(edges.items()):
        for b, where in sorted(targets.items()):
            if a not in level or b not in level:
                continue
            if level[b] < level[a] or (level[b] == level[a] and a in side_by_side):
                found.append(f"{a} -> {b} ({sorted(set(where))[0]})")
    return found


def test_every_room_stands_in_one_layer_of_the_architecture_page():
    placed = [room for _, rooms in _layers() for room in rooms]
    assert len(placed) == len(set(placed)), f"a room in two layers: {placed}"
    assert sorted(set(placed) ^ _rooms_on_disk()) == [], "docs/architecture.md's layers and the package differ"


def test_imports_go_down_never_up_and_services_do_not_import_each_other():
    assert _climbs(_layers(), _room_graph()) == []


def test_no_circle_between_rooms():
    graph = {room: set(targets) for room, targets in _room_graph().items()}
    cycle = _cycle({room: graph.get(room, set()) & set(graph) for room in graph})
    assert cycle is None, "circle between rooms: " + " -> ".join(cycle)


def test_the_layer_rule_finds_a_planted_climb_and_a_sideways_service_import():
    layers = [("commands", ["commands"]), ("services", ["audit", "evaluate"]), ("shared", ["sampling", "tools"])]
    edges = {"sampling": {"commands": ["x.sampling.a"]}, "audit": {"evaluate": ["x.audit.core"]},
             "commands": {"audit": ["x.commands.audit"]}, "tools": {"sampling": ["x.tools.b"]}}
    assert _climbs(layers, edges) == ["audit -> evaluate (x.audit.core)", "sampling -> commands (x.sampling.a)"]


def test_the_top_level_holds_at_most_ten_modules():
    assert len(list(PACKAGE.glob("*.py"))) <= 10, sorted(p.name for p in PACKAGE.glob("*.py"))


def test_every_command_is_a_module_of_commands_named_as_the_command():
    from axolotl_grpo_plugin.commands import COMMANDS

    assert {name: module for name, (module, _) in COMMANDS.items()} == {
        name: f"axolotl_grpo_plugin.commands.{name.replace('-', '_')}" for name in COMMANDS}
    modules = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__", "__main__", "flags"}
    assert modules == {name.replace("-", "_") for name in COMMANDS}


def _script_shell(tree: ast.AST) -> set[int]:
    """The nodes of a `main` function and of the `__main__` guard: a script's own shell."""
    shell = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "main" or (
                isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)):
            shell.update(id(n) for n in ast.walk(node))
    return shell


def _exits_outside_main(path: Path, text: str) -> list[str]:
    """sys.exit / SystemExit outside a `main` function and the `__main__` guard."""
    tree = ast.parse(text)
    allowed = _script_shell(tree)
    return [f"{path.name}:{node.lineno}" for node in ast.walk(tree) if id(node) not in allowed and (
        isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit")
        or isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc))]


# Inside `axolotl train` the plugin is its process's top: a PluginError becomes a clean exit with its
# message, an interrupted run keeps its 130, and the ranks that relaunch the launch end.
TRAIN_PROCESS_EXITS = {"plugin.py", "training/interrupted.py", "vllm/relaunch.py"}


def test_libraries_do_not_exit():
    """Below commands/, code raises (errors.PluginError) and the command decides the exit code."""
    found = [hit for p, text in _sources().items() if p.is_relative_to(PACKAGE)
             and "commands" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
             and str(p.relative_to(PACKAGE)) not in TRAIN_PROCESS_EXITS
             for hit in _exits_outside_main(p, text)]
    assert found == []
    assert _exits_outside_main(Path("x.py"), "import sys\ndef f():\n    sys.exit(2)\n") == ["x.py:3"]


# Issue 64: below commands/ nothing prints for the user: a library returns its text or takes a `report` callback,
# and the command prints (the demo's stage lines, a PluginError: commands/flags.exit_for). A script's own shell
# (`main`, the `__main__` guard of a `python -m` tool) may print, as it may exit; so may these modules, whose
# prints are another process's own output, each with why:
PRINTS_OF_ANOTHER_PROCESS = {
    "vllm/cpu_sync.py": "the vLLM worker's weight-push lines, printed in the server's process into its log",
    "evaluate/periodic.py": "grpo_plugin.eval_every's lines, printed inside the `axolotl train` process",
    "evaluate/hook.py": "grpo_plugin.eval_at_end's lines, printed inside the `axolotl train` process",
    "system/quiet.py": "a failed block's captured output (third-party chatter, C extensions) replayed on stderr",
}


def _prints(text: str) -> list[int]:
    """The lines that call the builtin `print`, outside a script's shell."""
    tree = ast.parse(text)
    shell = _script_shell(tree)
    return [node.lineno for node in ast.walk(tree) if id(node) not in shell and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == "print"]


def _library_prints(sources: dict[Path, str]) -> list[str]:
    found = []
    for path, text in sources.items():
        where = str(path.relative_to(PACKAGE if path.is_relative_to(PACKAGE) else REPO))
        if where.split("/")[0] == "commands" or where in PRINTS_OF_ANOTHER_PROCESS:
            continue
        found += [f"{where}:{line}" for line in _prints(text)]
    return sorted(found)


def test_libraries_do_not_print():
    sources = _sources()
    found = _library_prints(sources)
    assert found == [], f"return the text or take a `report` callback; the command prints: {found}"
    stale = [name for name in PRINTS_OF_ANOTHER_PROCESS if not _prints(sources[PACKAGE / name])]
    assert stale == [], f"no print left: drop them from PRINTS_OF_ANOTHER_PROCESS: {stale}"


def test_the_print_rule_finds_a_planted_print():
    planted = {PACKAGE / "x.py": 'def f(line):\n    print(line, flush=True)\n',
               PACKAGE / "y.py": 'def main():\n    print("a script")\nif __name__ == "__main__":\n    print("too")\n',
               PACKAGE / "z.py": 'LOG.print("not the builtin")\nreport = print\n',
               PACKAGE / "commands" / "w.py": 'print("the shell prints")\n',
               PACKAGE / "evaluate" / "hook.py": 'print("inside axolotl train")\n',
               REWARDS / "v.py": 'def reward(completions):\n    print(completions)\n'}
    assert _library_prints(planted) == ["rewards/v.py:2", "x.py:2"]


def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for root in (PACKAGE, REWARDS) for p in root.rglob("*.py")}


@pytest.mark.parametrize("pattern, owner", [
    (r"""\.get\(\s*(["']grpo_plugin["']|SECTION)|\[\s*["']grpo_plugin["']\s*\]|getattr\([^)]*(["']grpo_plugin["']|SECTION)""",
     "config/args.py"),                              # the one reader of `grpo_plugin:`
    (r"yaml\.((safe_)?load|compose|SafeLoader)\(", "config/load.py"),  # the one config-file reader
    (r"TRANSFORMS\.load\(", "sources/transforms.py"),  # the one transform loader
    (r"""["']accura["']""", "registry/correctness.py"),  # the one rule for which reward judges "correct"
    (r"from \.+args import[^\n]*\bsettings\b", "config/run.py"),  # grpo_plugin: parsed by read_run alone
    (r"(?<!def )\bsplit_gpus\(", "config/run.py"),  # the GPU layout: Run.gpu_layout
    (r"\btensor_parallel_size\s*\*", "config/run.py"),  # the server's GPUs: Run.server_gpus
])
def test_each_concept_has_one_owner(pattern, owner):
    users = sorted(str(p.relative_to(PACKAGE)) for p, text in _sources().items()
                   if re.search(pattern, text) and p.is_relative_to(PACKAGE))
    assert users == [owner]


# Issue 48: the `trl:` and `vllm:` sections are read by config/ alone (config/run.py declares each key once,
# read_run reads them); everything else is handed the Run. A raw section read, or a key read from a
# section-named mapping (`trl.get("beta")`, `vllm_cfg["max_model_len"]`), outside config/ is a second reader.
RAW_SECTION_READ = re.compile(r"""\.get\(\s*["'](?:trl|vllm)["']|\[\s*["'](?:trl|vllm)["']\s*\]|\bsection\(\s*\w+,\s*["'](?:trl|vllm)["']""")


def _second_readers(sources: dict[Path, str]) -> list[str]:
    from axolotl_grpo_plugin.config.run import Trl, Vllm

    keys = "|".join(sorted({*Trl.model_fields, *Vllm.model_fields}))
    key_read = re.compile(rf"""\b(?:trl|vllm)\w*\s*(?:\.get\(\s*|\[\s*)["']({keys})["']""")
    return sorted(f"{p.relative_to(PACKAGE)}:{text.count(chr(10), 0, m.start()) + 1}"
                  for p, text in sources.items() if "config" not in p.relative_to(PACKAGE).parts[:-1]
                  for pattern in (RAW_SECTION_READ, key_read) for m in pattern.finditer(text))


def test_the_trl_and_vllm_keys_are_read_by_the_config_layer_alone():
    sources = {p: text for p, text in _sources().items() if p.is_relative_to(PACKAGE)}
    assert _second_readers(sources) == []


def test_the_second_reader_rule_finds_a_planted_read():
    planted = {PACKAGE / "x.py": 'trl = cfg.get("trl") or {}\nbeta = trl.get("beta")\n',
               PACKAGE / "y.py": 'limit = vllm_cfg["max_model_len"]\nsection(cfg, "vllm")\n',
               PACKAGE / "config" / "z.py": 'cfg.get("trl")\n'}
    assert _second_readers(planted) == ["x.py:1", "x.py:2", "y.py:1", "y.py:2"]


# Issue 64: the Run is always there. A function taking `run: Run | None` rebuilds or skips it; a caller whose
# config may hold a wrong value reads it first (check/prepare.checked_run, check/whole.read_for_check).
OPTIONAL_RUN = re.compile(r"(?:Run\s*\|\s*None|None\s*\|\s*Run|Optional\[\s*Run\s*\])")


def _optional_run_parameters(sources: dict[Path, str]) -> list[str]:
    found = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
                    shown = ast.unparse(arg.annotation).strip("'\"") if arg and arg.annotation else ""
                    if OPTIONAL_RUN.fullmatch(shown):
                        found.append(f"{path.relative_to(PACKAGE)}:{node.name}({arg.arg})")
    return sorted(found)


def test_no_function_takes_an_optional_run():
    sources = {p: text for p, text in _sources().items() if p.is_relative_to(PACKAGE)}
    found = _optional_run_parameters(sources)
    assert found == [], f"pass the Run (read it first: check/prepare.checked_run): {found}"


def test_the_optional_run_rule_finds_a_planted_parameter():
    planted = {PACKAGE / "x.py": "def f(cfg, run: Run | None = None):\n    pass\n",
               PACKAGE / "y.py": "async def g(*, run: 'Optional[Run]'):\n    pass\n",
               PACKAGE / "z.py": "def h(run: Run, other: RunLog | None = None):\n    pass\n"}
    assert _optional_run_parameters(planted) == ["x.py:f(run)", "y.py:g(run)"]


def test_the_plugin_keys_table_is_generated_from_args():
    from axolotl_grpo_plugin.config.keys_table import PAGE, with_table

    page = (REPO / PAGE).read_text(encoding="utf-8")
    assert page == with_table(page), \
        f"{PAGE}'s plugin-keys table is stale: run `python -m axolotl_grpo_plugin.config.keys_table --write`"
    assert "Undefined" not in page and "| `tools` | `[]` |" in page  # a default_factory's value, not pydantic's marker


def test_every_plugin_key_says_which_module_reads_it():
    from axolotl_grpo_plugin.config.args import GRPOPluginSettings

    for name, field in GRPOPluginSettings.model_fields.items():
        read_by = re.search(r"Read by ([\w/]+\.py)", field.description or "")
        assert read_by, f"grpo_plugin.{name}: the description does not say which module reads it"
        assert (PACKAGE / read_by.group(1)).is_file(), f"grpo_plugin.{name}: no module {read_by.group(1)}"


def test_every_package_folder_is_packaged():
    """pyproject lists packages by hand (rewards/ installs under another name): a new subpackage
    left out of the list would be missing from the wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(p) for root in (PACKAGE, REWARDS) for p in root.rglob("__init__.py")}
    data = {f"axolotl_grpo_plugin.{name}" for name in ("configs", "data", "templates")}  # no Python: data only
    assert listed == on_disk | data


def test_the_defaults_module_matches_the_installed_trl_and_axolotl():
    """The row defaults.py picked for the installed TRL and Axolotl holds what they do."""
    import dataclasses
    import inspect

    from axolotl.loaders.tokenizer import load_tokenizer
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from axolotl.utils.schemas.vllm import VllmConfig
    from trl import GRPOConfig

    from axolotl_grpo_plugin.config import defaults

    fields = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    assert fields["max_completion_length"] == defaults.MAX_COMPLETION_LENGTH
    assert fields["num_generations"] == defaults.NUM_GENERATIONS
    assert fields["vllm_server_timeout"] == defaults.VLLM_SERVER_TIMEOUT_S
    assert (fields["vllm_mode"], fields["beta"]) == (defaults.VLLM_MODE, defaults.BETA)
    assert VllmConfig.model_fields["port"].default == defaults.VLLM_PORT
    # 0.19's schema declares 0.9; 0.21's leaves it None and `axolotl vllm-serve` falls back to 0.9
    utilization = VllmConfig.model_fields["gpu_memory_utilization"].default
    assert utilization in (defaults.VLLM_GPU_MEMORY_UTILIZATION, None)
    if utilization is None:
        from importlib.util import find_spec
        from pathlib import Path

        serve = Path(find_spec("axolotl.cli.vllm_serve").origin).read_text(encoding="utf-8")
        assert f'cli_or_cfg("gpu_memory_utilization", {defaults.VLLM_GPU_MEMORY_UTILIZATION})' in serve
    assert AxolotlInputConfig.model_fields["optimizer"].default == defaults.OPTIMIZER
    assert AxolotlInputConfig.model_fields["lora_dropout"].default == defaults.LORA_DROPOUT
    assert f"tokenizer_cls = {defaults.TOKENIZER_CLASS}\n" in inspect.getsource(load_tokenizer)
    # the row is the installed release's own, not an older neighbour's
    assert defaults.TRL_VERSION.startswith(defaults.TRL.read_from + ".")
    assert defaults.AXOLOTL_VERSION.startswith(defaults.AXOLOTL.read_from + ".")


def test_the_vllm_endpoints_are_the_ones_the_installed_trl_client_calls():
    """The health and generate paths our server checks use are the ones TRL's own VLLMClient uses
    against the server `axolotl vllm-serve` starts (0.19: TRL-style, 0.21: native vLLM)."""
    import inspect

    from trl.generation import vllm_client

    from axolotl_grpo_plugin.config import defaults

    source = inspect.getsource(vllm_client.VLLMClient)
    assert f'{{self.base_url}}{defaults.VLLM_HEALTH_PATH}"' in source
    assert f'{{self.base_url}}{defaults.VLLM_GENERATE_PATH}"' in source


def test_version_facts_live_only_in_defaults():
    """No `if version` outside defaults.py: code reads the picked row, never a version number."""
    pattern = re.compile(r"""(metadata\.version|installed_version)\(\s*["'](trl|axolotl)["']|__version__\s*(?:[<>!]=?|==)""")
    users = sorted(str(p.relative_to(PACKAGE)) for p, text in _sources().items()
                   if pattern.search(text) and p.is_relative_to(PACKAGE))
    assert users == ["config/defaults.py"], users


def test_trl_defaults_are_written_only_in_defaults():
    """Issue 27: a copy of a TRL default (plan/from_config.py's 256 for max_completion_length)
    went stale when TRL 1.13 changed it to 512. Code falls back to defaults.py's names."""
    pattern = re.compile(r"""(max_completion_length|num_generations|completion_tokens|max_new_tokens)"""
                         r"""["']?\)?\s*(:\s*int\s*)?(=|\bor)\s*\d|^\w*TRL_DEFAULT\w*\s*=""", re.MULTILINE)
    copies = sorted(f"{p.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}"
                    for p, text in _sources().items() for m in pattern.finditer(text)
                    if p != PACKAGE / "config" / "defaults.py")
    assert copies == [], copies


# Issue 64: a key's default is declared once (config/defaults.py for what TRL and Axolotl do, the key's field in
# config/run.py or config/args.py); code elsewhere reads that declaration. A copy in a default position (a parameter
# or field default, an `x or VALUE` fallback, `.get(key, VALUE)`, an argparse `--key` default) goes stale.
def _key_defaults() -> dict[str, object]:
    from axolotl_grpo_plugin.config import defaults
    from axolotl_grpo_plugin.config.args import GRPOPluginSettings

    table = {"max_completion_length": defaults.MAX_COMPLETION_LENGTH, "num_generations": defaults.NUM_GENERATIONS,
             "vllm_server_timeout": defaults.VLLM_SERVER_TIMEOUT_S, "vllm_mode": defaults.VLLM_MODE,
             "beta": defaults.BETA, "optimizer": defaults.OPTIMIZER, "lora_dropout": defaults.LORA_DROPOUT,
             "gpu_memory_utilization": defaults.VLLM_GPU_MEMORY_UTILIZATION, "tokenizer_type": defaults.TOKENIZER_CLASS,
             "vllm_server_host": defaults.VLLM_HOST, "vllm_server_port": defaults.VLLM_PORT,
             "output_dir": defaults.DEFAULT_OUTPUT_DIR}
    for name, field in GRPOPluginSettings.model_fields.items():
        if isinstance(field.default, (int, float, str)) and not isinstance(field.default, bool):
            table[name] = field.default
    return table


def _name_of(node: ast.AST) -> str | None:
    """What a fallback's left side reads: `run.optimizer`, `optimizer`, `cfg.get("optimizer")`, `float(x.beta)`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call) and node.args:
        if isinstance(node.func, ast.Name) and node.func.id in ("int", "float", "str"):
            return _name_of(node.args[0])
        key = node.args[1] if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) > 1 \
            else node.args[0] if isinstance(node.func, ast.Attribute) and node.func.attr == "get" else None
        if isinstance(key, ast.Constant):
            return str(key.value)
    return None


def _default_positions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            yield from ((a.arg, d) for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults))
            yield from ((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
        elif isinstance(node, ast.ClassDef):
            yield from ((s.target.id, s.value) for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value is not None)
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            yield _name_of(node.values[-2]), node.values[-1]
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and len(node.args) == 2:
                yield _name_of(node), node.args[1]
            flag = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if isinstance(flag, str) and flag.startswith("--"):
                yield from ((flag[2:].replace("-", "_"), k.value) for k in node.keywords if k.arg == "default")


def _restated_defaults(sources: dict[Path, str], table: dict[str, object]) -> list[str]:
    found = []
    for path, text in sources.items():
        if "config" in path.relative_to(PACKAGE).parts[:-1]:
            continue
        for name, value in _default_positions(ast.parse(text)):
            if not name or not isinstance(value, ast.Constant) or value.value is None or isinstance(value.value, bool):
                continue
            for key, default in table.items():
                same_key = name == key or name.endswith("_" + key) or key.endswith("_" + name)
                if same_key and type(value.value) in (int, float, str) and value.value == default:
                    found.append(f"{path.relative_to(PACKAGE)}:{value.lineno}: {name} = {value.value!r} ({key})")
    return sorted(found)


def test_no_code_outside_config_restates_a_key_default():
    sources = {p: text for p, text in _sources().items() if p.is_relative_to(PACKAGE)}
    assert _restated_defaults(sources, _key_defaults()) == []


def test_the_restated_default_rule_finds_planted_copies():
    table = {"optimizer": "adamw_torch_fused", "gpu_memory_utilization": 0.9, "rollout_log_max_mb": 256.0,
             "max_completion_length": 512}
    planted = {PACKAGE / "x.py": 'w = str(run.optimizer or "adamw_torch_fused")\n'
                                 "def f(max_mb: float = 256.0, gpu_memory_utilization=0.5):\n    pass\n",
               PACKAGE / "y.py": "class W:\n    vllm_gpu_memory_utilization: float = 0.9\n"
                                 'p.add_argument("--max-completion-length", type=int, default=512)\n'
                                 'n = cfg.get("max_completion_length", 512)\n',
               PACKAGE / "config" / "z.py": 'optimizer = run.optimizer or "adamw_torch_fused"\n'}
    assert _restated_defaults(planted, table) == [
        "x.py:1: optimizer = 'adamw_torch_fused' (optimizer)", "x.py:2: max_mb = 256.0 (rollout_log_max_mb)",
        "y.py:2: vllm_gpu_memory_utilization = 0.9 (gpu_memory_utilization)",
        "y.py:3: max_completion_length = 512 (max_completion_length)",
        "y.py:4: max_completion_length = 512 (max_completion_length)"]


@pytest.mark.parametrize("version, trl_row, axolotl_row", [
    ("1.9.0", "1.9", None), ("1.12.3", "1.9", None), ("1.13.0", "1.13", None), ("1.14.1", "1.14", None),
    ("2.0.0", "1.14", None), ("1.8.0", "1.9", None), (None, "1.9", None), ("not-a-version", "1.9", None),
    ("0.19.0", None, "0.19"), ("0.20.1", None, "0.20"), ("0.21.0", None, "0.21"), ("0.22.0.dev0", None, "0.21"),
])
def test_a_release_gets_the_newest_row_not_newer_than_it(version, trl_row, axolotl_row):
    from axolotl_grpo_plugin.config import defaults

    if trl_row:
        assert defaults.pick(defaults._TRL_ROWS, version).read_from == trl_row
    if axolotl_row:
        assert defaults.pick(defaults._AXOLOTL_ROWS, version).read_from == axolotl_row


def test_the_docs_index_lists_every_page_and_the_readme_stays_short():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert {p for p in pages if f"]({p})" not in index} == set()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
