"""Commands that drive a running emulator from a shell, for CI in any language
(`payletter-emulator approve <token>`): each is one control operation through EmulatorClient and
prints its answer as one JSON document; a refusal is a JSON document on stderr and exit status 1."""
from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click

from .drive_options import connection, fail, parse_duration

if TYPE_CHECKING:  # the client (and requests) are imported when a command drives, not for `serve`
    from .control_client import EmulatorClient


def register(main: click.Group) -> None:
    """Add the commands to `payletter-emulator` (its `scenario` group gains put, get and clear)."""
    for command in (health, reset, approve, decline, abandon, deposit, payments, clock, callbacks, sandbox):
        main.add_command(command)
    for command in (scenario_put, scenario_get, scenario_clear):
        main.commands["scenario"].add_command(command)


# --- health and reset --------------------------------------------------------------------------

@click.command()
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=0.0,
              help="Ask again until it answers, for up to this many seconds (a server starting) [default: ask once].")
@connection(sandbox=False)
def health(client: EmulatorClient, wait_seconds: float):
    """Exit 0 once the emulator answers /_emulator/health; 1 (with why, as JSON) otherwise.
    The Docker image's HEALTHCHECK."""
    from .control_client import EmulatorError

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return {**client.health(), "url": client.base_url}
        except (EmulatorError, OSError, json.JSONDecodeError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


@click.command()
@connection(sandbox=True)
def reset(client: EmulatorClient):
    """Forget payments, callbacks and the journal; the clock returns to real time."""
    return client.reset()


# --- the payer ---------------------------------------------------------------------------------

@click.command()
@click.argument("token")
@click.option("--option", help="navercard/naverpoint (Naver Pay), smilecard/smilecash (Smile Pay).")
@click.option("--card-number", help="A test card number (a declining one declines, as on the page).")
@click.option("--install-month", help="Installment months.")
@click.option("--bank-code", help="The bank of a transfer or virtual account.")
@connection(sandbox=True)
def approve(client: EmulatorClient, token: str, **choices):
    """Pay TOKEN as the payer would: {"return_url", "fields"}, what the browser POSTs to return_url.
    The callback's first attempt follows (`callbacks flush` waits for it)."""
    return client.approve(token, **{name: value for name, value in choices.items() if value is not None})


@click.command()
@click.argument("token")
@click.option("--code", help="The failure's code [default: 6001].")
@click.option("--message", help="The failure's message.")
@connection(sandbox=True)
def decline(client: EmulatorClient, token: str, code: str | None, message: str | None):
    """The payer's payment of TOKEN fails: {"return_url", "fields"} with the failure's code."""
    return client.decline(token, code, message)


@click.command()
@click.argument("token")
@connection(sandbox=True)
def abandon(client: EmulatorClient, token: str):
    """The payer presses cancel on TOKEN's page: {"redirect_url"}."""
    return client.abandon(token)


@click.command()
@click.argument("tid")
@click.option("--amount", type=int, help="The amount deposited [default: the amount due].")
@connection(sandbox=True)
def deposit(client: EmulatorClient, tid: str, amount: int | None):
    """The payer deposits into TID's virtual account: the payment. The callback follows."""
    return client.deposit(tid, amount)


# --- state ---------------------------------------------------------------------------------------

@click.group()
def payments():
    """The payments the emulator holds."""


@payments.command("list")
@click.option("--status", help="created, page_entered, awaiting_deposit, approved, verified, failed or abandoned.")
@click.option("--client-id", help="Only this client's.")
@connection(sandbox=True)
def payments_list(client: EmulatorClient, status: str | None, client_id: str | None):
    """Every payment with its cancellations and cash receipts: {"payments": [...]}."""
    return {"payments": client.payments(client_id=client_id, status=status)}


@payments.command("get")
@click.argument("ref")
@connection(sandbox=True)
def payments_get(client: EmulatorClient, ref: str):
    """One payment, by tid or token."""
    return client.payment(ref)


@click.group()
def clock():
    """The emulator's clock: the only time payments, expiries and callback retries follow."""


@clock.command("get")
@connection(sandbox=True)
def clock_get(client: EmulatorClient):
    """{"now", "frozen"}."""
    return client.clock.state()


@clock.command("advance")
@click.argument("duration")
@connection(sandbox=True)
def clock_advance(client: EmulatorClient, duration: str):
    """Move the clock forward by DURATION (seconds, or 90s, 5m, 1h30m, 3d); what the new time
    makes due (callback retries, expiries) happens at once. {"now", "frozen"}."""
    return client.control("POST", "/clock", {"advance_seconds": parse_duration(duration)})


@clock.command("set")
@click.argument("moment")
@connection(sandbox=True)
def clock_set(client: EmulatorClient, moment: str):
    """Jump to MOMENT (ISO 8601; without an offset it is read as KST). {"now", "frozen"}."""
    return client.control("POST", "/clock", {"set": moment})


@clock.command("freeze")
@connection(sandbox=True)
def clock_freeze(client: EmulatorClient):
    """Time stands still until moved or unfrozen (a reset unfreezes it). {"now", "frozen"}."""
    return client.control("POST", "/clock", {"freeze": True})


@clock.command("unfreeze")
@connection(sandbox=True)
def clock_unfreeze(client: EmulatorClient):
    """Time runs again from where it stood. {"now", "frozen"}."""
    return client.control("POST", "/clock", {"freeze": False})


@click.group()
def callbacks():
    """The callback ledger: every notification with its attempts."""


@callbacks.command("list")
@click.option("--tid", help="Only this payment's.")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]))
@connection(sandbox=True)
def callbacks_list(client: EmulatorClient, tid: str | None, status: str | None):
    """Notifications, oldest first: {"callbacks": [...]}."""
    return {"callbacks": client.callbacks.list(tid=tid, status=status)}


@callbacks.command("flush")
@click.option("--max-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Give up waiting after this long.")
@connection(sandbox=True)
def callbacks_flush(client: EmulatorClient, max_seconds: float):
    """Send every attempt due now; answer once none is left: {"idle", "pending", "next_attempt_at"}."""
    return client.callbacks.flush(max_seconds)


@callbacks.command("wait")
@click.option("--tid", help="Only this payment's.")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default="delivered",
              show_default=True)
@click.option("--wait-seconds", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Flush for at most this long.")
@connection(sandbox=True)
def callbacks_wait(client: EmulatorClient, tid: str | None, status: str, wait_seconds: float):
    """Flush, then the first notification (of --tid) in --status; exit 1, saying what each
    notification went through, when none is once nothing is due."""
    return client.callbacks.wait(tid=tid, status=status, timeout=wait_seconds)


@callbacks.command("resend")
@click.argument("callback_id", type=int)
@connection(sandbox=True)
def callbacks_resend(client: EmulatorClient, callback_id: int):
    """One extra attempt of notification CALLBACK_ID now, whatever its status: {"attempt", "callback"}."""
    return client.callbacks.resend(callback_id)


# --- sandboxes and scenarios ---------------------------------------------------------------------

@click.group()
def sandbox():
    """Sandboxes: clients with fresh keys and their own payments, clock, scenario and callbacks."""


@sandbox.command("create")
@click.option("--scenario", "scenarios", multiple=True,
              help="A shipped scenario's name or a file (read here); repeatable, merged in order.")
@click.option("--idle-seconds", type=click.FloatRange(min=1), help="Deleted after this long without requests [default: 3600].")
@connection(sandbox=False)
def sandbox_create(client: EmulatorClient, scenarios: tuple[str, ...], idle_seconds: float | None):
    """A new sandbox: {"id", "client_id", "payment_key", "search_key", "base_url", ...}."""
    from .control_client import scenario_document

    body: dict[str, Any] = {}
    if scenarios:
        body["scenario"] = _checked(lambda: scenario_document(_documents(scenarios)))
    if idle_seconds is not None:
        body["idle_seconds"] = idle_seconds
    return client.control("POST", "/sandboxes", body, root=True)


@sandbox.command("list")
@connection(sandbox=False)
def sandbox_list(client: EmulatorClient):
    """The sandboxes of this server: {"sandboxes": [...]}."""
    return client.control("GET", "/sandboxes", root=True)


@sandbox.command("delete")
@click.argument("sandbox_id")
@connection(sandbox=False)
def sandbox_delete(client: EmulatorClient, sandbox_id: str):
    """Delete sandbox SANDBOX_ID and everything in it: {"deleted": id}."""
    return client.control("DELETE", f"/sandboxes/{sandbox_id}", root=True)


@click.command("put")
@click.argument("scenarios", nargs=-1, required=True)
@connection(sandbox=True)
def scenario_put(client: EmulatorClient, scenarios: tuple[str, ...]):
    """Put SCENARIOS in force: shipped names, files (checked here first) or `-` for YAML or JSON on
    standard input; several are merged in order. The scenario's view."""
    from .control_client import scenario_document

    return client.control("PUT", "/scenario", _checked(lambda: scenario_document(_documents(scenarios))))


@click.command("get")
@connection(sandbox=True)
def scenario_get(client: EmulatorClient):
    """The scenario in force, how often each rule applied, its timed jobs."""
    return client.scenario()


@click.command("clear")
@connection(sandbox=True)
def scenario_clear(client: EmulatorClient):
    """Back to the gateway's default behaviour."""
    return client.clear_scenario()


def _documents(references: tuple[str, ...]) -> list[Any]:
    """Names and paths as they are; `-` read from standard input (YAML, or JSON, which YAML reads)."""
    import yaml

    documents = []
    for reference in references:
        if reference != "-":
            documents.append(reference)
            continue
        try:
            document = yaml.safe_load(sys.stdin.read())
        except yaml.YAMLError as exc:
            fail({"status": None, "code": None, "message": f"standard input is not YAML or JSON: {exc}"})
        if not isinstance(document, dict):
            fail({"status": None, "code": None, "message": "standard input holds no scenario (a mapping)"})
        documents.append(document)
    return documents


def _checked(make: Callable[[], Any]) -> Any:
    """A scenario read and checked here: its problems (file, place, rule) as the refusal."""
    from ..engines.scenario import ScenarioError

    try:
        return make()
    except ScenarioError as exc:
        fail({"status": None, "code": None, "message": "the scenario cannot be used", "problems": exc.problems})
    except OSError as exc:  # a file that cannot be read
        fail({"status": None, "code": None, "message": f"the scenario cannot be read: {exc}"})


