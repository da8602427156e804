"""The `payletter-emulator` command."""
from __future__ import annotations

import sys

import click

from . import drive
from .config import ENV_PREFIX, Settings


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
              help="Serve with gunicorn and this many worker processes sharing the database "
                   "[default: the built-in server, one process].")
@click.option("--tls/--no-tls", default=None,
              help="Serve HTTPS (TLS 1.2 or newer) with a certificate for this host, signed by a CA kept "
                   "beside the database [default: HTTP].")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS with this certificate (PEM, chain first) instead; implies --tls.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="The private key of --tls-cert [default: in the --tls-cert file].")
def serve(**options):
    """Serve the gateway's API and the control API.

    Every option can also come from the environment: PAYLETTER_EMULATOR_HOST, _PORT, _DB,
    _PUBLIC_URL, _STRICT, _CALLBACK_TIMEOUT, _CALLBACK_INTERVAL, _CALLBACK_RETRIES,
    _CALLBACK_CONCURRENCY, _CALLBACK_HOSTS (comma separated), _SCENARIO (comma separated),
    _FAKER_SEED, _CONTROL, _CONTROL_TOKEN, _WORKERS, _JOURNAL_LIMIT, _CALLBACK_LIMIT, _TLS, _TLS_CERT, _TLS_KEY,
    and _CLIENTS (id:payment_key:search_key, comma separated) for clients besides pay_test.
    """
    fresh = options.pop("fresh")
    options["callback_hosts"] = tuple(options["callback_hosts"]) or None
    options["scenario"] = tuple(options["scenario"]) or None
    from werkzeug.serving import make_server

    from .scenario import ScenarioError
    from .web.app import create_app

    try:
        settings = Settings.from_env(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc) if str(exc).startswith(ENV_PREFIX) else f"{ENV_PREFIX}*: {exc}") from None
    if fresh:
        from .startup import empty_database

        try:
            empty_database(settings.db)
        except (OSError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
    certificates = _certificates(settings)
    if settings.workers:
        _serve_with_workers(settings, certificates)
        return
    try:
        app = create_app(settings)
    except ScenarioError as exc:
        raise click.ClickException("the scenario cannot be used:\n" + str(exc)) from None
    context = None
    if certificates:
        from . import tls

        tls.install(app, certificates)
        context = tls.server_context(certificates)
    server = make_server(settings.host, settings.port, app, threaded=True, ssl_context=context,
                         request_handler=tls.request_handler() if context else None)
    if context:  # the handshake happens in the connection's thread: a silent client holds up nobody
        server.socket.do_handshake_on_connect = False
    _announce(settings, server.server_port, certificates)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _certificates(settings: Settings):
    """The files of `--tls`/`--tls-cert`, made or found before any request; None for HTTP."""
    from . import tls

    if not tls.enabled(settings):
        return None
    try:
        certificates = tls.prepare(settings)
        tls.server_context(certificates)  # a wrong key or a broken file stops here, not in a worker
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"TLS: {exc}") from None
    return certificates


def _announce(settings: Settings, port: int, certificates=None) -> None:
    from .startup import lines

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    scheme = "https" if certificates else "http"
    click.echo("\n".join(lines(settings, f"{scheme}://{host}:{port}", workers=settings.workers,
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


def _serve_with_workers(settings: Settings, certificates=None) -> None:
    """gunicorn on a socket bound here, so that `--port 0` can say which port it got."""
    import socket

    from .scenario import ScenarioError, load
    from .serving import serve

    if settings.db == ":memory:":
        raise click.UsageError("--workers needs a database the workers can share: a file or postgresql://...")
    try:
        load(settings.scenario)  # a broken scenario stops here, not in every worker
    except ScenarioError as exc:
        raise click.ClickException("the scenario cannot be used:\n" + str(exc)) from None
    listener = socket.create_server((settings.host, settings.port), reuse_port=False, backlog=2048)
    _announce(settings, listener.getsockname()[1], certificates)
    serve(settings, listener, certificates)


@main.group()
def scenario():
    """Scenario files."""


@scenario.command("check")
@click.argument("files", nargs=-1, required=True)
def scenario_check(files):
    """Check scenario files (and that they merge, in the order given); exit 1 on any problem."""
    from .scenario import ScenarioError, merge, read

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


# The commands that drive a running emulator from a shell (emulator/drive.py).
drive.register(main)

if __name__ == "__main__":
    main()
