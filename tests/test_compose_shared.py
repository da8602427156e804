"""compose.shared.yaml, played without a Docker engine: PostgreSQL, two emulator hosts and one
address in front of them. The file is read as compose reads it; its services run here as
processes: PostgreSQL is the suite's, each host is the image's CMD with the image's environment
and the service's (tests/test_docker.py's Container), and the proxy (Caddy, deploy/Caddyfile) is a
round-robin TCP proxy of the test's, forwarding to the hosts the Caddyfile names, in its order."""
from __future__ import annotations

import dataclasses
import itertools
import re
import socket
import subprocess
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import requests
import yaml

from payletter_emulator.config import ENV_PREFIX, Settings

from .conftest import PAYMENT_KEY
from .test_docker import BIN, Container, image_env

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.shared.yaml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def emulator_hosts(services: dict) -> dict[str, dict]:
    """The services built from the repository's Dockerfile: the emulator's hosts."""
    return {name: service for name, service in services.items() if service.get("build") == "."}


def caddyfile(proxy: dict) -> str:
    """The proxy's configuration: the file of the repository the service mounts."""
    [mount] = [volume for volume in proxy["volumes"] if volume.split(":")[1] == "/etc/caddy/Caddyfile"]
    return (ROOT / mount.split(":")[0]).read_text()


def upstreams(config: str) -> list[str]:
    return re.search(r"^\s*reverse_proxy\s+([^{\n]+?)\s*\{", config, re.MULTILINE).group(1).split()


def option(config: str, name: str) -> str:
    return re.search(rf"^\s*{name}\s+(\S+)\s*$", config, re.MULTILINE).group(1)


def test_the_shared_compose_file_puts_two_hosts_on_one_database_behind_one_address():
    services = compose()["services"]
    hosts = emulator_hosts(services)
    assert len(hosts) == 2
    first, second = hosts.values()
    assert first == second  # every host is given the same: database, address, token, health check
    env = {key: str(value) for key, value in first["environment"].items()}
    names = {ENV_PREFIX + field.name.upper() for field in dataclasses.fields(Settings)}
    assert set(env) <= names and Settings.from_env(env)  # names and values the emulator reads
    assert env[ENV_PREFIX + "CONTROL_TOKEN"]

    # The database: PostgreSQL, a service of the file, with the user, password and name of the URL.
    db = urlparse(env[ENV_PREFIX + "DB"])
    postgres = services[db.hostname]
    assert db.scheme == "postgresql" and postgres["image"].startswith("postgres:")
    assert (postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_PASSWORD"],
            postgres["environment"]["POSTGRES_DB"]) == (db.username, db.password, db.path.lstrip("/"))
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert first["depends_on"] == {db.hostname: {"condition": "service_healthy"}}
    # Each host is ready when its health route answers (the image's own check, said in the file).
    assert first["healthcheck"]["test"] == ["CMD", "payletter-emulator", "health", "--insecure", "--timeout", "2"]

    # One address: the proxy, which sends to both hosts (on the image's port) among those whose health
    # route answers; it is the public address the hosts give payers, and the port it publishes.
    [proxy] = [service for name, service in services.items() if name not in hosts and name != db.hostname]
    config = caddyfile(proxy)
    port = image_env()[ENV_PREFIX + "PORT"]
    assert upstreams(config) == [f"{name}:{port}" for name in hosts]
    assert option(config, "health_uri") == "/_emulator/health"
    assert option(config, "lb_policy") == "round_robin"
    public = urlparse(env[ENV_PREFIX + "PUBLIC_URL"])
    assert re.search(rf"^:{public.port}\s*\{{", config, re.MULTILINE)
    assert proxy["ports"] == [f"{public.port}:{public.port}"]
    assert proxy["depends_on"] == {name: {"condition": "service_healthy"} for name in hosts}


class RoundRobin:
    """The proxy's stand-in: each connection it accepts goes to the next upstream port in turn."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstreams: list[int] = []
        self.served: Counter = Counter()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for turn in itertools.count():
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            port = self.upstreams[turn % len(self.upstreams)]
            self.served[port] += 1
            upstream = socket.create_connection(("127.0.0.1", port))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:  # the other side went first
        pass


def test_a_payment_through_the_shared_address_is_visible_on_both_hosts(tmp_path, postgres_server):
    services = compose()["services"]
    hosts = emulator_hosts(services)
    proxy = RoundRobin()
    address = f"http://127.0.0.1:{proxy.port}"
    database = postgres_server.new_database()
    started = []
    try:
        for name, service in hosts.items():
            data = tmp_path / name
            data.mkdir()
            env = {key: str(value) for key, value in service["environment"].items()}
            # The names compose's network gives, as this machine has them: the suite's PostgreSQL, the
            # stand-in's address.
            env.update({ENV_PREFIX + "DB": database, ENV_PREFIX + "PUBLIC_URL": address})
            started.append(Container(data, env))
        by_name = dict(zip(hosts, started))
        proxy.upstreams = [by_name[upstream.split(":")[0]].port for upstream in upstreams(caddyfile(services["proxy"]))]
        for container, service in zip(started, hosts.values()):
            check = service["healthcheck"]["test"][1:]
            assert subprocess.run([str(BIN / check[0]), *check[1:]], env=container.env, cwd=container.workdir,
                                  capture_output=True, timeout=30).returncode == 0

        token = hosts[next(iter(hosts))]["environment"][ENV_PREFIX + "CONTROL_TOKEN"]
        control = {"X-Emulator-Token": token, "Connection": "close"}  # a connection each: the proxy takes turns
        body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "order_no": "shared-1",
                "amount": 1000, "product_name": "a mug", "return_url": "https://shop.example/return",
                "callback_url": "https://shop.example/callback"}
        requested = requests.post(address + "/v1.0/payments/request", json=body, timeout=30,
                                  headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "Connection": "close"})
        assert requested.status_code == 200, requested.text
        assert requested.json()["online_url"].startswith(address + "/")  # the payer lands on the shared address
        paid = requests.post(f"{address}/_emulator/payments/{requested.json()['token']}/approve", json={},
                             headers=control, timeout=30)
        assert paid.status_code == 200, paid.text
        assert sorted(proxy.served.values()) == [1, 1]  # one request on each host
        for container in started:
            seen = requests.get(f"{container.url}/_emulator/payments/{paid.json()['fields']['tid']}",
                                headers=control, timeout=30)
            assert seen.status_code == 200 and seen.json()["status"] == "approved", seen.text
    finally:
        for container in started:
            container.stop()
        proxy.close()
