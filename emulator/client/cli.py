"""The `payletter-emulator` command."""
from __future__ import annotations

import os
import sys

import click

from . import drive
from ..config import ENV_PREFIX, Settings


@click.group()
@click.version_option(package_name="payletter-emulator")
def main():
    """A local, stateful sandbox of the Payletter payment gateway."""


@main.command()
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on; 0 picks a free one [default: 8080].")
@click.option("--db", help="SQLite file, or :memory: for a throwaway run [default: payletter-emulator.db].")
@click.option("--fresh", is_flag=True, default=False, envvar="PAYLETTER_EMULATOR_FRESH",
              help="Start with an empty database: delete what the SQLite file (and its sandboxes) held.")
@click.option("--public-url", help="Base of every URL handed out (online_url, receipt_url) [default: the request's host].")
@click.option("--strict/--lenient", default=None, help="Reject what the real gateway tolerates [default: lenient].")
@click.option("--callback-timeout", type=click.FloatRange(min=0.1), help="Seconds a callback attempt may take [default: 5].")
@click.option("--callback-interval", type=click.FloatRange(min=0),
              help="Seconds of emulator time between callback attempts [default: 300].")
@click.option("--callback-retries", type=click.IntRange(min=0), help="Retries after the first attempt [default: 20].")
@click.option("--callback-concurrency", type=click.IntRange(min=1),
              help="Callback attempts in flight at once, per process [default: 8].")
@click.option("--callback-host", "callback_hosts", multiple=True,
              help="Allow callbacks only to this host (`*.example` matches subdomains); repeatable [default: any].")
@click.option("--scenario", multiple=True,
              help="Scenario file, or the name of one in scenarios/; repeatable, merged in order.")
@click.option("--seed", "faker_seed", type=int, help="Seed for generated data (card numbers, banks, ...).")
@click.option("--control/--no-control", default=None,
              help="Serve the control API /_emulator/... (health always answers) [default: on].")
@click.option("--control-token", help="Require `X-Emulator-Token: <token>` on the control API.")
@click.option("--journal-limit", type=click.IntRange(min=100), help="API requests kept in the journal [default: 10000].")
@click.option("--callback-limit", type=click.IntRange(min=100),
              help="Finished notifications kept with their attempts; pending ones always stay [default: 10000].")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes serving, sharing the database "
                   "[default: one per core, at most 8; one for :memory: and where processes cannot fork (Windows)].")
@click.option("--tls/--no-tls", default=None,
              help="Serve HTTPS (TLS 1.2 or newer) with a certificate for this host, signed by a CA kept "
                   "beside the database [default: HTTP].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this certificate (PEM, chain first) instead; implies --tls.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="The private key of --tls-cert [default: in the --tls-cert file].")
@click.option("--access-log/--no-access-log", default=None,
              help="Log a line per request on stderr, the control token redacted [default: off; the "
                   "journal keeps every API request].")
def serve(**options):
    """Serve the gateway's API and the control API.

    Every option can also come from the environment: PAYLETTER_EMULATOR_HOST, _PORT, _DB,
    _PUBLIC_URL, _STRICT, _CALLBACK_TIMEOUT, _CALLBACK_INTERVAL, _CALLBACK_RETRIES,
    _CALLBACK_CONCURRENCY, _CALLBACK_HOSTS (comma separated), _SCENARIO (comma separated),
    _FAKER_SEED, _CONTROL, _CONTROL_TOKEN, _WORKERS, _JOURNAL_LIMIT, _CALLBACK_LIMIT, _TLS, _TLS_CERT, _TLS_KEY,
    _ACCESS_LOG, and _CLIENTS (id:payment_key:search_key, comma separated) for clients besides pay_test.
    """
    fresh = options.pop("fresh")
    options["callback_hosts"] = tuple(options["callback_hosts"]) or None
    options["scenario"] = tuple(options["scenario"]) or None
    from ..engines.scenario import ScenarioError, load
    from ..serving.bridge import processes, serve, shareable

    try:
        settings = Settings.from_env(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc) if str(exc).startswith(ENV_PREFIX) else f"{ENV_PREFIX}*: {exc}") from None
    if settings.workers and settings.workers > 1 and settings.db == ":memory:":
        raise click.UsageError("--workers needs a database the workers can share: a file or postgresql://...")
    if settings.workers and settings.workers > 1 and not shareable():
        raise click.UsageError("--workers above 1 needs a system that forks processes (Linux, macOS); "
                               "one process serves here")
    if fresh:
        from ..startup import empty_database

        try:
            empty_database(settings.db)
        except (OSError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
    certificates = _certificates(settings)
    try:
        load(settings.scenario)  # a broken scenario stops here, not in every process
    except ScenarioError as exc:
        raise click.ClickException("the scenario cannot be used:\n" + str(exc)) from None
    count = processes(settings)
    # Bound here, so that `--port 0` can say which port it got before any process serves.
    listener = _listen(settings.host, settings.port)
    _announce(settings, listener.getsockname()[1], certificates, count)
    try:
        serve(settings, listener, certificates, count)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()


def _listen(host: str, port: int):
    """The listening socket. Made with IPPROTO_TCP, not 0 as socket.create_server makes it:
    asyncio sets TCP_NODELAY only on connections whose protocol says TCP, and without it an
    answer's body waits for the client's delayed ACK of its head (40 ms, measured)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":  # elsewhere SO_REUSEADDR would let two servers share the port
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def _certificates(settings: Settings):
    """The files of `--tls`/`--tls-cert`, made or found before any request; None for HTTP."""
    from ..serving import tls

    if not tls.enabled(settings):
        return None
    try:
        certificates = tls.prepare(settings)
        tls.server_context(certificates)  # a wrong key or a broken file stops here, not in a worker
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"TLS: {exc}") from None
    return certificates


def _announce(settings: Settings, port: int, certificates=None, count: int = 1) -> None:
    from ..startup import lines

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    scheme = "https" if certificates else "http"
    click.echo("\n".join(lines(settings, f"{scheme}://{host}:{port}", workers=count if count > 1 else None,
                               ca_file=certificates.ca_file if certificates else None)))
    sys.stdout.flush()
    if settings.control and settings.control_token is None and not _loopback(settings.host):
        click.echo(f"warning: the control API (/_emulator/...) is open to anyone who reaches {settings.host}; "
                   f"use --control-token or --no-control on a shared network", err=True)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.group()
def scenario():
    """Scenario files."""


@scenario.command("check")
@click.argument("files", nargs=-1, required=True)
def scenario_check(files):
    """Check scenario files (and that they merge, in the order given); exit 1 on any problem."""
    from ..engines.scenario import ScenarioError, merge, read

    documents, failed = [], False
    for reference in files:
        try:
            documents.append(read(reference))
            click.echo(f"ok: {reference}")
        except ScenarioError as exc:
            click.echo(str(exc), err=True)
            failed = True
    if not failed and len(documents) > 1:
        try:
            merge(documents)
        except ScenarioError as exc:
            click.echo(str(exc), err=True)
            failed = True
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("folder", default="docs", type=click.Path(file_okay=False))
def docs(folder):
    """Write the reference pages made from the data tables (error codes, payment methods)."""
    from pathlib import Path

    from .docgen import write

    for path in write(Path(folder)):
        click.echo(f"wrote {path}")


# The commands that drive a running emulator from a shell (emulator/client/drive.py).
drive.register(main)

# Parity with the real test gateway: probe compares, capture records (emulator/client/probe.py, capture.py).
from . import capture, probe  # noqa: E402

probe.register(main)
capture.register(main)

if __name__ == "__main__":
    main()
