"""The repository stands alone: no file points at documents outside it, and the vendored fixtures are small."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.fixtures import FIXTURES_DIR, FIXTURES_README

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_FIXTURES_BYTES = 40_000_000  # 40 MB
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".cache",
                "runs", "wandb", "build", "dist"}

# Assembled from pieces so that this file does not match its own patterns.
FORBIDDEN = [
    re.compile(re.escape(".." + "/shared")),
    re.compile(re.escape("shared" + "/reference")),
    re.compile(re.escape("DESIGN" + ".md")),
    re.compile(r"[\w-]+\.md" + r"\s*" + "\u00a7"),  # a section citation of a markdown document
]


def repository_files() -> list[Path]:
    """Files of the checkout: git's tracked plus not-ignored new files, or a walk of the tree outside git."""
    if (REPO_ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT, capture_output=True, check=True,
        ).stdout.decode()
        return [REPO_ROOT / name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]
    files = []
    for directory, subdirs, names in os.walk(REPO_ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        files.extend(Path(directory) / name for name in names)
    return files


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (NUL bytes or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_no_file_refers_to_documents_outside_the_repository():
    files = repository_files()
    assert Path(__file__).resolve() in {p.resolve() for p in files}
    hits = []
    for path in files:
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            hits.extend(f"{path.relative_to(REPO_ROOT)}:{number}: {pattern.pattern}"
                        for pattern in FORBIDDEN if pattern.search(line))
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)


def test_patterns_catch_what_they_are_meant_to():
    samples = ["see " + ".." + "/shared/x.json", "shared" + "/reference/golden", "DESIGN" + ".md",
               "rocket-method" + ".md " + "\u00a7" + "3"]
    for sample, pattern in zip(samples, FORBIDDEN, strict=True):
        assert pattern.search(sample), sample
    assert not any(pattern.search("tests/fixtures/README.md describes the data") for pattern in FORBIDDEN)


def test_fixtures_are_small():
    total = sum(p.stat().st_size for p in fixture_files())
    assert total <= MAX_FIXTURES_BYTES, f"tests/fixtures holds {total / 1e6:.1f} MB; keep it under 40 MB"


def test_fixtures_readme_describes_every_file():
    readme = FIXTURES_README.read_text()
    files = [p.relative_to(FIXTURES_DIR).as_posix() for p in fixture_files() if p != FIXTURES_README]
    assert len(files) >= 15
    missing = [name for name in files if name not in readme]
    assert not missing, f"tests/fixtures/README.md does not describe {missing}"
