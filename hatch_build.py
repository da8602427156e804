"""Build hook: an editable install imports the `emulator/` folder as `payletter_emulator`.

The wheel renames the folder with `sources`; hatchling's editable mode cannot rename a folder,
so for an editable install this hook adds a small import finder that maps the name to the
folder (what the `editables` project does for exact mappings)."""
from __future__ import annotations

import os
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "payletter_emulator"
FINDER = '''"""Installed by `pip install -e`: imports {package} from the working tree's emulator/.

PYTEST_DONT_REWRITE: pytest sees this module in the plugin's distribution, imported before it starts."""
import importlib.util
import sys

_FOLDER = {folder!r}


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != {package!r}:
            return None
        return importlib.util.spec_from_file_location(
            name, _FOLDER + "/__init__.py", submodule_search_locations=[_FOLDER])


if not any(isinstance(f, type) and f.__name__ == "_Finder" and f.__module__ == __name__ for f in sys.meta_path):
    sys.meta_path.append(_Finder)
'''


class EditableName(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version != "editable":
            return
        folder = os.path.join(self.root, "emulator")
        out = tempfile.mkdtemp(prefix="payletter-emulator-editable-")
        finder = os.path.join(out, f"_{PACKAGE}_finder.py")
        with open(finder, "w", encoding="utf-8") as file:
            file.write(FINDER.format(package=PACKAGE, folder=folder))
        pth = os.path.join(out, f"_{PACKAGE}_finder.pth")
        with open(pth, "w", encoding="utf-8") as file:
            file.write(f"import _{PACKAGE}_finder\n")
        build_data["force_include_editable"][finder] = f"_{PACKAGE}_finder.py"
        build_data["force_include_editable"][pth] = f"_{PACKAGE}_finder.pth"
