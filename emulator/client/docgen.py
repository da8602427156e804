"""Reference pages made from the data tables and the settings' declarations, so the docs cannot
drift from the code."""
from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

from ..config import SETTINGS
from ..domain import global_rules, windows
from ..domain.methods import PaymentMethod, table, verification_methods
from ..domain.errors import ErrorKind, catalog
from . import error_examples


def _yes(flag: bool) -> str:
    return "O" if flag else "X"


def _asks(method: PaymentMethod) -> str:
    """The page's inputs, then the approval in the method's app if it has that step."""
    asked = [f"`{name}`" for name in method.inputs] + (["the app's approval"] if method.app_step else [])
    return ", ".join(asked) or "nothing"


def error_codes(exchanges: dict[str, error_examples.Exchange] | None = None) -> str:
    """The catalog, and each kind's example as the emulator answers it (run in process unless
    `exchanges` are given: the tests hand in a served emulator's)."""
    if exchanges is None:
        exchanges = error_examples.in_process()
    kinds = sorted(catalog().values(), key=lambda k: (k.code, k.name))
    lines = ["# Error codes", "",
             "Every error body is `{\"code\": <number>, \"message\": <text>}`. The 99x codes are the gateway's",
             "own (reference, \"Table of Error code\"; 996 and 997 from a captured answer and Payletter's error",
             "table of its sister API, see [fidelity.md](fidelity.md)); the 406 codes in 2000–5000 are this",
             "emulator's catalog: stable, one code per kind of failure, each message naming the field and the",
             "rule. The control API (`/_emulator/...`) uses the 43xx codes. Made from `emulator/domain/error_codes.toml`.",
             "Every 401, 403, 404 and 406 also carries the header `X-Emulator-Reason` (ASCII, percent-encoded), the",
             "same text as the journal entry's `error`: which case it was (whose key, the pgcode or path meant, every",
             "missing field); the body stays the gateway's. Each name leads to a request that provokes it and the",
             "emulator's answer ([Examples](#examples)).", "",
             "| HTTP | code | name | meaning | example message |", "|---|---|---|---|---|"]
    for kind in kinds:
        shown = exchanges.get(kind.name)
        name = f"[`{kind.name}`](#{kind.name})" if shown else f"`{kind.name}`"
        message = _cell(shown.answer.message()) if shown else f"*{_cell(kind.message)}*"
        lines.append(f"| {kind.status} | {kind.code} | {name} | {kind.meaning} | {message} |")
    lines += ["", *_global_error_codes()]
    lines += ["", "## Examples", "", *EXAMPLES_INTRO, "", "### What examples start from", "",
              "A given's steps run in order, each one answered with success; `{name}` is a value a step kept.", ""]
    used = {entry for kind in kinds if kind.example for entry in kind.example.get("given", []) if isinstance(entry, str)}
    for given, steps in error_examples.GIVENS.items():
        if given in used:
            lines.append(f"- **{given}**: " + "; then ".join(_step(step) for step in steps))
    for kind in kinds:
        if kind.name in exchanges:
            lines += ["", *_example(kind, exchanges[kind.name])]
    lines += ["", "### Not shown", "", "No request provokes these on purpose:", ""]
    lines += [f"- `{kind.name}` ({kind.code}): {kind.no_example}" for kind in kinds if kind.no_example]
    return "\n".join(lines) + "\n"


def _global_error_codes() -> list[str]:
    """Payletter Global's table (its API at /api/... and /payment/...), from global_gateway.toml's [errors]."""
    lines = ["## Payletter Global", "",
             "Payletter Global's API ([global.md](global.md)) answers with its own table, the pairs of HTTP status",
             "and code its samples list; the message starts with the samples' text, and the detail after a colon",
             "names the field and the rule. Its 404 and 405 (an unknown path or a wrong method under `/api/` or",
             "`/payment/`) are its own too. Made from `emulator/domain/global_gateway.toml` (`[errors]`).", "",
             "| HTTP | code | name | message |", "|---|---|---|---|"]
    errors = global_rules.table()["errors"]
    for name, entry in sorted(errors.items(), key=lambda item: (item[1]["status"], item[0])):
        lines.append(f"| {entry['status']} | {entry['code']} | `global_{name}` | {_cell(entry['message'])} |")
    return lines


EXAMPLES_INTRO = [
    "Every answer below is the emulator's own. `payletter-emulator docs` sends each request to an emulator",
    "in memory (`payletter-emulator serve --db :memory: --seed 1`, run in process through Flask's test",
    "client) and writes what came back; `tests/test_docs.py` sends them again to a running",
    "`payletter-emulator serve` and checks that this page is what it answers. The request is declared",
    "beside its kind in `emulator/domain/error_codes.toml` (`example.*`, the keys explained in",
    "`emulator/client/error_examples.py`).",
    "",
    "Before each example the emulator is reset (`POST /_emulator/reset`), has no scenario (`DELETE",
    "/_emulator/scenario`) and its clock is frozen at 2026-11-29 12:00:00 KST (`POST /_emulator/clock`), so",
    "the answers repeat. A token is the clock's epoch milliseconds and a counter, a tid the day and a",
    "counter, and a reset keeps the counters: an example's identifiers are those a fresh emulator gives it",
    "after the examples before it, in the order of `error_codes.toml`. One thing is rewritten: wherever the",
    "emulator listened, its address is written `127.0.0.1:8080`.",
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _step(step: dict) -> str:
    """A given's step as the page tells it, `{name}`s as written."""
    sent = error_examples.request(step, None)
    told = f"`{sent.line}`" + (f" `{sent.shown_body}`" if sent.shown_body else "")
    kept = ", ".join(f"`{name}`" for name in step.get("keep", {}))
    return told + (f" (keeps {kept})" if kept else "")


def _example(kind: ErrorKind, exchange: error_examples.Exchange) -> list[str]:
    sent, answer = exchange.sent, exchange.answer
    said = [f"{kind.status}, code {kind.code}."]
    if exchange.settings:
        said.append(f"On `payletter-emulator serve {' '.join(error_examples.options(exchange.settings))}`.")
    if exchange.given:
        said.append("Given " + "; then ".join(exchange.given) + ".")
    if sent.note:
        said.append(f"The body is {sent.note}.")
    request = [sent.line, *(f"{name}: {value}" for name, value in sent.headers)]
    if sent.shown_body:
        request += ["", sent.shown_body]
    reply = [f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}",
             *(f"{name}: {value}" for name, value in answer.headers), ""]
    if answer.is_page:
        error, detail = answer.page_error()
        reply += [f'<!-- an HTML page: data-error="{error}", and its detail line: -->', detail]
    else:
        reply.append(answer.body)
    return [f"### `{kind.name}`", "", " ".join(said), "", "```http", *request, "```", "", "```http", *reply, "```"]


def payment_methods() -> str:
    lines = ["# Payment methods", "",
             "The reference's \"Information by Payment Method\" table as the emulator enforces it, one row per",
             "pgcode of the appendix. Made from `emulator/domain/payment_methods.toml`; `oncash`, which the",
             "appendix lists but the table does not, behaves like the voucher rows.", "",
             "Periods are counted on the emulator's clock in KST calendar days: D+N allows cancellation up to",
             "and including the Nth day after the transaction date; \"the day of the transaction\" and \"the month",
             "of the transaction\" are the calendar day and month.", "",
             "| pgcode | name | on the page (ko / en) | recurring | cancel | partial cancel | cancellation period "
             "| minimum (KRW) | service_name required | cup deposit (request / autopay) | cash receipt "
             "| the page asks for | payer's options |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in table().values():
        options = ", ".join(f"`{o.pgcode}` ({windows.describe(o.window)})" if o.window != method.window
                            else f"`{o.pgcode}`" for o in method.options) or ""
        lines.append(
            f"| `{method.pgcode}` | {method.name} | {method.label.ko} / {method.label.en} | {_yes(method.recurring)} "
            f"| {_yes(method.cancel)} | {_yes(method.partial_cancel)} | {windows.describe(method.window)} "
            f"| {method.minimum} | {_yes(method.service_name_required)} "
            f"| {_yes(method.cup_deposit)} / {_yes(method.autopay_cup_deposit)} | {_yes(method.cash_receipt)} "
            f"| {_asks(method)} | {options} |")
    lines += ["", "The payer's cancel on the page redirects to `cancel_url` except for "
              + ", ".join(f"`{m.pgcode}`" for m in table().values() if m.no_cancel_redirect) + ".",
              "", "With `inapp_flag=Y`, the result of "
              + ", ".join(f"`{m.pgcode}`" for m in table().values() if m.in_app_return)
              + " goes to `app_return_url` and the payer's cancel to `app_cancel_url` (ISP card payments and "
              "account transfer, as the reference says).",
              "", "Re-payment with a billkey (`payments/autopay`) of "
              + ", ".join(f"`{m.pgcode}`" for m in table().values() if m.monthly_repayment)
              + " follows the reference's mobile rules: not before 30 days after the billkey, the same amount "
              "as the last payment with it, and a payment with it in the previous calendar month.",
              "", "Verification only (`amount: 0` with `autopay_flag=Y`: a billkey, no payment) is offered for "
              + ", ".join(f"`{code}`" for code in verification_methods())
              + ", the pgcodes of the reference's verification result; other methods are refused (3011)."]
    return "\n".join(lines) + "\n"


def configuration_table() -> str:
    """The table of the settings, made from the declarations as `serve`'s options are."""
    rows = ["| option | environment variable | value | default | what it does |", "|---|---|---|---|---|"]
    for setting in SETTINGS.values():
        option = " / ".join(f"`{flag}`" for flag in (setting.option, setting.off) if flag) or "(environment only)"
        variable = f"`{setting.variable}`" + (" (comma separated)" if setting.many and setting.option else "")
        value = ", ".join(filter(None, (setting.value_name, setting.bound,
                                        "repeatable" if setting.many and setting.option else "")))
        default = f"`{setting.default_text}`" if setting.shown_default is None else setting.default_text
        rows.append(f"| {option} | {variable} | {value} | {default} | {setting.help} |")
    return "\n".join(rows) + "\n"


def configuration() -> str:
    lines = ["# Configuration", "",
             "`payletter-emulator serve [OPTIONS]` (`payletter-emulator serve --help` says the same). Each",
             "option can also come from its environment variable; an option given wins over its variable.",
             "Made from the declarations in `emulator/config.py` (`payletter-emulator docs` writes this page).", "",
             configuration_table(),
             "How many processes `--workers` defaults to, and why: [Serving](serving.md#serving-processes-and-slow-clients).",
             "`--tls` and `--tls-cert`: [HTTPS](https.md). The journal: [the control API](control-api.md).", "",
             "A value is read and checked the same way from an option and from its variable, before anything",
             "starts: a bad one stops `serve` with one line naming the option or the variable, the value and",
             "the rule, and exit status 1 for a variable, 2 for an option (click's usage error):",
             "(`PAYLETTER_EMULATOR_PORT='abc' is not an integer`,",
             "`PAYLETTER_EMULATOR_WORKERS='-1' must be at least 1`). A boolean variable takes",
             "`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; an empty variable counts as unset. In Python,",
             "`payletter_emulator.create_app(db=\":memory:\", strict=True)` gives the same app in-process (the",
             "fields of `payletter_emulator.config.Settings`, checked against the same bounds)."]
    return "\n".join(lines) + "\n"


PAGES = {"error-codes.md": error_codes, "payment-methods.md": payment_methods, "configuration.md": configuration}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in PAGES.items():
        path = folder / name
        path.write_text(make(), "utf-8")
        written.append(path)
    return written
