"""The docs point at things that exist: every relative link of README.md and docs/*.md reaches a
file and, with `#anchor`, a heading of it (GitHub's anchors); every `--flag` written after
`axolotl-grpo COMMAND` is one of that command's own flags, spelled in full (argparse would take
`--json` for `--json-file`, so a stale name in a doc still ran and nobody noticed)."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

from axolotl_grpo_plugin.commands import COMMANDS


REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but `-`/`_` dropped, spaces as `-`, a
    repeated one numbered."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        name, n = slug, 0
        while name in found:
            n += 1
            name = f"{slug}-{n}"
        found.add(name)
    return found


def links(doc: Path) -> list[tuple[str, str]]:
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    return [(doc.name, target) for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_heading(doc):
    broken = []
    for _, target in links(doc):
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def test_the_anchor_rule_is_githubs():
    text = "# The GPU check: measure what the planner predicts\n## Run doctor\n## Run doctor\n"
    assert anchors(text) == {"the-gpu-check-measure-what-the-planner-predicts", "run-doctor", "run-doctor-1"}


def help_text(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        importlib.import_module(COMMANDS[command][0]).main(["--help"])
    return out.getvalue()


def written_flags() -> dict[str, set[str]]:
    """command -> the flags the docs write after `axolotl-grpo COMMAND` on one line."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        for line in doc.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"axolotl-grpo ([a-z][a-z-]*)((?: +[^`|#;]+?)?)(?=`|\||#|;|$)", line):
                if match.group(1) in COMMANDS:
                    found.setdefault(match.group(1), set()).update(re.findall(r"(?<![\w-])--[a-z][\w-]*", match.group(2)))
    return found


def test_every_flag_the_docs_write_is_the_commands_own():
    wrong = []
    for command, flags in sorted(written_flags().items()):
        text = help_text(command)
        wrong += [f"axolotl-grpo {command} {flag}" for flag in sorted(flags)
                  if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]
    assert not wrong, "flags the docs write that the command does not have: " + ", ".join(wrong)


def test_the_flag_scan_sees_the_docs_flags():
    flags = written_flags()
    assert "--gpu-type" in flags["plan"] and "--processes" in flags["check"], flags
