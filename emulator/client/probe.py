"""`payletter-emulator probe`: the same requests sent to a gateway (the real test gateway, or a
stand-in) and to the emulator, their answers compared field by field (probe_compare.py), and
every difference that docs/fidelity.md does not list as known reported and failed on."""
from __future__ import annotations

import base64
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import click

from ..config import PAY_TEST, Client, is_loopback_host
from .probe_cases import Case, CaseError, Prepared, Values, load, prepare, step_name
from .probe_compare import Answer, Difference, Redactor, compare, explain, read_known, redact_url

LIVE_HOST = "pgapi.payletter.com"  # the live gateway: real money; refused unless --allow-live
REMOTE_PACE = 0.5  # seconds between two requests to a gateway that is not on this machine
IDENTIFIERS = ("token", "tid", "cid", "billkey")  # what a side makes for itself: normalised in messages
ENV = "PAYLETTER_PROBE_"  # the probe's own variables, apart from the emulator's PAYLETTER_EMULATOR_*


class ProbeError(Exception):
    """The probe cannot run: a refused host, unusable case files, an emulator that does not start."""


def is_live(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower().rstrip(".") == LIVE_HOST


def is_local(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def check_target(url: str, *, allow_live: bool, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"{what} {redact_url(url)!r} is not an http(s) URL")
    if is_live(url) and not allow_live:
        raise ProbeError(f"{what} is the live gateway ({LIVE_HOST}): real payments, real money. The probe "
                         f"and the capture use the test gateway; give --allow-live to mean it")
    return url.rstrip("/")


class Target:
    """One side of the comparison: a base URL, spoken to one request at a time, paced."""

    def __init__(self, name: str, base_url: str, *, pace: float, timeout: float, redact: Redactor):
        import requests

        self.name, self.base_url, self.pace, self.timeout, self.redact = name, base_url, pace, timeout, redact
        self.session = requests.Session()
        self.session.trust_env = False  # the probe talks to the URL it was given, not through a proxy
        self._last = 0.0

    def send(self, request: Prepared) -> tuple[dict, Answer]:
        """The exchange as it is written down (redacted), and the answer."""
        import requests

        url = self.base_url + request.path
        shown = {"method": request.method, "url": self.redact(url), "query": request.query,
                 "headers": {k: self.redact(v) for k, v in request.headers.items()}, "body": _body_text(request.body)}
        self._wait_turn()
        try:
            response = self.session.request(request.method, url, params=request.query or None,
                                            headers=request.headers, data=request.body, timeout=self.timeout,
                                            allow_redirects=False)
        except requests.RequestException as exc:
            answer = Answer(error=self.redact(f"{type(exc).__name__}: {exc}"))
            return {"request": _redacted(shown, self.redact), "answer": {"error": answer.error}}, answer
        finally:
            self._last = time.monotonic()
        text = self.redact(response.content.decode("utf-8", errors="replace"))
        try:
            document, is_json = json.loads(text), True
        except ValueError:
            document, is_json = None, False
        answer = Answer(status=response.status_code, content_type=response.headers.get("Content-Type", ""),
                        text=text, json=document, is_json=is_json)
        written = {"status": answer.status, "content_type": answer.content_type, "body": text}
        return {"request": _redacted(shown, self.redact), "answer": written}, answer

    def _wait_turn(self) -> None:
        """Pacing: a gateway shared with every merchant is not hammered."""
        if self.pace:
            time.sleep(max(0.0, self._last + self.pace - time.monotonic()))

    def payer(self, action: str, token, url: str) -> str:
        """Play the payer's part; an error text when it could not be played."""
        raise NotImplementedError


class EmulatorTarget(Target):
    """The emulator: the payer's part is played through its control API."""

    def payer(self, action: str, token, url: str) -> str:
        import requests

        path = f"/_emulator/payments/{token}/" + ("approve" if action == "approve" else "abandon")
        self._wait_turn()
        try:
            answer = self.session.post(self.base_url + path, json={} if action == "approve" else None,
                                       timeout=self.timeout)
        except requests.RequestException as exc:
            return f"the control API did not answer: {exc}"
        finally:
            self._last = time.monotonic()
        return "" if answer.status_code == 200 else f"the control API refused the payer's part: {answer.text[:200]}"


class GatewayTarget(Target):
    """The gateway: a person plays the payer on its page (--interactive)."""

    def __init__(self, *args, ask: Callable[[str], str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ask = ask

    def payer(self, action: str, token, url: str) -> str:
        if self.ask is None:
            return "needs a payer (probe --interactive)"
        what = "pay with a test card" if action == "approve" else "press the page's cancel button"
        reply = self.ask(f"payer: open {url or f'the payment page of token {token}'} and {what}; "
                         f"then press Enter (or type skip)")
        return "the person skipped the payer's part" if reply.strip().lower() == "skip" else ""


@dataclass
class CaseResult:
    case: Case
    result: str = "same"  # same, known, differs, not run, error
    differences: list[Difference] = field(default_factory=list)
    exchanges: dict[str, list] = field(default_factory=lambda: {"gateway": [], "emulator": []})
    note: str = ""


def run_side(case: Case, target: Target, values: Values) -> tuple[list[Answer | None], list[dict], str]:
    """The case's steps on one side, then its cleanup: the answers (None for a payer's step),
    the exchanges, and why the case stopped early (empty when it ran through)."""
    answers: list[Answer | None] = []
    exchanges: list[dict] = []
    stopped = ""
    for index, step in enumerate(case.steps):
        name = step_name(step, index)
        try:
            if "payer" in step:
                problem = target.payer(step["payer"], values.fill(step["token"]), str(values.fill(step.get("url", ""))))
                exchanges.append({"step": name, "payer": step["payer"], "result": problem or "done"})
                if problem:
                    stopped = problem
                    break
                answers.append(None)
                continue
            request = prepare(step, values)
        except CaseError as exc:
            answers.append(Answer(error=f"the step cannot be made: {exc}", made=False))
            exchanges.append({"step": name, "error": str(exc)})
            continue
        exchange, answer = target.send(request)
        answer = Answer(**{**answer.__dict__, "own_values": _own_values(values.steps)})
        exchanges.append({"step": name, **exchange})
        answers.append(answer)
        values.steps[name] = answer.json if isinstance(answer.json, dict) else {}
    for step in case.cleanup:
        try:
            exchange, _ = target.send(prepare(step, values))
            exchanges.append({"step": "cleanup", **exchange})
        except CaseError as exc:
            exchanges.append({"step": "cleanup", "error": f"not made: {exc}"})
    return answers, exchanges, stopped


def _own_values(steps: dict) -> tuple[str, ...]:
    return tuple(str(answer[key]) for answer in steps.values() if isinstance(answer, dict)
                 for key in IDENTIFIERS if answer.get(key) not in (None, ""))


def run_case(case: Case, gateway: Target, emulator: Target, make_values: Callable[[], Values], known) -> CaseResult:
    outcome = CaseResult(case)
    if case.needs_payer and isinstance(gateway, GatewayTarget) and gateway.ask is None:
        outcome.result, outcome.note = "not run", "needs a payer on the gateway's page: probe --interactive"
        return outcome
    on_gateway, outcome.exchanges["gateway"], stopped = run_side(case, gateway, make_values())
    if stopped:
        outcome.result, outcome.note = "not run", stopped
        return outcome
    on_emulator, outcome.exchanges["emulator"], stopped = run_side(case, emulator, make_values())
    if stopped:
        outcome.result, outcome.note = "error", f"emulator: {stopped}"
        return outcome
    unanswered = [a.error for a in on_gateway if a is not None and a.error and a.made]
    if unanswered:
        outcome.result, outcome.note = "error", f"the gateway did not answer: {unanswered[0]}"
        return outcome
    for index, step in enumerate(case.steps):
        if "payer" in step or not step.get("compare", True):
            continue
        found = compare(case.id, step_name(step, index), on_gateway[index], on_emulator[index],
                        tuple(step.get("equal", ())))
        outcome.differences += [explain(difference, known) for difference in found]
    if any(not difference.known for difference in outcome.differences):
        outcome.result = "differs"
    elif outcome.differences:
        outcome.result = "known"
    return outcome


@dataclass
class Run:
    against: str
    emulator: str
    started: str
    results: list[CaseResult]
    pace: dict[str, float]

    @property
    def failed(self) -> bool:
        return any(result.result in ("differs", "error") for result in self.results)


def probe(*, against: str, client: Client, cases: list[Case], known, emulator_url: str | None = None,
          pace: float | None = None, timeout: float = 30.0, ask: Callable[[str], str] | None = None,
          allow_live: bool = False, on_case: Callable[[CaseResult], None] | None = None) -> Run:
    """Run every case against the gateway and the emulator (a running one, or one started here)."""
    from ..domain.clock import KST

    against = check_target(against, allow_live=allow_live, what="--against")
    redact = Redactor({"PAYMENT key": client.payment_key, "SEARCH key": client.search_key})
    stop = None
    if emulator_url is None:
        emulator_url, stop = start_emulator(client)
    else:
        emulator_url = check_target(emulator_url, allow_live=allow_live, what="--emulator")
    paces = {url: (pace if pace is not None else (0.0 if is_local(url) else REMOTE_PACE))
             for url in (against, emulator_url)}
    gateway = GatewayTarget("gateway", against, pace=paces[against], timeout=timeout, redact=redact, ask=ask)
    emulator = EmulatorTarget("emulator", emulator_url, pace=paces[emulator_url], timeout=timeout, redact=redact)
    now = datetime.now(KST)
    unique = now.strftime("%y%m%d%H%M%S")
    keys = {"payment_key": client.payment_key, "search_key": client.search_key}

    def make_values() -> Values:
        return Values(client_id=client.client_id, unique=unique, today=datetime.now(KST).strftime("%Y%m%d"), keys=keys)

    results = []
    try:
        for case in cases:
            result = run_case(case, gateway, emulator, make_values, known)
            results.append(result)
            if on_case:
                on_case(result)
    finally:
        if stop:
            stop()
    return Run(against=redact(redact_url(against)), emulator="started by the probe (in memory)" if stop
               else redact(redact_url(emulator_url)), started=now.strftime("%Y-%m-%d %H:%M:%S KST"),
               results=results, pace={"gateway": paces[against], "emulator": paces[emulator_url]})


def start_emulator(client: Client) -> tuple[str, Callable[[], None]]:
    """An emulator in memory on a free port of this machine, in a thread, that knows the
    probe's client. It never sends a callback: the probe compares answers, and a case's
    callback_url is the merchant's (its host is the one allowed, and no case uses it)."""
    import logging

    from .. import create_app
    from .app_server import serve_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request would bury the report
    clients = (client,) if client.client_id == PAY_TEST.client_id else (PAY_TEST, client)
    app = create_app(db=":memory:", clients=clients, callback_hosts=("callbacks.probe.invalid",))
    return serve_app(app)


def _body_text(body: bytes | None):
    if body is None:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}


def _redacted(document: dict, redact: Redactor) -> dict:
    return json.loads(redact(json.dumps(document, ensure_ascii=False)))


# --- the command --------------------------------------------------------------------------------

def key_options(command):
    """--client-id, --payment-key, --search-key: the probe's and the capture's, from PAYLETTER_PROBE_*,
    the reference's public pay_test client by default. No default is ever shown: it is a key."""
    command = click.option("--search-key", envvar=ENV + "SEARCH_KEY", default=PAY_TEST.search_key, show_default=False,
                           metavar="KEY", help=f"The client's SEARCH key [env {ENV}SEARCH_KEY; default: pay_test's].")(command)
    command = click.option("--payment-key", envvar=ENV + "PAYMENT_KEY", default=PAY_TEST.payment_key,
                           show_default=False, metavar="KEY",
                           help=f"The client's PAYMENT key [env {ENV}PAYMENT_KEY; default: pay_test's].")(command)
    return click.option("--client-id", envvar=ENV + "CLIENT_ID", default=PAY_TEST.client_id, show_default=False,
                        help=f"The client the keys belong to [env {ENV}CLIENT_ID; default: pay_test, the "
                             f"reference's public test client].")(command)


@click.command("probe")
@click.option("--against", required=True, metavar="URL",
              help="The gateway to compare with: https://testpgapi.payletter.com (the public test gateway), or a "
                   "stand-in. The live gateway (pgapi.payletter.com) is refused without --allow-live.")
@key_options
@click.option("--emulator", "emulator_url", metavar="URL",
              help="A running emulator to compare [default: one started by the probe, in memory].")
@click.option("--cases", "case_paths", multiple=True, type=click.Path(exists=True),
              help="A case file or a folder of them; repeatable [default: the shipped probes/].")
@click.option("--case", "selected", multiple=True, metavar="GLOB",
              help="Run only the cases whose id matches (request-*); repeatable [default: all].")
@click.option("--known", "known_page", type=click.Path(exists=True, dir_okay=False),
              help="The page whose 'Known differences' table excuses differences [default: docs/fidelity.md].")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Write the report there too: report.json and report.md.")
@click.option("--pace", type=click.FloatRange(min=0), metavar="SECONDS",
              help=f"Seconds between two requests to one side [default: {REMOTE_PACE} to a remote host, "
                   f"none to this machine].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds one request may take.")
@click.option("--interactive", is_flag=True,
              help="Run the cases that need a payer: the probe shows the gateway's payment page and waits "
                   "while you pay or cancel on it [default: such cases are listed as not run].")
@click.option("--allow-live", is_flag=True, help="Allow the live gateway (pgapi.payletter.com): real money.")
def probe_command(against, client_id, payment_key, search_key, emulator_url, case_paths, selected, known_page,
                  out, pace, timeout, interactive, allow_live):
    """Compare the emulator with a Payletter gateway: each probe case (probes/*.yaml) is sent to
    both, and their answers are compared: the HTTP status, `code`, `message`, the keys (which,
    and their order), the JSON types, and the formats (tid, token, cid, dates, uppercase payhash,
    URLs). Values that differ by nature (tokens, tids, dates, amounts) are compared by format only.

    \b
    Against:  --against URL (the public test gateway: https://testpgapi.payletter.com), with the
              reference's public pay_test client and keys unless --client-id, --payment-key,
              --search-key (or PAYLETTER_PROBE_CLIENT_ID, _PAYMENT_KEY, _SEARCH_KEY) say otherwise.
    Safety:   the live gateway is refused without --allow-live; keys never appear in what is
              printed or written (the Authorization header and every key value are redacted);
              requests to a remote host are paced (--pace, 0.5 s); a case cancels what it made
              where the API allows (its cleanup steps).
    Output:   a table here; with --out DIR, report.json (every exchange, redacted) and report.md.
    Exit:     0 when every difference is listed in docs/fidelity.md's "Known differences",
              1 when one is not (or the gateway did not answer), 2 on a usage error.
    """
    client = Client(client_id, payment_key, search_key)
    redact = Redactor({"PAYMENT key": payment_key, "SEARCH key": search_key})
    from ..resources import fidelity_page
    from .probe_report import markdown, report_json, summary_line, table, write_case_line

    try:
        cases = load(list(case_paths) or None, tuple(selected))
        known = read_known(Path(known_page) if known_page else fidelity_page())
    except (CaseError, ValueError, OSError) as exc:
        raise click.UsageError(redact(str(exc))) from None
    if not cases:
        raise click.UsageError("no case matches " + ", ".join(selected))
    ask = _ask if interactive else None
    try:
        run = probe(against=against, client=client, cases=cases, known=known, emulator_url=emulator_url, pace=pace,
                    timeout=timeout, ask=ask, allow_live=allow_live,
                    on_case=lambda result: click.echo(redact(write_case_line(result)), err=True))
    except ProbeError as exc:
        raise click.UsageError(redact(str(exc))) from None
    click.echo(redact(table(run)))
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(redact(report_json(run)), "utf-8")
        (folder / "report.md").write_text(redact(markdown(run)), "utf-8")
        click.echo(f"wrote {folder / 'report.json'} and {folder / 'report.md'}")
    click.echo(redact(summary_line(run)))
    sys.exit(1 if run.failed else 0)


def _ask(prompt: str) -> str:
    click.echo(prompt, err=True)
    line = sys.stdin.readline()
    if not line:
        return "skip"  # no one at the keyboard: stdin closed
    return line


def register(main: click.Group) -> None:
    main.add_command(probe_command)
