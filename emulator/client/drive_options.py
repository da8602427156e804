"""What every command that drives a running emulator shares (emulator/client/drive.py): where the
emulator is and how to trust it, the connection options, and the answer printed as JSON (a
refusal as JSON on stderr, exit status 1)."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from ..config import ENV_PREFIX, SETTINGS, Settings

if TYPE_CHECKING:
    from .control_client import EmulatorClient

URL_VARIABLE = ENV_PREFIX + "URL"  # where the commands find the emulator
CA_VARIABLE = ENV_PREFIX + "CA_FILE"  # the CA they trust it with, over HTTPS
TOKEN_VARIABLE = SETTINGS["control_token"].variable  # the server's own variable: one secret for both sides
SANDBOX_VARIABLE = ENV_PREFIX + "SANDBOX"
FAILED = 1  # the emulator refused, or could not be reached; click's usage errors exit with 2

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}


def default_url(environ=os.environ) -> str:
    """PAYLETTER_EMULATOR_URL, else the server this environment's PAYLETTER_EMULATOR_* settings
    describe (its port, HTTPS when TLS is on): the default server when none is set."""
    if environ.get(URL_VARIABLE):
        return environ[URL_VARIABLE]
    from ..serving import tls

    settings = _settings(environ)
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
    return f"{tls.scheme(settings)}://{f'[{host}]' if ':' in host else host}:{settings.port}"


def default_verify(url: str, environ=os.environ) -> bool | str:
    """Over HTTPS, the CA of PAYLETTER_EMULATOR_CA_FILE, else the one a `--tls` server with this
    environment's database made (when it is there), else the system's."""
    if environ.get(CA_VARIABLE):
        return environ[CA_VARIABLE]
    if url.startswith("https://"):
        from ..serving import tls

        own = tls.ca_path(_settings(environ).db)
        if own.is_file():
            return str(own)
    return True



class Refused(click.ClickException):
    """A setting out of range in the environment: one line saying which variable and why, and
    exit 1, as any refusal to start (a mistake on the command line is click's usage error, 2)."""

    exit_code = 1

def _settings(environ) -> Settings:
    try:
        return Settings.from_env(environ)
    except ValueError as exc:
        raise Refused(str(exc)) from None  # the variable, its value and the rule


def parse_duration(text: str) -> float:
    """Seconds from `300`, `90s`, `5m`, `1h30m`, `3d`, `1.5h`."""
    if not re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        raise click.BadParameter(f"{text!r} is not a duration (seconds, or like 90s, 5m, 1h30m, 3d)")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION.findall(text))


def fail(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, ensure_ascii=False), err=True)
    sys.exit(FAILED)


@contextlib.contextmanager
def stopped_by_signals():
    """SIGTERM stops the block as Ctrl-C (SIGINT) does, with KeyboardInterrupt: a command that
    runs until stopped (`listen`, `--follow`) ends its output cleanly and exits 0 on either."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def connection(sandbox: bool, printed: bool = True):
    """The options every command shares (`--sandbox` where the control API has one), turned into
    an EmulatorClient; the command's answer printed as JSON (unless `printed` is False: the command
    prints its own lines), a refusal as JSON on stderr."""

    def decorate(command: Callable[..., Any]):
        @functools.wraps(command)
        def run(url, control_token, ca_file, insecure, timeout, bound_sandbox=None, **arguments):
            from .control_client import CallbackWaitError, EmulatorClient, EmulatorError  # requests: only when driving

            url = (url or default_url()).rstrip("/")
            verify = False if insecure else (ca_file or default_verify(url))
            if insecure:  # asked for: no warning on stderr, which holds only a refusal
                import urllib3

                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            client = EmulatorClient(url, sandbox=bound_sandbox or None, control_token=control_token or None,
                                    verify=verify, timeout=timeout)
            try:
                answer = command(client, **arguments)
            except EmulatorError as exc:
                fail({"status": exc.status, "code": exc.code, "message": exc.message,
                      "request": f"{exc.method} {exc.path}", "url": client.url})
            except CallbackWaitError as exc:
                fail({"status": None, "code": None, "message": str(exc), "url": client.url})
            except OSError as exc:  # requests' connection, timeout and TLS errors
                fail({"status": None, "code": None, "message": f"cannot reach the emulator: {exc}", "url": url})
            except json.JSONDecodeError as exc:  # something else answers at that address
                fail({"status": None, "code": None, "message": f"the answer is not JSON: {exc}", "url": url})
            finally:
                client.close()
            if printed:
                click.echo(json.dumps(answer, ensure_ascii=False, indent=2))

        options = [
            click.option("--url", envvar=URL_VARIABLE, show_envvar=True,
                         help=f"The emulator [default: the server the {ENV_PREFIX}* settings describe; "
                              f"without any, http://{SETTINGS['host'].default}:{SETTINGS['port'].default}]."),
            click.option("--token", "control_token", envvar=TOKEN_VARIABLE, show_envvar=True,
                         help="The control token (`serve --control-token`), sent as X-Emulator-Token."),
            click.option("--ca-file", envvar=CA_VARIABLE, show_envvar=True, type=click.Path(dir_okay=False),
                         help="Trust an HTTPS emulator with this CA [default: the one a `--tls` server "
                              "made beside PAYLETTER_EMULATOR_DB, if there; else the system's]."),
            click.option("--insecure", "-k", is_flag=True, help="Over HTTPS, do not check the certificate."),
            click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                         help="Seconds to wait for the answer."),
        ]
        if sandbox:
            options.append(click.option("--sandbox", "bound_sandbox", envvar=SANDBOX_VARIABLE, show_envvar=True,
                                        help="Drive this sandbox (`sandbox create`) instead of the root."))
        for option in reversed(options):
            run = option(run)
        return run

    return decorate
