"""The folder list is the architecture, and the import contract keeps it true: the layers of
docs/architecture.md (pyproject.toml's [tool.importlinter]) import downward only, every folder and
top-level module stands in a layer, and no module name means two things."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import payletter_emulator

PACKAGE = Path(payletter_emulator.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def layers() -> list[list[str]]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["type"] == "layers"]
    return [[name.strip() for name in re.split(r"[|:]", layer)] for layer in contract["layers"]]


def lint_imports(package_parent: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if package_parent is not None:  # this copy of the package is found before the installed one
        env["PYTHONPATH"] = str(package_parent)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_layers_import_downward_only():
    run = lint_imports()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "payletter_emulator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    tax = copy / "domain" / "tax.py"
    tax.write_text(tax.read_text("utf-8") + "\nfrom ..storage import Storage  # upward, on purpose\n", "utf-8")
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert "payletter_emulator.domain.tax -> payletter_emulator.storage" in run.stdout, run.stdout


def test_every_folder_and_top_level_module_stands_in_a_layer():
    named = {name.removeprefix("payletter_emulator.") for layer in layers() for name in layer}
    present = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"}}
    assert present == named


def test_no_module_name_means_two_things():
    stems: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem != "__init__":
            stems.setdefault(path.stem, []).append(str(path.relative_to(PACKAGE)))
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    twice = {stem: where for stem, where in stems.items() if len(where) > 1 or stem in folders}
    assert twice == {}
