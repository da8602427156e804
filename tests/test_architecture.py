"""The house stays one a newcomer can change: no module of emulator/ over 400 lines, no class
over 250 (docs/architecture.md draws the rooms)."""
from __future__ import annotations

import ast
from pathlib import Path

import payletter_emulator

MODULE_LINES = 400
CLASS_LINES = 250
PACKAGE = Path(payletter_emulator.__file__).parent


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_where_the_check_looks():
    assert {"service", "storage", "web", "domain"} <= {p.parent.name for p in modules()}


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in modules()
            if (n := len(p.read_text("utf-8").splitlines())) > MODULE_LINES}
    assert long == {}


def test_no_class_is_over_the_limit():
    long = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LINES:
                long[f"{path.relative_to(PACKAGE)}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}
