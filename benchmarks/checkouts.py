"""The checkouts a benchmark compares in one run: source trees of the repository, each with its own
virtualenv (`--checkout [NAME=]DIR`: DIR/.venv/bin/python), or interpreters (`--python
[NAME=]PATH`: whatever payletter_emulator it imports), each named by its commit unless named; and
the order in which they take turns, so that the machine's slow minutes fall on all of them alike.

    git worktree add --detach /tmp/base 740cba4 && python3.11 -m venv /tmp/base/.venv \\
        && /tmp/base/.venv/bin/pip install -e '/tmp/base[test]'
    python benchmarks/feel.py --checkout base=/tmp/base --checkout .
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, commit  # noqa: E402

IMPORTED_FROM = "import payletter_emulator, pathlib; print(pathlib.Path(payletter_emulator.__file__).parent)"


@dataclass(frozen=True)
class Checkout:
    """One tree under test: the interpreter that runs it (its `payletter-emulator` beside it), the
    folder its payletter_emulator is imported from, and its commit."""

    name: str
    python: str
    package: Path
    commit: str

    def describe(self) -> str:
        return f"{self.name}: commit {self.commit}, {self.python} (payletter_emulator from {self.package})"


def from_python(text: str) -> Checkout:
    """`[NAME=]PATH` of an interpreter with payletter_emulator installed (editable or not)."""
    name, _, python = text.rpartition("=")
    found = subprocess.run([python, "-c", IMPORTED_FROM], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise argparse.ArgumentTypeError(f"{python} cannot import payletter_emulator: "
                                         f"{found.stderr.strip().splitlines()[-1:] or found.returncode}")
    package = Path(found.stdout.strip())
    tree = package.parent if package.name == "emulator" else None  # an editable install: its working tree
    return Checkout(name, python, package, commit(tree) if tree else f"installed ({package})")


def from_dir(text: str) -> Checkout:
    """`[NAME=]DIR` of a source tree with its own virtualenv in DIR/.venv (`pip install -e DIR`)."""
    name, _, folder = text.rpartition("=")
    python = Path(folder).resolve() / ".venv" / "bin" / "python"
    if not python.exists():
        raise argparse.ArgumentTypeError(
            f"{folder} has no .venv: python3.11 -m venv {folder}/.venv && {folder}/.venv/bin/pip install -e '{folder}[test]'")
    checkout = from_python(f"{name}={python}")
    if Path(folder).resolve() not in checkout.package.parents:
        raise argparse.ArgumentTypeError(f"{python} imports payletter_emulator from {checkout.package}, "
                                         f"not from {folder}: install it there with pip install -e")
    return checkout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkout", dest="checkouts", action="append", type=from_dir, default=[],
                        metavar="[NAME=]DIR", help="a source tree with its own .venv; repeatable, the first is "
                                                    "the baseline of the ratios [default: this repository]")
    parser.add_argument("--python", dest="checkouts", action="append", type=from_python, metavar="[NAME=]PATH",
                        help="an interpreter with payletter_emulator installed, instead of a DIR; repeatable")


def chosen(options: argparse.Namespace) -> list[Checkout]:
    """The checkouts given, in order, each with a name of its own; this repository if none."""
    checkouts = options.checkouts or [this_repository()]
    named, seen = [], {}
    for checkout in checkouts:
        name = checkout.name or checkout.commit.split()[0]
        seen[name] = seen.get(name, 0) + 1
        named.append(replace(checkout, name=name if seen[name] == 1 else f"{name}#{seen[name]}"))
    return named


def this_repository() -> Checkout:
    """This repository, run by its .venv if it has one, else by the Python running the benchmark."""
    if (ROOT / ".venv" / "bin" / "python").exists():
        return from_dir(str(ROOT))
    return from_python(sys.executable)


def turns(items: list, round_: int) -> list:
    """Round 0 in order, round 1 reversed, and so on: each goes first in turn."""
    return list(items) if round_ % 2 == 0 else list(items)[::-1]


def ratio(value: float, first: float) -> str:
    return f"{value / first:.3f}" if first else "-"


def report(options, results: dict, render) -> int:
    """Print the figures (`render(results)`), and write them to --json's file if given."""
    print(render(results))
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=2))
    return 0
