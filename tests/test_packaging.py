"""The emulator as it ships: a wheel that carries schemas/ and scenarios/, and the Docker CMD."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import requests

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_docker_cmd_serves_under_gunicorn(tmp_path):
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(next(line for line in dockerfile.splitlines() if line.startswith("CMD "))[4:])
    assert cmd[0] == "gunicorn"
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "PAYLETTER_EMULATOR_DB": str(tmp_path / "docker.db")}
    # The image puts gunicorn on PATH; here it is beside this interpreter.
    executable = str(Path(sys.executable).with_name("gunicorn"))
    process = subprocess.Popen([executable, *cmd[1:]], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(url + "/_emulator/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "gunicorn never served"
                time.sleep(0.05)
        assert health.json() == {"status": "ok"}
        assert "HEALTHCHECK" in dockerfile and "/_emulator/health" in dockerfile
        response = requests.post(url + "/v1.0/payments/request", timeout=5, json={"pgcode": "visa"},
                                 headers={"Authorization": "PLKEY MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA="})
        assert response.status_code == 406 and response.json()["code"] == 2001
        assert (tmp_path / "docker.db").exists()
    finally:
        process.terminate()
        process.wait(10)
