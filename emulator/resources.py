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
