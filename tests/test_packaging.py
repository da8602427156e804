"""The emulator as it ships: a wheel that carries schemas/ and scenarios/ (the Docker image: test_docker.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_data_folders_and_runs_from_them(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("payletter_emulator-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("schemas", "scenarios"):
        shipped = {n.split(f"emulator/_data/{folder}/", 1)[1] for n in names if n.startswith(f"emulator/_data/{folder}/")}
        in_repo = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert shipped == in_repo
    assert "emulator/domain/payment_methods.toml" in names and "emulator/error_codes.toml" in names
    # Run from the unpacked wheel alone (no checkout on the path): the packaged schemas are used.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("from emulator.resources import schemas_dir; from emulator import create_app; "
             "app = create_app(db=':memory:'); print(schemas_dir()); "
             "print(app.test_client().get('/_emulator/health').status_code)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == [str(site / "emulator" / "_data" / "schemas"), "200"]

