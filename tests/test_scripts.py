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
