"""The benchmark: the emulator served as it ships, against a bare-Flask baseline under gunicorn
with 2 sync workers (the practical limit on 2 cores), driven by wrk in one run; prints every
figure, the ratios emulator / baseline and the issue's targets.

The shipped configurations, each started as users start it:
  serve          `payletter-emulator serve`, as the README's quick start (`make run`)
  serve --workers N
  docker         the Docker image's CMD with the Dockerfile's ENV (no Docker engine needed: the same
                 command, the same environment, /data a folder of the run)

    python benchmarks/run.py [--quick] [--json FILE] [--profile DIR]

Needs `wrk` (Debian's package) on the PATH; --profile needs py-spy (the `bench` extra).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from seed import Seeder, empty_outbox, request_body

PAYMENT_KEY = "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA="
SEARCH_KEY = "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
HOLD_SECONDS = 60  # seeded callbacks wait this long of emulator time before they are due
POLICY_SECONDS = 6000  # 20 retries x 5 minutes
CONFIGURATIONS = ("serve", "serve --workers", "docker")
MAIN = "serve"  # the configuration the other cases (approve, cancel, lists, callbacks) run on
TARGETS = {  # the issues' targets: (figure, comparison, bound); {c}: each shipped configuration
    "payments/request req/s, {c} / baseline": (">=", 0.60),
    "payments/request p99, {c} / baseline": ("<=", 2.0),
    "startup to the first healthy answer, {c}, s": ("<=", 0.6),
    "idle RSS of one process, MB": ("<=", 60.0),
    "payments/request p99, 100,000 stored / fresh store": ("<=", 1.25),
    "callback deliveries/s": (">=", 300.0),
}


@dataclass(frozen=True)
class Plan:
    """How big and how long: the full benchmark, or --quick (a smoke test, figures only)."""

    duration: int = 10  # seconds of load per measurement (wrk counts whole seconds)
    warmup: int = 2
    rounds: int = 2  # payments/request: baseline, fresh and 100,000-stored emulator, in turn
    startups: int = 3  # fresh starts timed; the median is reported
    day_payments: int = 10_000
    stored_payments: int = 100_000
    deliveries: int = 3_000
    policy_payments: int = 1_000
    settle: float = 5.0  # longest wait for every worker to finish loading before idle RSS


FULL = Plan()
QUICK = Plan(duration=1, warmup=1, rounds=1, startups=1, day_payments=300, stored_payments=2_000,
             deliveries=100, policy_payments=10, settle=3.0)


# --- processes ---
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def tree(pid: int) -> list[int]:
    """The process and all its descendants (a supervisor, its workers, their helpers)."""
    found = [pid]
    for child in children(pid):
        found += tree(child)
    return found


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        values = stat.rsplit(")", 1)[1].split()
        total += int(values[11]) + int(values[12])
    return total


def memory_kb(pid: int, name: str) -> int:
    """VmRSS (now) or VmHWM (peak) of one process, in kB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def call(port: int, method: str, path: str, body=None, timeout: float = 30.0) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, payload, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def stop_server(process: subprocess.Popen, log) -> None:
    """SIGTERM (a graceful stop), a kill after 20 s; then its log closed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()


class Server:
    """One server on a free loopback port; `startup` is the time from spawning to the first 200
    from the health route, `announced` the time until its log shows `announcement` (the line a
    server prints once it listens), when it has one."""

    announcement: bytes | None = None

    def __init__(self, command: list[str], workdir: Path, env: dict, name: str, processes: int):
        self.name = name
        self.processes = processes  # the processes that serve, once all are up
        self.log = open(workdir / f"{name.replace('/', '_').replace(' ', '_')}.log", "ab")
        self.log_start = self.log.tell()  # a log reused by a later start is read from here on
        self.announced: float | None = None
        started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env, cwd=workdir)
        self.startup = self._wait_healthy(started)

    def _wait_healthy(self, started: float, timeout: float = 60.0) -> float:
        healthy = None
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self._log_tail()}")
            if self.announcement and self.announced is None and self._announced():
                self.announced = time.perf_counter() - started
            if healthy is None:
                try:
                    if call(self.port, "GET", "/_emulator/health", timeout=2)[0] == 200:
                        healthy = time.perf_counter() - started
                except OSError:
                    pass
            if healthy is not None and (self.announced is not None or not self.announcement):
                return healthy
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} never became healthy and announced:\n{self._log_tail()}")

    def _announced(self) -> bool:
        with open(self.log.name, "rb") as log:
            log.seek(self.log_start)
            return self.announcement in log.read()

    def _log_tail(self, size: int = 3000) -> str:
        """The end of the server's log (the run's folder, and the log with it, is gone after)."""
        self.log.flush()
        return Path(self.log.name).read_bytes()[-size:].decode("utf-8", "replace")

    @property
    def pids(self) -> list[int]:
        """Every process of the server: the one started and its descendants."""
        return tree(self.process.pid)

    def settle(self, longest: float) -> None:
        """Until every process is up and their memory has stopped growing (loading is done)."""
        deadline = time.monotonic() + longest
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # a worker that failed to boot stops the server
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} after its first "
                                   f"answer:\n{self._log_tail()}")
            pids = self.serving_pids()
            now = [memory_kb(p, "VmRSS") for p in pids]
            if len(pids) == self.processes and last == now:
                return
            last = now
            time.sleep(0.3)

    def serving_pids(self) -> list[int]:
        """The processes that answer requests (a supervisor's children, or the one process)."""
        if self.processes == 1:
            return [self.process.pid]
        return [p for p in children(self.process.pid) if not _helper(p)]

    def memory(self, name: str = "VmRSS") -> dict:
        """Sum over every process of the server, and the largest single process, in MB."""
        sizes = [memory_kb(p, name) / 1024 for p in self.pids]
        return {"sum_mb": round(sum(sizes), 1), "largest_mb": round(max(sizes), 1), "processes": len(sizes)}

    def stop(self) -> None:
        stop_server(self.process, self.log)


def _helper(pid: int) -> bool:
    """multiprocessing's resource tracker, which a supervisor starting its workers brings along."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True


class Gunicorn(Server):
    """The baseline: an app under gunicorn, sync workers."""

    def __init__(self, app: str, workdir: Path, options: argparse.Namespace, name: str):
        self.port = free_port()
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(options.workers), "--worker-class", "sync", "--timeout", "900",
                   "--log-level", "warning", "--chdir", str(BENCH), app]
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        super().__init__(command, workdir, env, name, options.workers)

    def serving_pids(self) -> list[int]:
        return children(self.process.pid)


class Emulator(Server):
    """The emulator in one of the shipped configurations, started as users start it: the console
    script beside `python` (default: this one), with `source` first on the Python path (None: only
    what that interpreter has installed)."""

    announcement = b"payletter-emulator listening on "  # the first startup line (emulator/startup.py)

    def __init__(self, configuration: str, db: str, workdir: Path, options: argparse.Namespace, name: str,
                 env: dict | None = None, source: Path | None = ROOT, python: str = sys.executable):
        self.port = free_port()
        environ = {key: value for key, value in os.environ.items() if not key.startswith("PAYLETTER_EMULATOR_")}
        environ.pop("PYTHONPATH", None)
        if source is not None:
            environ["PYTHONPATH"] = str(source)  # the copy measured (an A/B run), else this repository
        command = [*emulator_command(python), "serve"]
        processes = min(len(os.sched_getaffinity(0)), 8)  # what `serve` picks (emulator/serving/bridge.py)
        if configuration == "docker":
            environ.update(docker_env())
            environ.update({"PAYLETTER_EMULATOR_PORT": str(self.port), "PAYLETTER_EMULATOR_DB": db})
        else:
            command += ["--port", str(self.port), "--db", db]
            if configuration == "serve --workers":
                command += ["--workers", str(options.workers)]
                processes = options.workers
        environ.update(env or {})
        environ["PAYLETTER_EMULATOR_FAKER_SEED"] = "7"
        if environ.get("PAYLETTER_EMULATOR_WORKERS"):
            processes = int(environ["PAYLETTER_EMULATOR_WORKERS"])
        self.configuration = configuration
        super().__init__(command, workdir, environ, name, processes)


def emulator_command(python: str = sys.executable) -> list[str]:
    """`payletter-emulator`, the installed command beside `python` (a virtualenv that is not
    activated), or (this Python's) on the PATH."""
    beside = Path(python).parent / "payletter-emulator"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("payletter-emulator") if python == sys.executable else None
    return [found] if found else [python, "-m", "payletter_emulator"]


def docker_env() -> dict:
    """The Dockerfile's ENV, as the image sets it (/data is the run's folder: the DB is set apart)."""
    import shlex

    text, env = (ROOT / "Dockerfile").read_text().replace("\\\n", " "), {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    return env


class Receiver:
    """benchmarks/receiver.py in its own process: answers every callback with `status`."""

    def __init__(self, status: int, workdir: Path):
        self.log = open(workdir / f"receiver-{status}.log", "ab")
        self.process = subprocess.Popen([sys.executable, str(BENCH / "receiver.py"), "--status", str(status)],
                                        stdout=subprocess.PIPE, stderr=self.log)
        line = self.process.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.port = int(line.split()[-1])
        self.url = f"http://127.0.0.1:{self.port}/callback"

    def count(self) -> int:
        return call(self.port, "GET", "/count")[1]["count"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


class FreshDatabase:
    """A database of one server's own (a variant's, a run's) on the PostgreSQL server of `url`
    (made now, dropped by `drop`), and that server's postmaster (the parent of a backend), when
    it runs on this machine: its processes' CPU time can be read."""

    _made = 0

    def __init__(self, url: str, user: str):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        FreshDatabase._made += 1
        self.server = url
        self.name = f"{conninfo_to_dict(url).get('dbname', 'postgres')}_bench{FreshDatabase._made}"
        self.url = urlsplit(url)._replace(path=f"/{self.name}").geturl()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            connection.execute(f'CREATE DATABASE "{self.name}"')
            stat = Path(f"/proc/{connection.info.backend_pid}/stat")  # read while the backend lives
            self.postmaster = int(stat.read_text().rsplit(")", 1)[1].split()[1]) if stat.exists() else 0
        print(f"{user}: PostgreSQL database {self.name}", file=sys.stderr)

    def pids(self) -> list[int]:
        """The server's processes: its postmaster and every child (none if it runs elsewhere)."""
        return tree(self.postmaster) if self.postmaster else []

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --- load ---
@dataclass
class Load:
    """One kind of request for wrk: fixed, or one item of `pool` per request."""

    method: str
    path: str
    body: str | None = None
    key: str | None = None
    pool: list | None = None


def wrk(server: Server, load: Load, seconds: int, options: argparse.Namespace, workdir: Path) -> dict:
    """Run wrk against the server; its figures and the server's CPU time over the run."""
    env = {**os.environ, "BENCH_METHOD": load.method, "BENCH_PATH": load.path,
           "BENCH_THREADS": str(options.threads_wrk)}
    if load.body is not None:
        env["BENCH_BODY"] = load.body
    if getattr(options, "new_connections", False):  # a new connection per request (ab.py's option)
        env["BENCH_CLOSE"] = "1"
    if load.key:
        env["BENCH_KEY"] = load.key
    if load.pool is not None:
        pool_file = workdir / "pool.txt"
        pool_file.write_text("".join(f"{item}\n" for item in load.pool))
        env["BENCH_POOL"] = str(pool_file)
    pids = server.pids
    before = cpu_ticks(pids)
    command = ["wrk", "-t", str(options.threads_wrk), "-c", str(options.connections), "-d", f"{seconds}s",
               "--timeout", "30s", "-s", str(BENCH / "request.lua"), f"http://127.0.0.1:{server.port}"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    ticks = cpu_ticks(pids) - before
    line = next((l for l in run.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{run.stdout}\n{run.stderr}")
    figures = json.loads(line.split(" ", 1)[1])
    figures["cpu_seconds"] = ticks / CLOCK_TICK
    return figures


def summarise(runs: list[dict]) -> dict:
    """Mean of the runs' req/s, p50, p99 and CPU per request; their spread in req/s."""
    rates = [r["requests"] / (r["duration_us"] / 1e6) for r in runs]
    return {
        "req_s": round(statistics.mean(rates), 1),
        "req_s_spread": [round(min(rates), 1), round(max(rates), 1)],
        "p50_ms": round(statistics.mean(r["p50_us"] for r in runs) / 1000, 2),
        "p99_ms": round(statistics.mean(r["p99_us"] for r in runs) / 1000, 2),
        "cpu_us_per_request": round(statistics.mean(r["cpu_seconds"] * 1e6 / max(1, r["requests"]) for r in runs), 1),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(sum(r["errors"].values()) for r in runs),
        "ran_out": any(r["ran_out"] for r in runs),
    }


def request_load(callback_url: str) -> Load:
    return Load("POST", "/v1.0/payments/request", json.dumps(request_body(callback_url)), PAYMENT_KEY)


# --- the benchmark ---
class Bench:
    def __init__(self, plan: Plan, options: argparse.Namespace, workdir: Path):
        self.plan = plan
        self.options = options
        self.workdir = workdir
        self.results: dict = {"cases": {}, "servers": {}, "callbacks": {}}
        self.servers: list[Server] = []
        self.profiles: dict[str, str] = {}

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def db(self, name: str) -> str:
        return str(self.workdir / f"{name}.db")

    def label(self, configuration: str) -> str:
        return f"serve --workers {self.options.workers}" if configuration == "serve --workers" else configuration

    def emulator(self, name: str, db: str, configuration: str = MAIN) -> Server:
        return self.start(Emulator(configuration, db, self.workdir, self.options, name))

    def baseline(self) -> Server:
        return self.start(Gunicorn("baseline:app", self.workdir, self.options, "baseline"))

    def start(self, server: Server) -> Server:
        self.servers.append(server)
        server.settle(self.plan.settle)
        self.results["servers"][server.name] = {"startup_s": round(server.startup, 3), "idle_rss": server.memory()}
        return server

    def stop(self, server: Server) -> None:
        self.results["servers"][server.name]["peak_rss"] = server.memory("VmHWM")
        server.stop()
        self.servers.remove(server)

    def measure(self, server: Server, load: Load, seconds: int | None = None) -> dict:
        seconds = seconds or self.plan.duration
        profile = self.options.profile and isinstance(server, Emulator)
        spy = self._spy(server, seconds) if profile else None
        figures = wrk(server, load, seconds, self.options, self.workdir)
        if spy:
            spy.wait()
        return figures

    def _spy(self, server: Server, seconds: int):
        out = Path(self.options.profile) / f"{server.name.replace('/', '_').replace(' ', '_')}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.profiles[server.name] = str(out)
        return subprocess.Popen([py_spy(), "record", "--pid", str(server.process.pid), "--subprocesses",
                                 "--format", "raw", "--rate", "250", "--nonblocking",
                                 "--duration", str(max(1, seconds - 1)), "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def warm(self, server: Server, load: Load) -> None:
        wrk(server, load, self.plan.warmup, self.options, self.workdir)

    # --- cases ---
    def startup(self) -> None:
        """Fresh starts on an empty database: the median time to the first healthy answer."""
        for name in ("baseline", *map(self.label, CONFIGURATIONS)):
            times = []
            for trial in range(self.plan.startups):
                db = self.db(f"startup-{name.replace(' ', '_')}-{trial}")
                if name == "baseline":
                    server = Gunicorn("baseline:app", self.workdir, self.options, "baseline-startup")
                else:
                    configuration = next(c for c in CONFIGURATIONS if self.label(c) == name)
                    server = Emulator(configuration, db, self.workdir, self.options, f"{name}-startup")
                times.append(server.startup)
                server.settle(self.plan.settle)
                idle = server.memory()
                server.stop()
            self.results["servers"][f"{name} (fresh starts)"] = {
                "startup_s": round(statistics.median(times), 3), "startup_trials_s": [round(t, 3) for t in times],
                "idle_rss": idle}
            self.log(f"startup {name}: {', '.join(f'{t:.3f}' for t in times)} s")

    def payments_request(self, receiver: Receiver) -> None:
        """Baseline, fresh emulator and emulator with a big store, measured in turn, `rounds` times."""
        stored = self.db("stored")
        self.log(f"seeding {self.plan.stored_payments:,} paid payments")
        with Seeder(stored) as seed:
            seed.approved(self.plan.stored_payments, receiver.url, step_seconds=86400 * 100 / self.plan.stored_payments)
        empty_outbox(stored)
        load = request_load(receiver.url)
        servers = {"baseline": self.baseline()}
        for configuration in CONFIGURATIONS:
            name = self.label(configuration)
            servers[name] = self.emulator(name, self.db(f"fresh-{name.replace(' ', '_')}"), configuration)
        servers["stored"] = self.emulator(f"{MAIN}, stored", stored)
        runs = {name: [] for name in servers}
        for server in servers.values():
            self.warm(server, load)
        for round_ in range(self.plan.rounds):
            for name, server in servers.items():
                runs[name].append(self.measure(server, load))
                self.log(f"payments/request round {round_ + 1} {name}: {runs[name][-1]['requests']} requests")
        cases = self.results["cases"]
        cases["baseline: payments/request"] = summarise(runs["baseline"])
        for configuration in CONFIGURATIONS:
            name = self.label(configuration)
            cases[f"payments/request: {name}"] = summarise(runs[name])
        cases[f"payments/request: {MAIN}, {self.plan.stored_payments:,} stored"] = summarise(runs["stored"])
        for server in servers.values():
            self.stop(server)

    def pool_size(self) -> int:
        """Enough payments for a pool case at three times the emulator's payments/request rate."""
        rate = self.results["cases"][f"payments/request: {MAIN}"]["req_s"]
        return int(rate * 3 * (self.plan.duration + self.plan.warmup)) + 200

    def approve(self, receiver: Receiver) -> None:
        """The payer approves (control API); the callback goes to the receiver. CPU counts until
        every callback is delivered."""
        db = self.db("approve")
        count = self.pool_size()
        with Seeder(db) as seed:
            tokens = seed.pending(count, receiver.url)
        server = self.emulator(f"{MAIN} approve", db)
        warm = max(20, int(count * self.plan.warmup / (self.plan.duration + self.plan.warmup)))
        self.warm(server, Load("POST", "/_emulator/payments/{item}/approve", "{}", pool=tokens[:warm]))
        call(server.port, "POST", "/_emulator/callbacks/flush", {"max_seconds": 600}, timeout=700)
        delivered_before = receiver.count()
        ticks = cpu_ticks(server.pids)
        figures = self.measure(server, Load("POST", "/_emulator/payments/{item}/approve", "{}", pool=tokens[warm:]))
        ended = time.perf_counter()
        status, flushed = call(server.port, "POST", "/_emulator/callbacks/flush", {"max_seconds": 600}, timeout=700)
        drain = time.perf_counter() - ended
        figures["cpu_seconds"] = (cpu_ticks(server.pids) - ticks) / CLOCK_TICK
        case = summarise([figures])
        approved = figures["requests"]
        case.update(callbacks_delivered=receiver.count() - delivered_before, approvals=approved,
                    delivery_drain_s=round(drain, 3), flush_idle=status == 200 and flushed["idle"])
        self.results["cases"]["approve + callback"] = case
        self.stop(server)

    def cancel(self, receiver: Receiver) -> None:
        db = self.db("cancel")
        count = self.pool_size()
        with Seeder(db) as seed:
            tids = seed.approved(count, receiver.url, step_seconds=0.01)
        empty_outbox(db)
        server = self.emulator(f"{MAIN} cancel", db)
        body = json.dumps({"pgcode": "creditcard", "client_id": "pay_test", "user_id": "test_user_id",
                           "tid": "{item}", "amount": 1000, "ip_addr": "127.0.0.1"})
        warm = max(20, int(count * self.plan.warmup / (self.plan.duration + self.plan.warmup)))
        self.warm(server, Load("POST", "/v1.0/payments/cancel", body, PAYMENT_KEY, pool=tids[:warm]))
        figures = self.measure(server, Load("POST", "/v1.0/payments/cancel", body, PAYMENT_KEY, pool=tids[warm:]))
        self.results["cases"]["cancel"] = summarise([figures])
        self.stop(server)

    def transaction_list(self, receiver: Receiver) -> None:
        db = self.db("day")
        with Seeder(db) as seed:
            seed.approved(self.plan.day_payments, receiver.url, first=seed_day(), step_seconds=1.0)
        empty_outbox(db)
        server = self.emulator(f"{MAIN} list", db)
        path = f"/v1.0/payments/transaction/list?client_id=pay_test&date={SEED_DAY}&date_type=transaction"
        load = Load("GET", path, key=SEARCH_KEY)
        self.warm(server, load)
        figures = self.measure(server, load)
        case = summarise([figures])
        case["rows_per_answer"] = self.plan.day_payments
        self.results["cases"][f"transaction/list, {self.plan.day_payments:,} on the day"] = case
        self.stop(server)

    def _flush_after_jump(self, db_name: str, server_name: str, receiver: Receiver, count: int,
                          *moves: dict) -> tuple[Server, dict]:
        """`count` approved payments whose callbacks wait HOLD_SECONDS, a server on them, the
        clock moved by `moves`, then one flush: the server (still running) and what it took."""
        db = self.db(db_name)
        with Seeder(db) as seed:
            seed.approved(count, receiver.url, step_seconds=0)
            seed.hold_clock_before_due(HOLD_SECONDS)
        server = self.emulator(server_name, db)
        before, ticks = receiver.count(), cpu_ticks(server.pids)
        started = time.perf_counter()
        for move in moves:
            call(server.port, "POST", "/_emulator/clock", move)
        status, flushed = call(server.port, "POST", "/_emulator/callbacks/flush", {"max_seconds": 600}, timeout=700)
        return server, {"seconds": time.perf_counter() - started, "received": receiver.count() - before,
                        "cpu_seconds": (cpu_ticks(server.pids) - ticks) / CLOCK_TICK,
                        "idle": status == 200 and flushed["idle"]}

    def callback_throughput(self, receiver: Receiver) -> None:
        """Callbacks queued and held; one clock move makes them all due; flush sends them."""
        count = self.plan.deliveries
        server, took = self._flush_after_jump("deliveries", f"{MAIN} callbacks", receiver, count,
                                              {"advance_seconds": HOLD_SECONDS})
        delivered, elapsed = took["received"], took["seconds"]
        self.results["callbacks"]["deliveries"] = {
            "callbacks": count, "delivered": delivered, "seconds": round(elapsed, 3),
            "deliveries_s": round(delivered / elapsed, 1), "idle": took["idle"],
            "cpu_us_per_delivery": round(took["cpu_seconds"] * 1e6 / max(1, delivered), 1)}
        self.stop(server)

    def retry_policy(self, failing: Receiver) -> None:
        """Every attempt of the policy (1 + 20 retries) for each payment, after one clock jump,
        to a merchant answering 500."""
        count = self.plan.policy_payments
        server, took = self._flush_after_jump("policy", f"{MAIN} policy", failing, count, {"freeze": True},
                                              {"advance_seconds": POLICY_SECONDS + HOLD_SECONDS})
        listed, after = [], ""
        while after is not None:  # a page at a time: the control API answers 1,000 at most
            page = call(server.port, "GET", f"/_emulator/callbacks?limit=1000{after}", timeout=120)[1]
            listed += page["callbacks"]
            after = f"&after={page['next']}" if page["next"] else None
        attempts = sum(len(c["attempts"]) for c in listed)
        self.results["callbacks"]["retry policy"] = {
            "payments": count, "attempts": attempts, "attempts_expected": count * 21, "received": took["received"],
            "all_failed": all(c["status"] == "failed" for c in listed), "seconds": round(took["seconds"], 3),
            "attempts_s": round(attempts / took["seconds"], 1),
            "cpu_us_per_attempt": round(took["cpu_seconds"] * 1e6 / max(1, attempts), 1), "idle": took["idle"]}
        self.stop(server)

    def run(self) -> dict:
        self.results["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
        ok_receiver = Receiver(200, self.workdir)
        failing = Receiver(500, self.workdir)
        try:
            self.startup()
            self.log("payments/request")
            self.payments_request(ok_receiver)
            self.log("approve + callback")
            self.approve(ok_receiver)
            self.log("cancel")
            self.cancel(ok_receiver)
            self.log("transaction/list")
            self.transaction_list(ok_receiver)
            self.log("callback deliveries")
            self.callback_throughput(ok_receiver)
            self.log("retry policy")
            self.retry_policy(failing)
        finally:
            for server in list(self.servers):
                server.stop()
            ok_receiver.stop()
            failing.stop()
        self.results["configurations"] = [self.label(c) for c in CONFIGURATIONS]
        self.results["ratios"] = ratios(self.results, self.plan)
        self.results["targets"] = targets(self.results, self.plan)
        self.results["profiles"] = {name: top_entries(path) for name, path in self.profiles.items()}
        return self.results


SEED_DAY = "20260305"


def seed_day() -> datetime:
    from payletter_emulator.domain.clock import KST
    return datetime(2026, 3, 5, 9, 0, tzinfo=KST)


# --- reading the figures ---
def ratios(results: dict, plan: Plan) -> dict:
    """Each emulator case against the baseline's payments/request."""
    base = results["cases"]["baseline: payments/request"]
    out = {}
    for name, case in results["cases"].items():
        if name.startswith("baseline"):
            continue
        out[name] = {"req_s": round(case["req_s"] / base["req_s"], 3),
                     "p50": round(case["p50_ms"] / base["p50_ms"], 3),
                     "p99": round(case["p99_ms"] / base["p99_ms"], 3),
                     "cpu_per_request": round(case["cpu_us_per_request"] / base["cpu_us_per_request"], 3)}
    servers = results["servers"]
    out["startup"] = round(servers[f"{MAIN} (fresh starts)"]["startup_s"] / servers["baseline (fresh starts)"]["startup_s"], 3)
    out["idle RSS, sum"] = round(servers[MAIN]["idle_rss"]["sum_mb"] / servers["baseline"]["idle_rss"]["sum_mb"], 3)
    out["peak RSS, sum"] = round(servers[MAIN]["peak_rss"]["sum_mb"] / servers["baseline"]["peak_rss"]["sum_mb"], 3)
    return out


def targets(results: dict, plan: Plan) -> dict:
    cases, servers, ratio = results["cases"], results["servers"], results["ratios"]
    fresh, stored = cases[f"payments/request: {MAIN}"], cases[f"payments/request: {MAIN}, {plan.stored_payments:,} stored"]
    values = {
        "idle RSS of one process, MB": max(servers[c]["idle_rss"]["largest_mb"] for c in results["configurations"]),
        "payments/request p99, 100,000 stored / fresh store": round(stored["p99_ms"] / fresh["p99_ms"], 3),
        "callback deliveries/s": results["callbacks"]["deliveries"]["deliveries_s"],
    }
    for c in results["configurations"]:
        values[f"payments/request req/s, {c} / baseline"] = ratio[f"payments/request: {c}"]["req_s"]
        values[f"payments/request p99, {c} / baseline"] = ratio[f"payments/request: {c}"]["p99"]
        values[f"startup to the first healthy answer, {c}, s"] = servers[f"{c} (fresh starts)"]["startup_s"]
    out = {}
    for template, (comparison, bound) in TARGETS.items():
        for name in dict.fromkeys(template.format(c=c) for c in results["configurations"]):
            value = values[name]
            met = value >= bound if comparison == ">=" else value <= bound
            out[name] = {"value": value, "target": f"{comparison} {bound:g}", "met": met}
    return out


def top_entries(path: str, count: int = 20) -> dict:
    """py-spy's raw (collapsed) stacks of the app's work (under Flask.__call__; gunicorn's own
    socket work is left out): the functions most often on the stack (inclusive) and at its top
    (self), as shares of those samples. Wall-clock samples: waits on SQLite's locks and disk
    count, and so does time spent waiting for a core on a busy machine."""
    inclusive, own, total = {}, {}, 0
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        start = next((i for i, f in enumerate(frames) if f.startswith("Flask.__call__ ")), None)
        if start is None:
            continue
        frames, n = frames[start:], int(samples)
        total += n
        for name in {f.split(" (")[0] for f in frames}:
            inclusive[name] = inclusive.get(name, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n

    def top(table):
        best = sorted(table.items(), key=lambda kv: -kv[1])[:count]
        return [[round(100 * n / max(1, total), 1), frame] for frame, n in best]

    return {"samples": total, "inclusive_pct": top(inclusive), "self_pct": top(own)}


def render(results: dict, plan: Plan) -> str:
    lines = []
    cases, servers, ratio = results["cases"], results["servers"], results["ratios"]
    lines.append(f"{'case':<44} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10}"
                 f"   {'÷ baseline: req/s':>17} {'p99':>5} {'CPU':>5}")
    for name, case in cases.items():
        r = ratio.get(name)
        tail = f"   {r['req_s']:>17.2f} {r['p99']:>5.2f} {r['cpu_per_request']:>5.2f}" if r else ""
        flag = f"  (errors: {case['errors']})" if case["errors"] else ""
        flag += "  (pool ran out)" if case["ran_out"] else ""
        lines.append(f"{name:<44} {case['req_s']:>8.0f} {case['p50_ms']:>7.2f} {case['p99_ms']:>7.2f} "
                     f"{case['cpu_us_per_request']:>10.0f}{tail}{flag}")
    approve = cases.get("approve + callback", {})
    if approve:
        lines.append(f"  approve: {approve['callbacks_delivered']} of {approve['approvals']} callbacks delivered, "
                     f"the last {approve['delivery_drain_s']:.2f} s after the load ended")
    lines.append("")
    lines.append(f"{'server':<32} {'startup s':>9} {'idle RSS MB (sum/largest)':>26} {'peak RSS MB (sum/largest)':>26}")
    for name, server in servers.items():
        idle, peak = server["idle_rss"], server.get("peak_rss")
        peak_text = f"{peak['sum_mb']:.1f} / {peak['largest_mb']:.1f}" if peak else "-"
        lines.append(f"{name:<32} {server['startup_s']:>9.3f} {idle['sum_mb']:>14.1f} / {idle['largest_mb']:<9.1f}"
                     f" {peak_text:>26}")
    lines.append(f"  ratios emulator ÷ baseline: startup {ratio['startup']:.2f}, idle RSS {ratio['idle RSS, sum']:.2f}, "
                 f"peak RSS {ratio['peak RSS, sum']:.2f}")
    lines.append("")
    d, p = results["callbacks"]["deliveries"], results["callbacks"]["retry policy"]
    lines.append(f"callback deliveries: {d['delivered']} of {d['callbacks']} in {d['seconds']:.2f} s = "
                 f"{d['deliveries_s']:.0f}/s, {d['cpu_us_per_delivery']:.0f} us CPU each")
    lines.append(f"retry policy (21 attempts, merchant answers 500): {p['attempts']} of {p['attempts_expected']} attempts "
                 f"for {p['payments']} payments in {p['seconds']:.2f} s = {p['attempts_s']:.0f} attempts/s, "
                 f"{p['cpu_us_per_attempt']:.0f} us CPU each; all failed: {p['all_failed']}")
    lines.append("")
    lines.append("targets:")
    for name, t in results["targets"].items():
        lines.append(f"  {'met   ' if t['met'] else 'MISSED'} {name}: {t['value']:g} (target {t['target']})")
    for name, profile in results.get("profiles", {}).items():
        if not profile:
            continue
        lines.append("")
        lines.append(f"profile of {name} ({profile['samples']} samples in the app): inclusive %")
        lines += [f"  {pct:5.1f}  {frame}" for pct, frame in profile["inclusive_pct"]]
        lines.append("  self %")
        lines += [f"  {pct:5.1f}  {frame}" for pct, frame in profile["self_pct"]]
    return "\n".join(lines)


def py_spy() -> str | None:
    """py-spy on the PATH, or beside this Python (a virtualenv that is not activated)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "system": platform.platform()}


def commit(root: Path = ROOT) -> str:
    """The short commit of the checkout at `root`, and whether its emulator/ differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "emulator"],
                               cwd=root, capture_output=True, text=True, check=False).stdout.strip()
        return head + (" (emulator/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the emulator against a bare-Flask baseline.")
    parser.add_argument("--quick", action="store_true", help="short runs, small stores: a smoke test")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--profile", metavar="DIR", help="record the emulator's workers with py-spy into DIR")
    parser.add_argument("--workers", type=int, default=2,
                        help="the baseline's gunicorn sync workers, and N of `serve --workers N`")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads-wrk", type=int, default=1, help="wrk threads")
    parser.add_argument("--duration", type=int, help="seconds of load per measurement")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    if options.profile and py_spy() is None:
        parser.error("--profile needs py-spy (pip install '.[bench]')")
    plan = QUICK if options.quick else FULL
    if options.duration:
        plan = Plan(**{**plan.__dict__, "duration": options.duration})
    with tempfile.TemporaryDirectory(prefix="payletter-bench-") as workdir:
        results = Bench(plan, options, Path(workdir)).run()
    results["meta"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
                       "machine": machine(), "plan": plan.__dict__,
                       "baseline": {"server": "gunicorn", "workers": options.workers, "worker_class": "sync"},
                       "configurations": results["configurations"],
                       "wrk": {"threads": options.threads_wrk, "connections": options.connections}}
    print(render(results, plan))
    if options.profile:
        print("\n(--profile: py-spy sampled the emulator's workers during its measured runs, which slows them)")
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
