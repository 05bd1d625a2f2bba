"""Rules about the repository's own text that no linter checks for us."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).parents[1]
#: A type-check or lint suppression carries its reason on the same line ("  # why" / " - why").
_IGNORE = re.compile("# type" r": ignore(?:\[[^\]]*\])?(?P<rest>.*)$")  # split: this line is not one
_NOQA = re.compile("# no" r"qa(?::\s*[A-Z0-9, ]+)?(?P<rest>.*)$")
#: Citations of documents a reader of this repository cannot open.
_OUTSIDE = re.compile(r"\.\./shared|launcher-behaviour\.md|builder-api-protocol\.md"
                      r"|\bbug B\d+|\bB\d{1,2}\b(?= )|§\s?\d")


def _tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_every_suppression_says_why() -> None:
    bare = []
    for path in _tracked("*.py"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            ignore = _IGNORE.search(line)
            if ignore and not re.match(r"\s+#\s*\S", ignore["rest"]):
                bare.append(f"{path.relative_to(REPO)}:{number}")
            noqa = _NOQA.search(line)
            if noqa and not re.match(r"\s*[-—]\s*\S", noqa["rest"]):
                bare.append(f"{path.relative_to(REPO)}:{number}")
    assert bare == []


def test_no_citation_points_outside_the_repository() -> None:
    cited = [f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}"
             for path in _tracked("*.py", "*.md", "*.sh", "scripts/*", "*.toml")
             if path.name != "test_repository.py"
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if _OUTSIDE.search(line)]
    assert cited == []


def test_architecture_names_every_module() -> None:
    """docs/architecture.md lists every module with one line: a new module without its line fails."""
    text = (REPO / "docs" / "architecture.md").read_text()
    packages = ("launch", "engine", "image", "builder_api", "supervisor", "cli", "testbed", "bench")
    missing = [str(path.relative_to(REPO)) for path in _tracked(*(f"{package}/*.py" for package in packages))
               if path.name != "__init__.py" and "/files/" not in str(path)
               and f"`{path.name}`" not in text and str(path.relative_to(REPO)) not in text]
    assert missing == []
