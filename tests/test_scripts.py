"""scripts/test.sh installs Chromium only when asked (issue 22, item 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]


def sandbox(tmp_path: Path) -> Path:
    """A copy of test.sh beside stand-ins for setup, the browser install, the venv, ruff and
    pytest: each stand-in only records that it ran."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "test.sh", root / "scripts" / "test.sh")
    shutil.copytree(REPO_ROOT / "scripts" / "lib", root / "scripts" / "lib")
    for name in ("setup.sh", "install-browser.sh"):
        (root / "scripts" / name).write_text(f"echo ran >> '{tmp_path}/{name}.log'\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "activate").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ruff", "python"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho \"$@\" >> '{tmp_path}/{tool}.log'\n")
        (bin_dir / tool).chmod(0o755)
    return root


def run_test_sh(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    root = sandbox(tmp_path)
    path = os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"])
    return subprocess.run(["bash", str(root / "scripts" / "test.sh")], capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path), **env}, timeout=60)


def test_browser_install_is_opt_in(tmp_path):
    proc = run_test_sh(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "setup.sh.log").exists()
    assert not (tmp_path / "install-browser.sh.log").exists(), "test.sh installed the browser unasked"


def test_with_browser_installs_and_says_so(tmp_path):
    proc = run_test_sh(tmp_path, WITH_BROWSER="1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "install-browser.sh.log").exists()
    assert "installing Chromium" in proc.stdout


def test_ci_opts_in_deliberately():
    """CI installs the browser itself, then calls exactly the README's test command."""
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert lines.index("bash scripts/install-browser.sh") < lines.index("bash scripts/test.sh")


def test_the_suite_runs_on_every_core_at_most_four_unless_told(tmp_path):
    proc = run_test_sh(tmp_path)
    assert proc.returncode == 0, proc.stderr
    cores = len(os.sched_getaffinity(0))
    assert f"-n {min(4, cores)} --dist loadfile" in (tmp_path / "python.log").read_text()
    told = tmp_path / "told"
    told.mkdir()
    proc = run_test_sh(told, TEST_WORKERS="0")
    assert proc.returncode == 0, proc.stderr
    assert "-n 0 --dist loadfile" in (told / "python.log").read_text()


# --- CI's real-vLLM selection (`--ci`): what it leaves out is marked, and only real-vLLM tests are ---

def run_vllm_script(tmp_path: Path, script: str, *args: str) -> str:
    """Run a real-vLLM test script beside stand-ins for its setup and venv; what pytest was asked."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / script, root / "scripts" / script)
    (root / "scripts" / script.replace("test-", "setup-")).write_text("")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "activate").write_text(f"PATH='{venv_bin}':$PATH\n")
    (root / ".venv-vllm").symlink_to(tmp_path / "venv")
    (venv_bin / "python").write_text(f"#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > '{tmp_path}/pytest.args'\n")
    (venv_bin / "python").chmod(0o755)
    proc = subprocess.run(["bash", str(root / "scripts" / script), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "AXOLOTL021_VLLM_VENV": str(tmp_path / "venv")}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "pytest.args").read_text()


def marker(pytest_args: list[str]) -> str:
    """The marker expression: what follows pytest's own `-m` (the last; the first is python's)."""
    return pytest_args[len(pytest_args) - pytest_args[::-1].index("-m")]


def test_ci_runs_the_real_vllm_tests_less_those_marked_beyond_ci(tmp_path):
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash scripts/test-vllm-cpu.sh --ci" in lines and "bash scripts/test-axolotl021-vllm-cpu.sh --ci" in lines
    for n, script in enumerate(("test-vllm-cpu.sh", "test-axolotl021-vllm-cpu.sh")):
        everything = run_vllm_script(tmp_path / f"all{n}", script, "-x").splitlines()
        in_ci = run_vllm_script(tmp_path / f"ci{n}", script, "--ci", "-x").splitlines()
        assert everything[:2] == ["-m", "pytest"] and marker(everything) == "vllm_cpu" and everything[-1] == "-x"
        assert marker(in_ci) == "vllm_cpu and not beyond_ci" and "--ci" not in in_ci
        assert in_ci[-1] == "-x"


def test_only_real_vllm_tests_are_marked_beyond_ci():
    """The main suite (the README's command, CI part 1) never loses a test to the marker."""
    import ast

    marked = []
    for path in sorted((REPO_ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        if not any(isinstance(node, ast.Attribute) and node.attr == "beyond_ci" for node in ast.walk(tree)):
            continue
        module_marks = [ast.unparse(node.value) for node in tree.body if isinstance(node, ast.Assign)
                        and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)]
        assert any("vllm_cpu" in m for m in module_marks), f"{path.name} marks beyond_ci outside the vllm_cpu tests"
        marked.append(path.name)
    assert marked == ["test_vllm_cpu_e2e.py"]
