"""The fenced code blocks of README.md and docs/*.md, each named by the comment line above it:

    <!-- block NAME: run by tests/FILE.py::TEST -->      the test runs it (reading it with doc_block)
    <!-- block NAME: checked by tests/FILE.py::TEST -->  the test reads it and holds it to the code
    <!-- block NAME: not run: WHY -->                    an output sample, a fragment checked elsewhere

A test reads a block by its name, wherever the page that holds it is, so a block moved from one
page to another is still found; tests/test_docs.py checks that every block has such a line and
that each test named really reads the block."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(`{3,})([\w-]*)[^\n]*$")
MARKER = re.compile(r"^<!-- block ([a-z0-9-]+): (run by|checked by|not run:) (.+?) -->$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository's root
    line: int  # of the opening fence, from 1
    language: str
    text: str  # the lines between the fences, each ending in a newline
    name: str | None  # from the comment line above the fence, if there is one
    status: str | None  # "run by", "checked by" or "not run:"
    by: str | None  # tests/FILE.py::TEST, or the reason it is not run


def pages() -> list[Path]:
    """The pages whose blocks are accounted for: the README and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text("utf-8").splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith(opening.group(1))
                    and not lines[i].strip("`").strip()), None)
        assert end is not None, f"{path.relative_to(ROOT)}:{index + 1}: a fence that is never closed"
        marker = MARKER.match(lines[index - 1]) if index else None
        found.append(Block(page=str(path.relative_to(ROOT)), line=index + 1, language=opening.group(2),
                           text="".join(line + "\n" for line in lines[index + 1:end]),
                           name=marker and marker.group(1), status=marker and marker.group(2),
                           by=marker and marker.group(3)))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks_of(page)]


def doc_block(name: str) -> Block:
    """The block named `name`, on whichever page holds it."""
    named = [block for block in all_blocks() if block.name == name]
    assert len(named) == 1, f"{len(named)} blocks named {name!r} in README.md and docs/*.md"
    return named[0]


def repository_url() -> str:
    """The repository's address: pyproject.toml's [project.urls], the one place it is written."""
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["urls"]["Repository"]
