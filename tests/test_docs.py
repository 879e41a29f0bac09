"""The project's docs stand on their own: nothing cites the team's notes outside the repository, every relative
Markdown link resolves.

What the code relies on from the wire protocols is in docs/protocols/, from Locust in docs/locust.md; a
clone has nothing else to look in.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
SCANNED_DIRS = ("bootbench", "bench", "tests", "docs", "examples", "docker", "conf")
SCANNED_FILES = ("README.md", "locustfile.py", "pyproject.toml", "Makefile")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache"}
OUTSIDE_NOTES = ("PROTOCOLS" + ".md", "LOCUST" + "_NOTES", "DESIGN" + ".md")
"""Files of the team's shared notes, which a clone does not have (built so this file does not cite them)."""

EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.I)
"""A URL with a scheme (https:, mailto:) or a fragment of the same page: not a file of the repository."""


def project_files() -> list[Path]:
    """Every text file a clone has in the scanned folders, plus the top-level files above."""
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for folder in SCANNED_DIRS:
        files += sorted(p for p in (ROOT / folder).rglob("*")
                        if p.is_file() and not SKIPPED_PARTS.intersection(p.relative_to(ROOT).parts))
    return files


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "bench").glob("*.md"))]


def relative_links(markdown: str) -> list[str]:
    """The relative link and image targets of a Markdown text (CommonMark), without their #fragment."""
    targets = []
    for block in MarkdownIt("commonmark").parse(markdown):
        for token in block.children or []:
            if token.type in ("link_open", "image"):
                targets.append(unquote(str(token.attrs["href" if token.type == "link_open" else "src"])))
    return [target.split("#", 1)[0] for target in targets if not EXTERNAL.match(target)]


def broken_links(markdown_file: Path) -> list[str]:
    """The relative links of ``markdown_file`` whose file or folder does not exist."""
    links = relative_links(markdown_file.read_text(encoding="utf-8"))
    return [link for link in links if link and not (markdown_file.parent / link).exists()]


def test_no_file_cites_the_team_notes_a_clone_does_not_have():
    files = project_files()
    assert len(files) > 50 and ROOT / "docs" / "locust.md" in files and ROOT / "README.md" in files
    citing = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text
        for number, line in enumerate(text.splitlines(), 1):
            citing += [f"{path.relative_to(ROOT)}:{number}: {note}" for note in OUTSIDE_NOTES if note in line]
    assert citing == [], "cite docs/protocols/ or docs/locust.md instead:\n" + "\n".join(citing)


@pytest.mark.parametrize("markdown_file", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_markdown_link_points_at_a_file_that_exists(markdown_file):
    assert broken_links(markdown_file) == []


def test_the_docs_link_to_one_another():
    """The checks above have links to check: the README and the architecture page reach every docs page."""
    readme = relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"docs/architecture.md", "docs/protocols/README.md", "docs/locust.md", "docs/providers.md"} <= set(readme)
    architecture = relative_links((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert {"protocols/README.md", "locust.md", "providers.md"} <= set(architecture)
    index = relative_links((ROOT / "docs" / "protocols" / "README.md").read_text(encoding="utf-8"))
    assert {"aivoco.md", "openai-realtime.md", "gemini-live.md", "../architecture.md"} <= set(index)


def test_a_missing_link_target_is_found(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#part) [gone](gone.md) ![img](pics/a.png \"title\") [web](https://example.com)\n"
                    "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\nsee [a reference][ref], [up](#top)\n\n"
                    "[ref]: ./missing/ref.md\n")
    assert broken_links(page) == ["gone.md", "pics/a.png", "./missing/ref.md"]


def test_the_package_license_is_an_spdx_expression():
    """Issue 20 item 22: setuptools deprecates ``project.license`` as a table."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
