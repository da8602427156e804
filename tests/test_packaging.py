"""The emulator as it ships: a wheel that carries schemas/, scenarios/ and probes/, with the metadata PyPI
shows, installed as the README says (the Docker image: test_docker.py)."""
from __future__ import annotations

import ast
import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import ONLY_OUR_PLUGIN
from .doc_blocks import doc_block, repository_url

ROOT = Path(__file__).resolve().parent.parent


PACKAGE = "payletter_emulator"  # the import name the wheel ships; the folder is emulator/


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return next(out.glob("payletter_emulator-*.whl"))


@pytest.fixture(scope="module")
def site(wheel) -> Path:
    """The wheel unpacked (its dist-info too: its entry points)."""
    zipfile.ZipFile(wheel).extractall(wheel.parent / "site")
    return wheel.parent / "site"


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
           f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{ONLY_OUR_PLUGIN!r}, '--rootdir', '.']))")
    result = subprocess.run([sys.executable, "-c", run], cwd=project, env=wheel_only(site),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# --- what PyPI shows, and how to install it today -----------------------------------------------

@pytest.mark.slow
def test_the_wheels_metadata_says_where_the_project_lives_and_what_it_is(wheel):
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    repository = repository_url()
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL"))
    assert urls == {"Homepage": repository, "Documentation": f"{repository}/tree/main/docs",
                    "Repository": repository, "Issues": f"{repository}/issues"}
    classifiers = set(metadata.get_all("Classifier"))
    assert {"Framework :: Pytest", "Topic :: Software Development :: Testing",
            "License :: OSI Approved :: MIT License", "Operating System :: OS Independent",
            "Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12",
            "Programming Language :: Python :: 3.13"} <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert {"payletter", "payment gateway", "emulator", "mock", "pytest", "korea"} <= set(metadata["Keywords"].split(","))
    # The description is docs/pypi.md: short, not the README, and every link absolute.
    description = metadata.get_payload()
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert description.strip() == (ROOT / "docs" / "pypi.md").read_text("utf-8").strip()
    assert len(description) < 4000 < len((ROOT / "README.md").read_text("utf-8"))
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and [link for link in links if not link.startswith("https://")] == []
    # A link into the repository names a file that is there.
    for link in links:
        if link.startswith(f"{repository}/blob/main/"):
            assert (ROOT / link.removeprefix(f"{repository}/blob/main/")).is_file(), link


def test_every_install_line_names_the_repository():
    """The repository's address is pyproject.toml's; every line that installs from it says the same."""
    repository = repository_url()
    from_git = f'pip install "payletter-emulator @ git+{repository}"'
    assert doc_block("install-from-git").text.strip() == from_git
    assert doc_block("install-from-wheel").text.splitlines()[0] == f"git clone {repository}"
    for job in ("github-actions-job", "service-container-job"):
        steps = [step["run"] for step in yaml.safe_load(doc_block(job).text)["jobs"]["payments"]["steps"]
                 if "run" in step]
        assert steps[0] == from_git, job
    for example in ("shop", "node-shop"):
        readme = (ROOT / "examples" / example / "README.md").read_text("utf-8")
        assert re.findall(r"pip install[^`\n]*", readme) and all(
            f"git+{repository}" in line for line in re.findall(r"pip install[^`\n]*", readme)), example
    everywhere = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*/README.md")]
    other = {url for page in everywhere for url in re.findall(r"https://github\.com/[\w.-]+/payletter-emulator\b",
                                                                 page.read_text("utf-8"))}
    assert other <= {repository}


@pytest.mark.slow
def test_the_readme_wheel_install_runs_in_a_fresh_venv(tmp_path):
    """The README's second way, its lines as they are after the clone (a copy of this checkout
    stands for it: no network here), in a fresh virtual environment whose python and pip come
    first on PATH; then the installed command serves."""
    clone, venv = tmp_path / "payletter-emulator", tmp_path / "venv"
    lines = doc_block("install-from-wheel").text.splitlines()
    assert lines[:2] == [f"git clone {repository_url()}", "cd payletter-emulator"]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines[2:])], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The command the wheel installed, from the fresh environment (not this checkout), serves.
    command = venv / "bin" / "payletter-emulator"
    with subprocess.Popen([str(command), "serve", "--port", "0", "--db", ":memory:"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path) as server:
        try:
            first = server.stdout.readline()
            assert "listening on " in first, first
            url = first.split("listening on ")[1].split()[0]
            health = subprocess.run([str(command), "health", "--url", url, "--wait", "30"], env=env,
                                    capture_output=True, text=True, timeout=60)
            assert health.returncode == 0, health.stderr
            where = subprocess.run([str(venv / "bin" / "python"), "-c", "import payletter_emulator; "
                                    "print(payletter_emulator.__file__)"], env=env, cwd=tmp_path,
                                   capture_output=True, text=True, check=True).stdout
            assert where.startswith(str(venv)), where
        finally:
            server.terminate()
            server.wait(30)


# --- the folder's generic name --------------------------------------------------------------------

GENERIC = "emulator"  # the folder's name in the repository; `payletter_emulator` is the package's
LOADERS = {"import_module", "__import__", "find_spec", "patch", "setattr", "delattr"}  # a dotted name in a string
SHELL_MODULE = re.compile(rf"(?<![\w.-])-m\s+{GENERIC}\b")  # `python -m emulator` inside a command string
APP_PATH = re.compile(rf"^{GENERIC}(\.\w+)*:\w+$")  # a WSGI app by the generic name (gunicorn's module:app)


def _generic(name) -> bool:
    return isinstance(name, str) and (name == GENERIC or name.startswith(GENERIC + "."))


def _text(node, strings: dict[str, list[str]]) -> list[str]:
    """What a string expression can be: a literal, an f-string (its fields as 0), a + of them, or
    a name assigned such a string in the same file; anything else counts as an empty string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(part.value if isinstance(part, ast.Constant) else "0" for part in node.values)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _text(node.left, strings) for b in _text(node.right, strings)]
    if isinstance(node, ast.Name) and node.id in strings:
        return strings[node.id]
    return [""]


def generic_name_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every place `source` reaches the package by the folder's generic name, as "line: what":
    an import, a dotted name handed to a loader or a patch, `-m emulator` in a command (a list or
    tuple, or one string), a `-c` script that imports it, a WSGI app path."""
    tree = ast.parse(source, filename)
    strings: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    strings.setdefault(target.id, []).extend(_text(node.value, strings))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names if _generic(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _generic(node.module):
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in LOADERS and any(_generic(text) for text in _text(node.args[0], strings)):
                found.append(f"{node.lineno}: {name}({_text(node.args[0], strings)[0]!r})")
        elif isinstance(node, (ast.List, ast.Tuple)):
            for flag, value in zip(node.elts, node.elts[1:]):
                flag, texts = _text(flag, strings), _text(value, strings)
                if flag == ["-m"] and any(map(_generic, texts)):
                    found.append(f"{node.lineno}: -m {GENERIC}")
                elif flag == ["-c"] and any(map(_script_imports_generic, texts)):
                    found.append(f"{node.lineno}: a -c script that imports {GENERIC}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if SHELL_MODULE.search(node.value) or APP_PATH.match(node.value):
                found.append(f"{node.lineno}: {node.value[:60]!r}")
    return sorted(set(found), key=lambda entry: int(entry.split(":")[0]))


def _script_imports_generic(script: str) -> bool:
    try:
        return bool(generic_name_uses(script))
    except SyntaxError:  # not Python after all: read it as lines
        return bool(re.search(rf"(^|[;\n])\s*(import|from)\s+{GENERIC}\b", script))


def test_the_generic_name_check_sees_every_form():
    # EMU stands for the generic name, so that this file does not hold what it looks for.
    offenders = {
        "import": "import EMU\n",
        "import a module": "import EMU.web.app as app\n",
        "from": "from EMU.client import cli\n",
        "import_module": "import importlib\nimportlib.import_module('EMU.config')\n",
        "patch": "monkeypatch.setattr('EMU.delivery.sender.send', None)\n",
        "-m in a list": "subprocess.run([sys.executable, '-m', 'EMU', 'serve'])\n",
        "-m in a tuple": "command = (python, '-m', 'EMU.client.cli')\n",
        "-m in a string": "os.system(f'{python} -m EMU serve --port 0')\n",
        "-c script": "subprocess.run([sys.executable, '-c', 'import sys; from EMU import create_app'])\n",
        "-c script by name": "SCRIPT = 'import os\\nimport EMU\\n'\nPopen([python, '-c', SCRIPT])\n",
        "-c script built": "Popen([python, '-c', PREFIX + 'import EMU'])\n",
        "app path": "run(['gunicorn', 'EMU.serving.wsgi:app'])\n",
    }
    for form, source in offenders.items():
        assert generic_name_uses(source.replace("EMU", GENERIC)) != [], form
    fine = ("import payletter_emulator\nfrom payletter_emulator import EMU\nfrom .plumbing import EMU\n"
            "subprocess.run([sys.executable, '-m', 'payletter_emulator', 'serve'])\n"
            "page = ROOT / 'EMU' / 'web'\nshop = 'import EMU\\n'  # a merchant's own module, written to a file\n"
            "os.system('python -m EMU_x')\n"
            "def f():\n    \"\"\"Never `python -m EMU`.\"\"\"\n")
    assert generic_name_uses(fine.replace("EMU", GENERIC)) == []


def test_nothing_in_the_repository_imports_the_folder_by_its_generic_name():
    """Tests, benchmarks and examples reach the package as installed (payletter_emulator, or the
    `payletter-emulator` command): `emulator` works only where the repository's root is on
    sys.path, and would load a second copy of every module beside the plugin's."""
    offenders = []
    for folder in ("tests", "benchmarks", "examples", "emulator"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            offenders += [f"{name}:{use}" for use in generic_name_uses(path.read_text("utf-8"), name)]
    assert offenders == []
