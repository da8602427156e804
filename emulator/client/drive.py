"""Commands that drive a running emulator from a shell, for CI in any language
(`payletter-emulator approve <token>`): each is one control operation through EmulatorClient and
prints its answer as one JSON document (`pay` is a merchant's request and the payer's answer; the
journal and the ledger are printed one JSON line per entry, `--follow`ed as they grow); a refusal
is a JSON document on stderr and exit status 1."""
from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click

from ..domain.payment import STATUS_CODES
from .drive_options import ENV_PREFIX, connection, fail, parse_duration, stopped_by_signals
from .journal_tools import JournalReader, LedgerReader, json_line, matches, status_test

if TYPE_CHECKING:  # the client (and requests) are imported when a command drives, not for `serve`
    from .control_client import EmulatorClient


def register(main: click.Group) -> None:
    """Add the commands to `payletter-emulator` (its `scenario` group gains put, get and clear)."""
    for command in (health, reset, pay, approve, decline, abandon, deposit, payments, journal, coverage, clock,
                    callbacks, sandbox):
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
@click.option("--pgcode", required=True, help="The payment method: creditcard, virtualaccount, naverpay, ...")
@click.option("--amount", required=True, type=int, help="The amount, in won.")
@click.option("--callback-url", required=True, help="Where the emulator POSTs the callback (`listen` is one).")
@click.option("--decline", "decline_code", metavar="CODE", help="Decline with this failure code instead of approving.")
@click.option("--user-id", default="test_user_id", show_default=True)
@click.option("--order-no", help="The merchant's order number.")
@click.option("--product-name", default="test product", show_default=True)
@click.option("--return-url", default="https://merchant.example/result", show_default=True,
              help="Where the payer's browser would be sent back (no browser goes here).")
@click.option("--client-id", envvar=ENV_PREFIX + "CLIENT_ID", show_envvar=True,
              help="The merchant's client [default: pay_test, the built-in test client; with --sandbox, the sandbox's].")
@click.option("--payment-key", envvar=ENV_PREFIX + "PAYMENT_KEY", show_envvar=True, show_default=False,
              help="The client's PAYMENT key [default: pay_test's; with --sandbox, the sandbox's].")
@click.option("--json", "as_json", is_flag=True, help="Print the payment as JSON (the control API's view).")
@connection(sandbox=True, printed=False)
def pay(client: EmulatorClient, pgcode: str, amount: int, callback_url: str, decline_code: str | None,
        user_id: str, order_no: str | None, product_name: str, return_url: str, client_id: str | None,
        payment_key: str | None, as_json: bool):
    """Request a payment as the merchant does (POST /v1.0/payments/request with PLKEY), then
    approve it as the payer (or --decline it). Prints a line, or the payment with --json; a refused
    request is the gateway's envelope on stderr, exit status 1. The callback follows (`callbacks wait`)."""
    body = {"pgcode": pgcode, "client_id": client_id or client.client_id, "user_id": user_id, "amount": amount,
            "product_name": product_name, "order_no": order_no, "return_url": return_url,
            "callback_url": callback_url}
    path = "/v1.0/payments/request"
    reply = client.gateway.post(path, {k: v for k, v in body.items() if v is not None}, key=payment_key)
    if reply.status_code != 200:
        try:
            envelope = reply.json()
            code, message = envelope["code"], envelope["message"]
        except (ValueError, KeyError, TypeError):
            code, message = None, reply.text[:500] or "(empty answer)"
        fail({"status": reply.status_code, "code": code, "message": message, "request": f"POST {path}",
              "url": client.url})
    token = reply.json()["token"]
    answer = client.decline(token, decline_code) if decline_code else client.approve(token)
    payment = client.payment(token)
    if as_json:
        click.echo(json.dumps(payment, ensure_ascii=False, indent=2))
        return
    fields = answer.get("fields") or {}
    outcome = f", code {fields.get('code')} {fields.get('message')!r}" if fields.get("code") not in (None, "0") else ""
    tid = f" tid {payment['tid']}" if payment.get("tid") else ""
    click.echo(f"{payment['status']}: {payment['pgcode']} {payment['amount']}{tid} (token {token}){outcome}")


@click.command()
@click.argument("token")
@click.option("--option", help="navercard/naverpoint (Naver Pay), smilecard/smilecash (Smile Pay).")
@click.option("--card-number", help="A test card number (a declining one declines, as on the page).")
@click.option("--install-month", help="Installment months.")
@click.option("--bank-code", help="The bank of a transfer or virtual account.")
@click.option("--ignore-expiry", is_flag=True,
              help="Approve even once the payment page has expired (30 minutes after the request).")
@connection(sandbox=True)
def approve(client: EmulatorClient, token: str, ignore_expiry: bool, **choices):
    """Pay TOKEN as the payer would: {"return_url", "fields"}, what the browser POSTs to return_url.
    Refused (410) once its page has expired, as the page is, unless --ignore-expiry.
    The callback's first attempt follows (`callbacks flush` waits for it)."""
    return client.approve(token, ignore_expiry=ignore_expiry,
                          **{name: value for name, value in choices.items() if value is not None})


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
@click.option("--status", type=click.Choice(list(STATUS_CODES)), help="Only payments in this status.")
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


def _status(ctx, param, text: str | None):
    if text is None:
        return None
    try:
        return status_test(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("requests")
@click.option("--path", help="Only requests to this endpoint: payments/cancel (or /v1.0/payments/cancel).")
@click.option("--status", callback=_status, help="Only answers with this status (406), or of this class (4xx).")
@click.option("--count", is_flag=True, help="Print how many there are, not the requests.")
@click.option("--follow", "-f", is_flag=True, help="Then print each new request as it comes, until interrupted.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="With --follow: seconds between two looks at the journal.")
@connection(sandbox=True, printed=False)
def journal(client: EmulatorClient, path: str | None, status: Callable[[int], bool] | None, count: bool,
            follow: bool, interval: float):
    """The journal of gateway API requests and their answers, oldest first, one JSON line each
    (GET /_emulator/requests, every page); --count prints the number."""
    reader = JournalReader(client)

    def wanted() -> list[dict]:
        return [entry for entry in reader.read() if matches(entry, path=path, status=status)]

    _print_lines(wanted, count, follow, interval)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The document as the control API answers it.")
@connection(sandbox=False, printed=False)
def coverage(client: EmulatorClient, as_json: bool):
    """What the run exercised (GET /_emulator/coverage): the endpoints called, the pgcodes paid, the
    error codes answered, the scenario rules applied, the callbacks' outcomes, and what never was."""
    from .plugin_report import coverage_lines

    found = client.coverage()
    click.echo(json.dumps(found, ensure_ascii=False, indent=2) if as_json else "\n".join(coverage_lines(found)))


def _print_lines(read: Callable[[], list[dict]], count: bool, follow: bool, interval: float) -> None:
    """What `read` finds, a JSON line each (or their number); with `follow`, then what it finds
    next, a look every `interval` seconds, until SIGINT or SIGTERM (exit status 0)."""
    if count and follow:
        raise click.UsageError("--count and --follow do not go together")
    if count:
        click.echo(str(len(read())))
        return
    with stopped_by_signals():
        try:
            while True:
                for line in read():
                    click.echo(json_line(line))
                if not follow:
                    return
                time.sleep(interval)  # the poll interval
        except KeyboardInterrupt:
            return


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


@clock.command("real")
@connection(sandbox=True)
def clock_real(client: EmulatorClient):
    """Back to real time: no offset, not frozen (what an earlier run left), without a reset.
    {"now", "frozen"}."""
    return client.control("POST", "/clock", {"real": True})


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
    from .control_client import CallbackWaitError

    try:
        return client.callbacks.wait(tid=tid, status=status, timeout=wait_seconds)
    except CallbackWaitError as exc:  # the way on written as this CLI's command, not the client's Python
        sandbox = f" --sandbox {client.sandbox}" if client.sandbox else ""
        raise exc.for_command(f"payletter-emulator clock advance{sandbox}") from None


@callbacks.command("tail")
@click.option("--tid", help="Only this payment's.")
@click.option("--count", is_flag=True, help="Print how many attempts there are, not the attempts.")
@click.option("--follow", "-f", is_flag=True, help="Then print each attempt as it is recorded, until interrupted.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="With --follow: seconds between two looks at the ledger.")
@connection(sandbox=True, printed=False)
def callbacks_tail(client: EmulatorClient, tid: str | None, count: bool, follow: bool, interval: float):
    """Every attempt on the callback ledger, in the order they were made, one JSON line each (the
    attempt with its notification's callback_id, tid, url and callback_status)."""
    _print_lines(LedgerReader(client, tid).read, count, follow, interval)


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

    from ..engines.scenario import SIZE_LIMIT, load_yaml, too_large

    documents = []
    for reference in references:
        if reference != "-":
            documents.append(reference)
            continue
        text = sys.stdin.read(SIZE_LIMIT + 1)  # characters: at least as many bytes
        if len(text.encode("utf-8")) > SIZE_LIMIT:
            fail({"status": None, "code": None, "message": too_large("standard input")})
        try:
            document = load_yaml(text)
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


