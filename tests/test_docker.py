"""The Docker image, tested without a Docker engine: the Dockerfile passes hadolint and says what
the image must be; its CMD and HEALTHCHECK run here as processes with the image's environment;
compose.yaml names what a merchant's setup needs."""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import typing
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
import yaml

from payletter_emulator.serving import tls
from payletter_emulator.config import ENV_PREFIX, Settings

from .conftest import OTHER_CLIENT, PAYMENT_KEY, READY_TIMEOUT, EmulatorProcess, serving_processes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the image puts its commands on PATH; here they are beside python
DATA = "/data"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        keyword, _, arguments = (current + text).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    return found


def instruction(keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions() if name == keyword]


def image_env() -> dict[str, str]:
    return dict(item.split("=", 1) for arguments in instruction("ENV") for item in shlex.split(arguments))


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments[arguments.index("["):])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Container(EmulatorProcess):
    """The image's CMD as a process, with the image's environment: /data is a folder of the
    test's, the port a free one, and `env` what `docker run -e` would add."""

    def __init__(self, data: Path, env: dict[str, str] | None = None):
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        self.env.update({key: value.replace(DATA, str(data), 1) if value.startswith(DATA) else value
                         for key, value in image_env().items()})
        self.env.update({ENV_PREFIX + "PORT": str(_free_port()), **(env or {})})
        command = exec_form(instruction("CMD")[0])
        ca = str(data / tls.CA_FILE) if tls.enabled(Settings.from_env(self.env)) else None
        super().__init__(data, db=None, environ=self.env, argv=[str(BIN / command[0]), *command[1:]], ca=ca,
                         log=data.parent / f"{data.name}.log")

    def healthcheck(self) -> int:
        """The exit status of the image's HEALTHCHECK command, run in the container's environment."""
        command = exec_form(instruction("HEALTHCHECK")[0].split(" CMD ", 1)[1])
        return subprocess.run([str(BIN / command[0]), *command[1:]], env=self.env, cwd=self.workdir,
                              capture_output=True, timeout=30).returncode

    def workers(self, expected: int) -> int:
        """How many processes serve, once `expected` are up (they start a moment apart, so the
        first may answer before the last exists)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            count = len(serving_processes(self.process.pid))
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.02)


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_image_runs_as_a_user_keeps_its_state_in_a_volume_and_checks_its_health():
    env = image_env()
    user = instruction("USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric user other than root"
    assert instruction("VOLUME") == [DATA] and instruction("WORKDIR")[-1] == DATA
    assert env[ENV_PREFIX + "DB"].startswith(DATA + "/")
    assert instruction("EXPOSE") == [env[ENV_PREFIX + "PORT"]]
    assert env[ENV_PREFIX + "HOST"] == "0.0.0.0"
    assert exec_form(instruction("HEALTHCHECK")[0])[:2] == ["payletter-emulator", "health"]
    assert exec_form(instruction("CMD")[0])[:2] == ["payletter-emulator", "serve"]
    # Every setting the image fixes is one the emulator reads.
    names = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)} | {ENV_PREFIX + "CLIENTS"}
    assert {key for key in env if key.startswith(ENV_PREFIX)} <= names


def test_the_base_image_is_pinned_by_tag_and_digest():
    """A rebuild gets the same Python and Debian: an exact patch release, and the index's digest."""
    [base] = instruction("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base


def left_out(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context, as Docker reads it: the last
    pattern that matches the path or a folder above it decides, and a `!` pattern lets it in."""
    decided = False
    parents = [str(Path(path))] + [str(p) for p in Path(path).parents if str(p) != "."]
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        keep = pattern.startswith("!")
        if any(fnmatch.fnmatch(name, pattern.removeprefix("!")) for name in parents):
            decided = not keep
    return decided


def copied() -> list[str]:
    return [source for arguments in instruction("COPY") for source in shlex.split(arguments)[:-1]]


def test_what_the_image_copies_is_in_the_build_context():
    for source in copied():
        assert (ROOT / source).exists(), source
        assert not left_out(source), source
    for kept_out in (".venv", ".git", "payletter-emulator.db", "tests", tls.CA_KEY_FILE, "docs/decisions.md"):
        assert left_out(kept_out), kept_out


def test_the_image_copies_every_file_the_packages_build_reads():
    """`pip install .` in the image builds the wheel: pyproject.toml's readme, its build hook and
    the files the wheel force-includes must be there, or the build stops."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = build["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", build["project"]["readme"], "hatch_build.py", *wheel["force-include"], *wheel["packages"]}
    present = copied()
    assert [name for name in needed if not any(name == source or name.startswith(source.rstrip("/") + "/")
                                               for source in present)] == []


def test_every_setting_comes_from_the_environment():
    """A value for each field of Settings, through its PAYLETTER_EMULATOR_* variable."""
    env, expected = {}, {}
    for f in dataclasses.fields(Settings):
        if f.name in ("clients", "global_stores"):  # set below: each entry has its own shape
            continue
        kind = typing.get_type_hints(Settings)[f.name]
        if kind is bool:
            raw, value = ("false", False) if f.default else ("true", True)
        elif int in typing.get_args(kind) or kind is int:
            raw, value = "1000", 1000
        elif kind is float:
            raw, value = "7.5", 7.5
        elif typing.get_origin(kind) is tuple:
            raw, value = "a.example, b.example", ("a.example", "b.example")
        else:
            assert str in (kind, *typing.get_args(kind)), f"no sample for {f.name}: {kind}"
            raw, value = f"{f.name}-value", f"{f.name}-value"
        env[ENV_PREFIX + f.name.upper()] = raw
        expected[f.name] = value
    env[ENV_PREFIX + "CLIENTS"] = ":".join(OTHER_CLIENT)
    env[ENV_PREFIX + "GLOBAL_STORES"] = "shop_global:shop-global-key"
    settings = Settings.from_env(env)
    assert [store.store_id for store in settings.global_stores][-1] == "shop_global"
    assert {name: getattr(settings, name) for name in expected} == expected
    assert [c.client_id for c in settings.clients] == ["pay_test", OTHER_CLIENT[0]]
    # ... and each variable is in the configuration table.
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert [name for name in env if f"`{name}`" not in page] == []


def test_the_cmd_serves_with_every_setting_from_the_environment(data, callback_receiver):
    token = "s3cret"
    container = Container(data, {
        ENV_PREFIX + "WORKERS": "2", ENV_PREFIX + "PUBLIC_URL": "http://emulator.example:8080",
        ENV_PREFIX + "SCENARIO": "declined-cards", ENV_PREFIX + "CALLBACK_HOSTS": "shop.example",
        ENV_PREFIX + "CONTROL_TOKEN": token, ENV_PREFIX + "STRICT": "1", ENV_PREFIX + "CLIENTS": ":".join(OTHER_CLIENT),
        ENV_PREFIX + "CALLBACK_RETRIES": "3", ENV_PREFIX + "JOURNAL_LIMIT": "500", ENV_PREFIX + "CALLBACK_LIMIT": "500",
        ENV_PREFIX + "FAKER_SEED": "7",
    })
    try:
        url, control = container.url, {"X-Emulator-Token": token}
        assert container.workers(2) == 2
        assert container.healthcheck() == 0
        assert (data / "payletter-emulator.db").exists()
        assert requests.get(url + "/_emulator/clock", timeout=10).status_code == 401
        scenario = requests.get(url + "/_emulator/scenario", headers=control, timeout=10).json()
        assert scenario["scenario"]["name"] == "declined-cards"

        def request_payment(key=PAYMENT_KEY, **fields):
            body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "service_name": "shop",
                    "order_no": "docker-1", "amount": 1000, "product_name": "a mug",
                    "return_url": "https://shop.example/return", "callback_url": callback_receiver.url, **fields}
            return requests.post(url + "/v1.0/payments/request", json=body, timeout=10,
                                 headers={"Authorization": f"PLKEY {key}"})

        strict = request_payment(colour="blue")  # strict: unknown fields refused
        assert (strict.status_code, strict.json()["code"]) == (406, 2006)
        assert request_payment(OTHER_CLIENT[1], client_id=OTHER_CLIENT[0]).status_code == 200
        requested = request_payment(amount=1013).json()
        assert requested["online_url"].startswith("http://emulator.example:8080/")
        # The scenario declines an amount ending in 13.
        outcome = requests.post(url + f"/_emulator/payments/{requested['token']}/approve", json={},
                                headers=control, timeout=10).json()
        assert outcome["fields"]["code"] == "6002"
        approved = request_payment(amount=1000).json()
        requests.post(url + f"/_emulator/payments/{approved['token']}/approve", json={}, headers=control, timeout=10)
        requests.post(url + "/_emulator/callbacks/flush", json={}, headers=control, timeout=30)
        # Callbacks go to the allowed host only: the receiver on 127.0.0.1 is not one.
        notifications = requests.get(url + "/_emulator/callbacks", headers=control, timeout=10).json()["callbacks"]
        assert [n["status"] for n in notifications] == ["failed"]
        assert "blocked" in json.dumps(notifications[0])
    finally:
        container.stop()
    assert container.healthcheck() != 0


def test_the_cmd_serves_in_one_process_and_its_variable_asks_for_more(data, tmp_path):
    container = Container(data)
    try:  # one process, as `serve` by default: no arbiter, no worker forked
        assert serving_processes(container.process.pid) == []
        assert container.healthcheck() == 0
    finally:
        container.stop()
    more = tmp_path / "more"
    more.mkdir()
    container = Container(more, {ENV_PREFIX + "WORKERS": "2"})
    try:
        assert container.workers(2) == 2
    finally:
        container.stop()


def test_the_cmd_serves_https_with_the_ca_in_the_volume(data):
    container = Container(data, {ENV_PREFIX + "TLS": "true"})
    try:
        assert container.url.startswith("https://")
        assert (data / tls.CA_FILE).read_bytes() == requests.get(
            container.url + "/_emulator/ca.pem", verify=container.ca, timeout=10).content
        assert container.healthcheck() == 0
    finally:
        container.stop()


def test_compose_runs_the_emulator_beside_the_merchant_app():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    emulator, shop = compose["services"]["emulator"], compose["services"]["shop"]
    assert emulator["build"] == "."
    env = emulator["environment"]
    for name in ("PUBLIC_URL", "SCENARIO", "CALLBACK_HOSTS"):
        assert ENV_PREFIX + name in env, name
    assert Settings.from_env({k: str(v) for k, v in env.items()})  # names and values the emulator reads
    assert {ENV_PREFIX + k for k in (f.name.upper() for f in dataclasses.fields(Settings))} >= set(env)
    volume, mount = emulator["volumes"][0].split(":")[:2]
    assert mount == DATA and volume in compose["volumes"]
    assert shop["depends_on"]["emulator"]["condition"] == "service_healthy"
    # The shop reaches the gateway by the emulator's service name, over the scheme it serves,
    # and the emulator may call the shop back.
    shop_env = shop["environment"]
    api = urlparse(shop_env["PAYLETTER_API_URL"])
    assert api.hostname == "emulator" and api.scheme == ("https" if env.get(ENV_PREFIX + "TLS") else "http")
    assert urlparse(env[ENV_PREFIX + "PUBLIC_URL"]).hostname == "emulator"
    assert urlparse(shop_env["SHOP_PUBLIC_URL"]).hostname in env[ENV_PREFIX + "CALLBACK_HOSTS"].split(",")
    # Over HTTPS, the shop trusts the CA from the emulator's volume, mounted read-only.
    ca_mount = next(v.split(":") for v in shop["volumes"] if v.startswith(volume + ":"))
    assert ca_mount[2] == "ro" and shop_env["REQUESTS_CA_BUNDLE"] == f"{ca_mount[1]}/{tls.CA_FILE}"
    build = shop.get("build")
    if build:  # the example shop's own image
        assert (ROOT / (build if isinstance(build, str) else build["context"]) / "Dockerfile").exists()
    else:
        assert (ROOT / "examples" / "shop").is_dir() and any(v.startswith("./examples/shop:") for v in shop["volumes"])
