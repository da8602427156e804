"""The `payletter-emulator` command."""
from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from . import drive
from .drive_options import Refused
from ..config import SETTINGS, Setting, Settings, is_loopback_host, split, unknown_variables


@click.group()
@click.version_option(package_name="payletter-emulator")
def main():
    """A local, stateful sandbox of the Payletter payment gateway."""


class _Value(click.ParamType):
    """A setting's value read and checked by its declaration, so that an option and its environment
    variable are read alike; a variable's bad value is refused in the line `Settings.from_env` gives."""

    envvar_list_splitter = ","

    def __init__(self, setting: Setting):
        self.setting = setting
        self.name = setting.value_name

    def split_envvar_value(self, rv: str):
        return split(rv)

    def convert(self, value, param, ctx):
        try:
            if isinstance(value, str):
                value = self.setting.read_one(value)
            else:  # a default, or a flag's True or False
                self.setting.check(value)
            if self.setting.file and not os.path.isfile(value):
                raise ValueError("is not a file")
            return value
        except ValueError as exc:
            if ctx is not None and param is not None \
                    and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
                raise Refused(self.setting.refusal(value, str(exc))) from None
            self.fail(f"{value!r} {exc}", param, ctx)


class _Flag(_Value, click.types.BoolParamType):
    """A boolean setting's value: click makes `--x/--no-x` flags only of a boolean type."""


def _option(setting: Setting):
    """`serve`'s option of one declared setting: its flag(s), its variable, its type, its default, its help."""
    flags = f"{setting.option}/{setting.off}" if setting.off else setting.option
    more = f" Value: {setting.bound}." if setting.bound else ""
    return click.option(flags, setting.name, envvar=setting.variable, show_envvar=True,
                        type=(_Flag if setting.kind is bool else _Value)(setting), is_flag=setting.kind is bool,
                        multiple=setting.many, default=setting.default,
                        show_default=setting.shown_default or True,
                        help=setting.help + (" Repeatable." if setting.many else "") + more)


def _settings_options(command):
    for setting in reversed([s for s in SETTINGS.values() if s.option]):
        command = _option(setting)(command)
    return command


_ENVIRONMENT_ONLY = "\n\n".join(f"{s.variable} (environment only; {s.value_name}): {s.help}"
                                  for s in SETTINGS.values() if not s.option)


@main.command(epilog=_ENVIRONMENT_ONLY)
@_settings_options
def serve(**options):
    """Serve the gateway's API and the control API.

    Every option can also come from the environment variable shown with it; an option given wins.
    """
    from ..engines.scenario import ScenarioError, load
    from ..serving.bridge import processes, serve, shareable
    from ..startup import Refusal, make_whole, open_database
    from .drive_options import CA_VARIABLE, SANDBOX_VARIABLE, URL_VARIABLE  # the other commands' variables

    for warning in unknown_variables(os.environ, others=(URL_VARIABLE, CA_VARIABLE, SANDBOX_VARIABLE)):
        click.echo(f"warning: {warning}", err=True)
    try:  # click has read the options' variables; from_env reads those without an option (the clients)
        settings = Settings.from_env(os.environ, **options)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if settings.workers and settings.workers > 1 and settings.db == ":memory:":
        raise click.UsageError("--workers needs a database the workers can share: a file or postgresql://...")
    if settings.workers and settings.workers > 1 and not shareable():
        raise click.UsageError("--workers above 1 needs a system that forks processes (Linux, macOS); "
                               "one process serves here")
    if settings.fresh:
        from ..startup import empty_database

        try:
            empty_database(settings.db)
        except (OSError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
    certificates = _certificates(settings)
    gateway = _gateway_certificates(settings)
    try:
        load(settings.scenario)  # a broken scenario stops here, not in every process
    except ScenarioError as exc:
        raise click.ClickException("the scenario cannot be used:\n" + str(exc)) from None
    count = processes(settings)
    try:
        clock = open_database(settings.db)  # once, here: the workers find it made, or none starts
        # Bound here, so that `--port 0` can say which port it got before any process serves.
        listener = _listen(settings.host, settings.port)
    except Refusal as refusal:
        raise click.ClickException(str(refusal)) from None
    try:
        intercept = _listen(settings.host, settings.intercept, "--intercept") if gateway else None
    except Refusal as refusal:
        listener.close()
        raise click.ClickException(str(refusal)) from None
    port = listener.getsockname()[1]
    proxy = intercept.getsockname()[1] if intercept else None

    def ready():
        _announce(settings, port, certificates, count, clock, proxy, gateway)

    try:  # the lines once every process accepts connections: a request sent on reading them is served
        serve(settings, listener, certificates, count, ready=ready, intercept=intercept, gateway=gateway)
    except Refusal as refusal:
        raise click.ClickException(str(refusal)) from None
    except KeyboardInterrupt:  # Ctrl-C before serving began: nothing was served
        return
    finally:
        listener.close()
        if intercept:
            intercept.close()
    make_whole(settings.db)  # stopped cleanly: the SQLite file alone holds the run


def _listen(host: str, port: int, option: str = "--port"):
    """The listening socket (of `option`'s port). Made with IPPROTO_TCP, not 0 as
    socket.create_server makes it: asyncio sets TCP_NODELAY only on connections whose protocol says
    TCP, and without it an answer's body waits for the client's delayed ACK of its head. A port
    that cannot be had is refused in one line."""
    import errno
    import socket

    from ..startup import Refusal

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":  # elsewhere SO_REUSEADDR would let two servers share the port
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            advice = f"another program (another emulator?) uses it: stop it, or choose another {option} (0: any free one)"
        elif error.errno == errno.EACCES:
            advice = f"ports below 1024 need privileges: choose another {option} (0: any free one)"
        else:
            advice = f"check --host (an address of this machine) and {option}"
        raise Refusal(f"cannot listen on {host}:{port}: {error.strerror or error}; {advice}") from None
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


def _gateway_certificates(settings: Settings):
    """The files `--intercept` answers the gateway's hosts with, made or found before any request;
    None without `--intercept`."""
    from ..serving import tls

    if settings.intercept is None:
        return None
    try:
        certificates = tls.gateway_certificates(settings.db)
        tls.server_context(certificates)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"--intercept: {exc}") from None
    return certificates


def _announce(settings: Settings, port: int, certificates=None, count: int = 1, clock=None,
              proxy: int | None = None, gateway=None) -> None:
    from ..startup import lines

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    scheme = "https" if certificates else "http"
    intercept = (f"http://{host}:{proxy}", gateway.ca_file) if proxy is not None else None
    click.echo("\n".join(lines(settings, f"{scheme}://{host}:{port}", workers=count if count > 1 else None,
                               ca_file=certificates.ca_file if certificates else None, clock=clock,
                               intercept=intercept)))
    sys.stdout.flush()
    if settings.control and settings.control_token is None and not is_loopback_host(settings.host):
        click.echo(f"warning: the control API (/_emulator/...) is open to anyone who reaches {settings.host}; "
                   f"use --control-token or --no-control on a shared network", err=True)


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


@main.command(hidden=True)  # a maintainer's tool, not a merchant's command
@click.argument("folder", default="docs", type=click.Path(file_okay=False))
def docs(folder):
    """Write the reference pages made from the data tables (error codes, payment methods, configuration)."""
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

# A callback sink for a shell or a CI job (emulator/client/listen.py).
from . import listen  # noqa: E402

listen.register(main)

# Payletter Global's payments from a shell (emulator/client/global_cli.py).
from . import global_cli  # noqa: E402

global_cli.register(main)

if __name__ == "__main__":
    main()
