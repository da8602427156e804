"""Where the top-level data folders are: inside the package when installed from a wheel,
at the top of the repository when run from a checkout."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is neither packaged nor beside the package")


def schemas_dir() -> Path:
    return data_dir("schemas")


def scenarios_dir() -> Path:
    return data_dir("scenarios")


def probes_dir() -> Path:
    return data_dir("probes")


def fidelity_page() -> Path:
    """docs/fidelity.md, whose "Known differences" the probe reads: packaged beside the data
    folders in a wheel, in docs/ in a checkout."""
    for candidate in (_PACKAGE / "_data" / "fidelity.md", _PACKAGE.parent / "docs" / "fidelity.md"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("docs/fidelity.md is neither packaged nor beside the package")
