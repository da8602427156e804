"""`payletter-emulator capture`: a pass-through a merchant points its code at instead of the real
test gateway. Each request goes on to the gateway unchanged and its answer comes back unchanged;
every exchange is written down, keys redacted, as evidence (exchanges.jsonl) and as probe cases
(probes/capture-<start>.yaml) that `payletter-emulator probe --cases` runs as they are. The
gateway's callbacks can come through it too (/_capture/callback), recorded and relayed."""
from __future__ import annotations

import base64
import json
import re
import sys
import threading
from datetime import datetime
from pathlib import Path

import click
import yaml

from ..config import Client
from .probe import ProbeError, check_target, key_options
from .probe_compare import Redactor, redact_url

CALLBACK_PATH = "/_capture/callback"
# Not passed on either way: they describe one connection, or the body as it travelled (requests
# reads it decoded).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "content-encoding"}
ANSWERED_BY_US = {"server", "date"}  # the capture's own server writes these; the gateway's are recorded
LINKED = ("token", "tid", "billkey")  # answer fields a later request may quote: linked, not copied


class Recorder:
    """What the capture writes: each exchange and each callback as a line of JSON, and the probe
    cases made from the exchanges, rewritten after each one (the file is always runnable)."""

    def __init__(self, out: Path, client: Client, upstream: str):
        self.out, self.client, self.upstream = out, client, upstream
        self.started = datetime.now().astimezone()
        self.session = self.started.strftime("%Y%m%d-%H%M%S")
        self.redact = Redactor({"PAYMENT key": client.payment_key, "SEARCH key": client.search_key})
        self.cases: list[dict] = []
        self.steps: list[dict] = []  # each exchange as a step, its links filled in
        self.answers: list[dict] = []
        self.depends: list[list[int]] = []
        self.lock = threading.Lock()
        (out / "probes").mkdir(parents=True, exist_ok=True)

    @property
    def case_file(self) -> Path:
        return self.out / "probes" / f"capture-{self.session}.yaml"

    def exchange(self, method: str, path: str, query: list[tuple[str, str]], headers: dict, body: bytes,
                 status: int | None, answer_headers: dict, answer: bytes, error: str = "") -> None:
        with self.lock:
            number = len(self.steps) + 1
            moment = datetime.now().astimezone().isoformat(timespec="seconds")
            auth, unrecognised = self._auth(headers.get("Authorization"))
            record = {"n": number, "time": moment, "upstream": redact_url(self.upstream),
                      "request": {"method": method, "path": path, "query": query, "headers": headers,
                                  "body": _text_or_base64(body)},
                      "answer": {"status": status, "headers": answer_headers, "body": _text_or_base64(answer)}
                      if not error else {"error": error}}
            self._append("exchanges.jsonl", record, extra=unrecognised)
            step, depends = self._step(number, method, path, query, headers.get("Content-Type"), body, auth)
            self.steps.append(step)
            self.depends.append(depends)
            try:
                document = json.loads(answer.decode("utf-8")) if not error else None
            except ValueError:
                document = None
            self.answers.append(document if isinstance(document, dict) else {})
            what = "an unrecognised key, replayed as a key no gateway issued; " if unrecognised else ""
            self.cases.append({
                "id": f"capture-{self.session}-{number:03d}",
                "description": f"{method} {path} as captured at {moment}: {what}"
                               f"the gateway answered {status if not error else 'nothing (' + error + ')'}",
                "evidence": f"payletter-emulator capture from {redact_url(self.upstream)}, exchanges.jsonl line {number}",
                "steps": [*({**self.steps[i], "name": f"e{i + 1}", "compare": False} for i in self._closure(depends)),
                          step]})
            self._write_cases()
        click.echo(self.redact(f"{number:>4}  {method} {path} -> {status if not error else error}"), err=True)

    def callback(self, path: str, headers: dict, body: bytes, relayed_to: str, status: int | None, answer: bytes,
                 error: str = "") -> None:
        with self.lock:
            self._append("callbacks.jsonl", {
                "time": datetime.now().astimezone().isoformat(timespec="seconds"), "path": path,
                "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
                "body": _text_or_base64(body), "relayed_to": redact_url(relayed_to) if relayed_to else None,
                "merchant_answer": {"status": status, "body": _text_or_base64(answer)} if not error else {"error": error}})

    def _auth(self, header: str | None):
        """The step's `auth` for this Authorization header, and the header when it holds a key
        the capture does not know (redacted all the same)."""
        if header is None:
            return "none", ""
        keys = {"payment": self.client.payment_key, "search": self.client.search_key}
        for name, key in keys.items():
            if header == f"PLKEY {key}":
                return name, ""
        for name, key in keys.items():
            if key in header:
                return {"header": header.replace(key, "{{" + name + "_key}}")}, ""
        return "invalid", header

    def _step(self, number, method, path, query, content_type, body, auth) -> tuple[dict, list[int]]:
        depends: set[int] = set()

        def link(value):
            if isinstance(value, str):
                for index, answer in enumerate(self.answers):
                    for field in LINKED:
                        made = answer.get(field)
                        if made not in (None, "") and str(made) in value:
                            depends.add(index)
                            whole = value == str(made)
                            template = "{{steps.e%d.%s}}" % (index + 1, field)
                            return template if whole and isinstance(made, str) else value.replace(str(made), template)
                return self._client_id(value)
            if isinstance(value, int) and not isinstance(value, bool):
                for index, answer in enumerate(self.answers):
                    if answer.get("token") == value:
                        depends.add(index)
                        return "{{steps.e%d.token}}" % (index + 1)
            if isinstance(value, list):
                return [link(item) for item in value]
            if isinstance(value, dict):
                return {key: (link(item) if key.lower() != "client_id" or item != self.client.client_id
                              else "{{client_id}}") for key, item in value.items()}
            return value

        step = {"method": method, "path": link(path), "auth": auth}
        if query:
            step["query"] = {key: (link(value) if key.lower() != "client_id" or value != self.client.client_id
                                   else "{{client_id}}") for key, value in query}
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                step["base64"] = base64.b64encode(body).decode("ascii")
            else:
                try:
                    step["json"] = link(json.loads(text))
                except ValueError:
                    step["text"] = text
        if content_type and (body or content_type != "application/json"):
            step["content_type"] = content_type
        return step, sorted(depends)

    def _client_id(self, text: str) -> str:
        """A tid of the capture's client names it: `tpay_test-...` replays as the probe's own."""
        return re.sub(rf"\bt{re.escape(self.client.client_id)}-(?=\d{{15}}\b)", "t{{client_id}}-", text)

    def _closure(self, depends: list[int]) -> list[int]:
        found: set[int] = set()
        pending = list(depends)
        while pending:
            index = pending.pop()
            if index not in found:
                found.add(index)
                pending += self.depends[index]
        return sorted(found)

    def _write_cases(self) -> None:
        document = {"version": 1, "name": f"capture {self.session}",
                    "description": f"Exchanges captured from {redact_url(self.upstream)} from {self.started:%Y-%m-%d %H:%M:%S %Z}.",
                    "cases": self.cases}
        text = self.redact(yaml.dump(json.loads(json.dumps(document)), Dumper=_Dumper, allow_unicode=True,
                                     sort_keys=False, width=110))
        partial = self.case_file.with_suffix(".yaml.part")
        partial.write_text(text, "utf-8")
        partial.replace(self.case_file)  # a probe reading it never sees half a file

    def _append(self, name: str, record: dict, extra: str = "") -> None:
        text = self.redact(json.dumps(record, ensure_ascii=False))
        if extra:
            text = text.replace(json.dumps(extra)[1:-1], "[unrecognised key]")
        with open(self.out / name, "a", encoding="utf-8") as file:
            file.write(text + "\n")


class _Dumper(yaml.SafeDumper):
    """YAML as a person reads it: a body of several lines as a block, as it was sent."""


def _text(dumper: yaml.SafeDumper, value: str):
    block = "\n" in value and not any(line != line.rstrip() for line in value.split("\n"))
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if block else None)


_Dumper.add_representer(str, _text)


def _text_or_base64(body: bytes):
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}


def make_app(upstream: str, recorder: Recorder, *, callback_relay: str | None, timeout: float):
    """The WSGI app of the pass-through."""
    import requests
    from werkzeug.wrappers import Request, Response

    session = requests.Session()
    session.trust_env = False

    @Request.application
    def app(request: Request) -> Response:
        body = request.get_data(cache=False)
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_BY_HOP}
        if request.path == CALLBACK_PATH or request.path.startswith(CALLBACK_PATH + "/"):
            return _relay_callback(request, headers, body)
        query = request.query_string.decode("latin-1")
        url = upstream + request.path + (f"?{query}" if query else "")
        try:
            answer = session.request(request.method, url, headers={**headers, "Accept-Encoding": "identity"},
                                     data=body or None, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            error = recorder.redact(f"{type(exc).__name__}: {exc}")
            recorder.exchange(request.method, request.path, list(request.args.items(multi=True)), headers, body,
                              None, {}, b"", error=error)
            return Response(json.dumps({"code": 999, "message": f"capture: the gateway did not answer: {error}"}),
                            status=502, content_type="application/json")
        kept = {key: value for key, value in answer.headers.items() if key.lower() not in HOP_BY_HOP}
        recorder.exchange(request.method, request.path, list(request.args.items(multi=True)), headers, body,
                          answer.status_code, kept, answer.content)
        passed = [(key, value) for key, value in kept.items() if key.lower() not in ANSWERED_BY_US]
        return Response(answer.content, status=answer.status_code, headers=passed)

    def _relay_callback(request, headers, body):
        if not callback_relay:
            recorder.callback(request.path, headers, body, "", None, b"", error="no --callback-relay")
            # Not acknowledged: the gateway keeps retrying, so the merchant can still receive it.
            return Response(json.dumps({"code": 1, "message": "recorded by capture; nowhere to relay it"}),
                            status=200, content_type="application/json")
        try:
            answer = session.post(callback_relay, data=body, timeout=timeout,
                                  headers={"Content-Type": headers.get("Content-Type", "application/json")})
        except requests.RequestException as exc:
            recorder.callback(request.path, headers, body, callback_relay, None, b"", error=str(exc))
            return Response(json.dumps({"code": 1, "message": "capture: the merchant did not answer"}), status=502,
                            content_type="application/json")
        recorder.callback(request.path, headers, body, callback_relay, answer.status_code, answer.content)
        return Response(answer.content, status=answer.status_code,
                        content_type=answer.headers.get("Content-Type", "application/json"))

    return app


@click.command("capture")
@click.option("--upstream", required=True, metavar="URL",
              help="The gateway requests go on to: https://testpgapi.payletter.com. The live gateway "
                   "(pgapi.payletter.com) is refused without --allow-live.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8090, show_default=True,
              help="Port to listen on; 0 picks a free one (printed).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Where the exchanges (exchanges.jsonl), the callbacks (callbacks.jsonl) and the probe cases "
                   "(probes/capture-<start>.yaml) are written.")
@key_options
@click.option("--callback-relay", metavar="URL",
              help="Where a callback the gateway sends to /_capture/callback goes on to (the merchant's "
                   "callback_url); its answer goes back to the gateway [default: recorded, not acknowledged].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds the gateway (or the merchant) may take to answer.")
@click.option("--allow-live", is_flag=True, help="Allow the live gateway (pgapi.payletter.com) upstream: real money.")
def capture_command(upstream, port, host, out, client_id, payment_key, search_key, callback_relay, timeout, allow_live):
    """Stand between a merchant's code and the real test gateway, and write down what it says.

    \b
    Point the merchant's gateway URL at http://HOST:PORT: each request goes on to --upstream as it
    came, and the gateway's answer comes back unchanged (status, headers that matter, body bytes).
    Every exchange is written down in --out DIR, with the keys redacted:
      exchanges.jsonl             the exchanges, as evidence for docs/fidelity.md
      probes/capture-<start>.yaml probe cases: payletter-emulator probe --cases DIR/probes
    A later request that quotes a token, tid or billkey an earlier answer gave gets that request
    as a step before it, so each case runs alone. Callbacks: give the gateway
    http(s)://PUBLIC-HOST/_capture/callback as callback_url (the test gateway calls ports 80 and
    443 only) and --callback-relay the merchant's own; each is written to callbacks.jsonl.

    \b
    Safety: the live gateway is refused without --allow-live; the keys (--payment-key,
    --search-key, or PAYLETTER_PROBE_*; pay_test's by default) and any other Authorization
    value never reach a file or the terminal. Stop with Ctrl-C.
    """
    try:
        upstream = check_target(upstream, allow_live=allow_live, what="--upstream")
        if callback_relay:
            check_target(callback_relay, allow_live=True, what="--callback-relay")
    except ProbeError as exc:
        raise click.UsageError(str(exc)) from None
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the capture says a line per exchange itself
    recorder = Recorder(Path(out), Client(client_id, payment_key, search_key), upstream)
    app = make_app(upstream, recorder, callback_relay=callback_relay, timeout=timeout)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    click.echo(f"capture listening on http://{host}:{server.server_port}, passing on to {redact_url(upstream)}")
    click.echo(f"  callbacks:   http://{host}:{server.server_port}{CALLBACK_PATH}"
               + (f" -> {redact_url(callback_relay)}" if callback_relay else " (recorded, not relayed)"))
    click.echo(f"  exchanges:   {Path(out) / 'exchanges.jsonl'}")
    click.echo(f"  probe cases: {recorder.case_file}")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(main: click.Group) -> None:
    main.add_command(capture_command)
