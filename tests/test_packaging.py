"""The emulator as it ships: a wheel that carries schemas/, scenarios/ and probes/ (the Docker image: test_docker.py)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


PACKAGE = "payletter_emulator"  # the import name the wheel ships; the folder is emulator/


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The wheel, built from this checkout and unpacked (its dist-info too: its entry points)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(out.glob("payletter_emulator-*.whl"))
    zipfile.ZipFile(wheel).extractall(out / "site")
    return out / "site"


def wheel_only(site: Path) -> dict:
    """An environment in which the package comes from the unpacked wheel, not from this checkout."""
    return {**os.environ, "PYTHONPATH": str(site)}


# Run from the wheel alone: the checkout's folder leaves sys.path (an editable install puts it there).
WHEEL_ONLY = f"import sys; sys.path[:] = [p for p in sys.path if p.rstrip('/') != {str(ROOT)!r}]; "


@pytest.mark.slow
def test_wheel_carries_the_data_folders_and_runs_from_them(site):
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert not any(n.startswith("emulator/") for n in names)  # nothing under the generic name
    for folder in ("schemas", "scenarios", "probes"):
        prefix = f"{PACKAGE}/_data/{folder}/"
        shipped = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
        in_repo = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert shipped == in_repo
    assert f"{PACKAGE}/domain/payment_methods.toml" in names and f"{PACKAGE}/domain/error_codes.toml" in names
    # The probe's known differences live in docs/fidelity.md: the wheel carries the page as it is.
    assert (site / PACKAGE / "_data" / "fidelity.md").read_bytes() == (ROOT / "docs" / "fidelity.md").read_bytes()
    probe = (WHEEL_ONLY + "from payletter_emulator.resources import schemas_dir; "
             "from payletter_emulator import create_app; app = create_app(db=':memory:'); print(schemas_dir()); "
             "print(app.test_client().get('/_emulator/health').status_code); "
             "from payletter_emulator.resources import probes_dir, fidelity_page; print(probes_dir()); print(fidelity_page())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=site.parent, env=wheel_only(site),
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == [str(site / PACKAGE / "_data" / "schemas"), "200", str(site / PACKAGE / "_data" / "probes"),
                   str(site / PACKAGE / "_data" / "fidelity.md")]


@pytest.mark.slow
def test_a_project_with_its_own_emulator_module_runs_its_pytest_with_the_plugin_installed(site, tmp_path):
    """The plugin loads in every project that has the package installed: a merchant's own
    `emulator.py` must stay theirs, and the plugin's fixtures must still be offered."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "emulator.py").write_text('def name():\n    return "the shop\'s own emulator"\n')
    (project / "test_shop.py").write_text(
        "import emulator\n\n\n"
        "def test_its_own_module_and_the_plugin(payletter_app):\n"
        "    assert emulator.name() == \"the shop's own emulator\"\n"
        "    assert payletter_app.health()['status'] == 'ok'\n")
    run = (WHEEL_ONLY + "import pytest, payletter_emulator; "
           f"assert payletter_emulator.__file__.startswith({str(site)!r}), payletter_emulator.__file__; "
           "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir', '.']))")
    result = subprocess.run([sys.executable, "-c", run], cwd=project, env=wheel_only(site),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_nothing_in_the_repository_imports_the_folder_by_its_generic_name():
    """Tests, benchmarks and examples import the package as installed (payletter_emulator); an
    `import emulator` would load a second copy of every module beside the plugin's."""
    pattern = re.compile(r"^\s*(from emulator[ .]|import emulator\b)|[\"' ]-m emulator\b|\bemulator\.wsgi:", re.M)
    offenders = []
    for folder in ("tests", "benchmarks", "examples", "emulator"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text("utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
