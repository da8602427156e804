"""A/B runs of `payments/request`: variants of the emulator (copies of the repository, each with
one change) measured in turn against the same bare-Flask baseline in one run, in interleaved
rounds, so that the machine's load falls on all of them alike. Prints each variant's req/s, p99
and CPU per request, and its ratios to the baseline.

    python benchmarks/ab.py --rounds 4 --duration 5 \\
        --variant "as is=." --variant "no flock=/tmp/copy-no-flock" --variant "gthread=/tmp/main:--workers=2"

A variant is NAME=SOURCE[:ARG,ARG...]: `payletter-emulator serve` run with SOURCE first on the
Python path (a copy of the repository, its `emulator/` folder seen under the installed name
`payletter_emulator`) and the arguments given (`--workers=2`). SOURCE `gunicorn`
runs this repository's `payletter_emulator.serving.wsgi:app` under gunicorn with sync workers instead (what the
benchmark measured before it measured what ships). The configuration is `serve`'s unless the
arguments say otherwise.

`--db=postgresql://USER@HOST:PORT/NAME` among a variant's arguments runs it on PostgreSQL: a
database of its own is made on that server for the run (NAME_ab1, ...; dropped after), and the
CPU time of the server's processes (a server on this machine) is measured too, per request.
Without it a variant runs on a fresh SQLite file. `--against NAME` also prints each variant's
ratios to that variant (PostgreSQL against SQLite, say). wrk keeps its connections alive;
`--new-connections` makes it open a new one per request (`Connection: close`), as a client
without a session does:

    python benchmarks/ab.py --against sqlite --variant "sqlite=.:--workers=2" \
        --variant "postgresql=.:--workers=2,--db=postgresql://postgres@127.0.0.1:5432/postgres"
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (benchmarks/run.py)
from seed import Seeder  # noqa: E402


class Variant(run.Server):
    def __init__(self, name: str, spec: str, workdir: Path, options: argparse.Namespace):
        source, _, arguments = spec.partition(":")
        self.port = run.free_port()
        server = next((a.split("=", 1)[1] for a in arguments.split(",") if a.startswith("--db=")), None)
        arguments = ",".join(a for a in arguments.split(",") if a and not a.startswith("--db="))
        self.postgres = None if server is None else run.FreshDatabase(server, name)
        if self.postgres is not None:
            db = self.postgres.url  # serve makes its tables there at start
        else:
            db = str(workdir / f"{abs(hash(name))}.db")
            Seeder(db).__exit__()  # the schema made before the processes start, as the benchmark's stores
        env = {key: value for key, value in os.environ.items() if not key.startswith("PAYLETTER_EMULATOR_")}
        env.update({"PAYLETTER_EMULATOR_FAKER_SEED": "7", "PAYLETTER_EMULATOR_DB": db})
        if source == "gunicorn":
            command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers",
                       str(options.workers), "--worker-class", "sync", "--timeout", "900", "--log-level", "warning",
                       "payletter_emulator.serving.wsgi:app"]
            processes = options.workers
        else:
            extra = [a.replace("=", " ", 1).split(" ") for a in arguments.split(",") if a]
            command = [*run.emulator_command(), "serve", "--port", str(self.port), "--db", db,
                       *[part for pair in extra for part in pair]]
            env["PYTHONPATH"] = str(_as_installed(Path(source).resolve(), workdir / f"path-{abs(hash(name))}"))
            workers = dict(pair for pair in extra if len(pair) == 2).get("--workers")
            processes = int(workers) if workers else min(len(os.sched_getaffinity(0)), 8)
        super().__init__(command, workdir, env, name, processes)

    def serving_pids(self) -> list[int]:
        pids = super().serving_pids()
        return pids if pids or self.processes > 1 else [self.process.pid]

    def database_pids(self) -> list[int]:
        """The PostgreSQL server's processes (its postmaster and every child), or none."""
        return [] if self.postgres is None else self.postgres.pids()

    def stop(self) -> None:
        super().stop()
        if self.postgres is not None:
            self.postgres.drop()


def _as_installed(source: Path, folder: Path) -> Path:
    """A folder to put first on the Python path where `payletter_emulator` is the copy's `emulator/`
    (the path comes before the editable install's finder)."""
    folder.mkdir()
    (folder / "payletter_emulator").symlink_to(source / "emulator", target_is_directory=True)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A/B runs of payments/request against one baseline.")
    parser.add_argument("--variant", action="append", required=True, help="NAME=SOURCE[:ARG,ARG...]")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="the baseline's gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads-wrk", type=int, default=1)
    parser.add_argument("--new-connections", action="store_true",
                        help="a new connection per request (`Connection: close`) instead of keep-alive")
    parser.add_argument("--against", help="also print each variant's ratios to this variant's figures")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="payletter-ab-") as folder:
        workdir = Path(folder)
        receiver = run.Receiver(200, workdir)
        servers = {}
        try:
            servers["baseline"] = run.Gunicorn("baseline:app", workdir, options, "baseline")
            for item in options.variant:
                name, _, spec = item.partition("=")
                servers[name] = Variant(name, spec, workdir, options)
            for server in servers.values():
                server.settle(10)
            load = run.request_load(receiver.url)
            for server in servers.values():
                run.wrk(server, load, 2, options, workdir)
            runs = {name: [] for name in servers}
            for round_ in range(options.rounds):
                for name, server in servers.items():
                    database = server.database_pids() if isinstance(server, Variant) else []
                    before = run.cpu_ticks(database)
                    figures = run.wrk(server, load, options.duration, options, workdir)
                    figures["database_cpu_seconds"] = (run.cpu_ticks(database) - before) / run.CLOCK_TICK
                    runs[name].append(figures)
                print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} done", file=sys.stderr, flush=True)
        finally:
            for server in servers.values():
                server.stop()
            receiver.stop()
    summary = {name: run.summarise(figures) for name, figures in runs.items()}
    for name, figures in runs.items():
        summary[name]["database_cpu_us_per_request"] = round(statistics.mean(
            r["database_cpu_seconds"] * 1e6 / max(1, r["requests"]) for r in figures), 1)
    base = summary["baseline"]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; commit {run.commit()}; client: wrk, "
          + ("a new connection per request" if options.new_connections else "keep-alive"))
    against = summary.get(options.against) if options.against else None
    print(f"{'variant':<32} {'req/s':>7} {'p99 ms':>7} {'CPU us/req':>10} {'db CPU us/req':>13}"
          f" {'÷ baseline: req/s':>18} {'p99':>6}" + (f" {'÷ ' + options.against + ': req/s':>18} {'p99':>6}"
                                                      if against else "") + f" {'rounds (req/s)':>24}")
    for name, case in summary.items():
        rates = [round(r["requests"] / (r["duration_us"] / 1e6)) for r in runs[name]]
        ratios = (f" {case['req_s'] / against['req_s']:>18.3f} {case['p99_ms'] / against['p99_ms']:>6.2f}"
                  if against else "")
        print(f"{name:<32} {case['req_s']:>7.0f} {case['p99_ms']:>7.2f} {case['cpu_us_per_request']:>10.0f} "
              f"{case['database_cpu_us_per_request']:>13.0f} "
              f"{case['req_s'] / base['req_s']:>18.3f} {case['p99_ms'] / base['p99_ms']:>6.2f}{ratios}   {rates}"
              + (f"  (errors: {case['errors']})" if case["errors"] else ""))
    if options.json:
        Path(options.json).write_text(json.dumps({"summary": summary, "load_before": load_before,
                                                  "variants": options.variant, "commit": run.commit(),
                                                  "new_connections": options.new_connections}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
