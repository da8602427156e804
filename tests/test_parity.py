"""`payletter-emulator probe` and `capture`, run as users run them, against a stand-in for the real
test gateway (tests/parity_standin.py) that answers from stored real answers
(tests/parity_fixtures/, docs/fidelity.md's evidence): no network here."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from payletter_emulator.client.probe import REMOTE_PACE, is_local
from payletter_emulator.client.probe_cases import load, read
from payletter_emulator.client.probe_compare import Difference, explain, read_known
from payletter_emulator.domain.methods import table
from payletter_emulator.web.operations import OPERATIONS

from .conftest import ACK, PAYMENT_KEY, SEARCH_KEY, CallbackReceiver, serve_receiver
from .doc_blocks import doc_block
from .parity_standin import FIXTURES, StandIn, fixtures, serve
from .test_fidelity import php_shop_body

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "payletter-emulator")
# The reference's third key (its receipt/info example, client sktest1): a key the capture does not know.
OTHER_KEY = "NDhBNDJGNUY0QzI5RjY5NjAwMDdDREI0Q0Q4RDVGOTY=="
# The cases whose gateway answer is stored (docs/fidelity.md entries 1, 3, 4, 8 and 12).
CAPTURED = ("request-creditcard", "request-trailing-comma", "request-length-user-name-22",
            "request-amount-as-string", "request-body-not-utf8", "unknown-path")


def environment(**extra: str) -> dict:
    """This machine's environment without the caller's probe settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PAYLETTER_PROBE_")}, **extra}


def run(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, timeout=600,
                          env=env or environment())


def probe(stand_in: StandIn, out: Path, *args: str, stdin: str = "") -> tuple[subprocess.CompletedProcess, dict]:
    done = run("probe", "--against", stand_in.url, "--out", str(out), *args, stdin=stdin)
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads((out / "report.json").read_text("utf-8")) if (out / "report.json").exists() else {}
    return done, report


def cases(*ids: str) -> list[str]:
    return [argument for case_id in ids for argument in ("--case", case_id)]


def results(report: dict) -> dict:
    return {case["id"]: case["result"] for case in report["cases"]}


@pytest.fixture
def stand_in():
    gateway = StandIn({"payment": PAYMENT_KEY, "search": SEARCH_KEY})
    server = serve(gateway)
    yield gateway
    server.shutdown()
    server.server_close()


# --- the probe against stored answers --------------------------------------------------------------

def test_the_probe_finds_no_difference_from_the_stored_answers(stand_in, tmp_path):
    done, report = probe(stand_in, tmp_path, *cases(*CAPTURED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(report) == {**{case: "same" for case in CAPTURED}, "unknown-path": "known"}
    # The one known difference is docs/fidelity.md's row: the 996 message names the path (decided).
    [known] = [d for case in report["cases"] for d in case["differences"]]
    assert (known["case"], known["field"], known["kind"]) == ("unknown-path", "$.message", "message")
    assert "entry 12" in known["known"]
    # Each case reached the gateway's side: the stand-in was asked once per case.
    assert len(stand_in.received) == len(CAPTURED)
    assert "probe ok: 6 cases (5 same, 1 known)" in done.stdout
    assert "| `request-body-not-utf8` | same |" in (tmp_path / "report.md").read_text("utf-8")


def test_a_case_that_needs_a_payer_runs_with_a_person_at_the_keyboard(stand_in, tmp_path):
    done, report = probe(stand_in, tmp_path / "alone", *cases("status-after-approval"))
    assert done.returncode == 0 and results(report) == {"status-after-approval": "not run"}
    assert stand_in.received == []  # not even the request: a case runs whole or not at all

    done, report = probe(stand_in, tmp_path / "person", *cases("status-after-approval"), "--interactive", stdin="\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(report) == {"status-after-approval": "same"}  # status_code 5 on both sides, as captured
    assert ("payer: open https://testpg.payletter.com/pgsvc/hub.asp?location=online&token=158373076896800062 "
            "and pay with a test card") in done.stderr
    # The emulator's payer approved through its control API; the cleanup cancelled on both sides.
    [case] = report["cases"]
    assert [e.get("payer") or e["request"]["url"].split("/v1.0/")[-1] for e in case["exchanges"]["emulator"]] == [
        "payments/request", "approve", "payments/status", "payments/cancel"]
    assert [r["path"] for r in stand_in.received] == ["/v1.0/payments/request", "/v1.0/payments/status",
                                                       "/v1.0/payments/cancel"]


ALTERATIONS = {
    # name: (fixture file, how its answer is altered, the field the report must name, the kind)
    "a key missing": ("payments-request-accepted.json",
                      lambda a: {k: v for k, v in a.items() if k != "mobile_url"}, "$.mobile_url", "extra"),
    "a key added": ("payments-request-accepted.json", lambda a: {**a, "code": 0}, "$.code", "missing"),
    "a type changed": ("payments-request-accepted.json", lambda a: {**a, "token": str(a["token"])}, "$.token", "type"),
    "a code changed": ("payments-request-not-utf8.json", lambda a: {**a, "code": 996}, "$.code", "code"),
    "a message changed": ("payments-request-not-utf8.json",
                          lambda a: {**a, "message": a["message"].replace("367", "368")}, "$.message", "message"),
    "keys reordered": ("payments-request-accepted.json",
                       lambda a: {"online_url": a["online_url"], "token": a["token"], "mobile_url": a["mobile_url"]},
                       "$", "order"),
}


@pytest.mark.parametrize("alteration", ALTERATIONS)
def test_an_altered_answer_is_reported_with_its_field(stand_in, tmp_path, alteration):
    name, alter, field, kind = ALTERATIONS[alteration]
    for fixture in stand_in.answers:
        if fixture["file"] == name:
            fixture["body"] = json.dumps(alter(json.loads(fixture["body"])), ensure_ascii=False, separators=(",", ":"))
    case = "request-creditcard" if "accepted" in name else "request-body-not-utf8"
    done, report = probe(stand_in, tmp_path, *cases(case))
    assert done.returncode == 1, done.stdout + done.stderr
    [difference] = report["cases"][0]["differences"]
    assert (difference["case"], difference["field"], difference["kind"], difference["known"]) == (case, field, kind, "")
    # Named in the terminal's table and in report.md too.
    [row] = [line for line in done.stdout.splitlines() if line.startswith(case + "  step1")]
    assert row.split()[2:4] == [field, kind]
    assert f"| `{case}` | step1 | `{field}` | {kind} |" in (tmp_path / "report.md").read_text("utf-8")
    assert "probe FAILED" in done.stdout


def test_the_probe_against_another_emulator_finds_every_shipped_case_the_same(api, tmp_path):
    """The emulator served as users serve it, as the gateway: what differs by nature (tokens, tids,
    dates, URLs' hosts) is not a difference, and every shipped case can be made and sent."""
    done = run("probe", "--against", api.url, "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    found = results(report)
    assert len(found) == len(load()) >= 150
    assert {case for case, result in found.items() if result != "same"} == {
        "cancel-card-payment", "status-after-approval", "status-after-payer-cancel"}  # each needs a payer
    assert report["pace"] == {"gateway": 0.0, "emulator": 0.0}  # both on this machine: not paced


def test_a_running_emulator_can_stand_in_for_the_one_the_probe_starts(api, stand_in, tmp_path):
    done, report = probe(stand_in, tmp_path, "--emulator", api.url, *cases("request-creditcard"), "--pace", "0.01")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(report) == {"request-creditcard": "same"} and report["pace"]["gateway"] == 0.01
    assert api.control("/payments", method="GET")["payments"][0]["pgcode"] == "creditcard"


# --- the cases --------------------------------------------------------------------------------------

def test_the_shipped_cases_cover_every_endpoint_and_method():
    ids = {case.id for case in load()}
    endpoints = {op.path for op in OPERATIONS if op.key and op.key != "GLOBAL"}  # the probe is the domestic gateway's
    asked = {step["path"].split("/t{{")[0] for case in load() if case.id.startswith("auth-")
             for step in case.steps if step.get("auth") == "none"}
    assert {path.replace("/{tid}", "") for path in endpoints} == {path.removesuffix("/") for path in asked}
    for method in table().values():
        assert f"request-{method.pgcode}" in ids
        assert f"request-below-minimum-{method.pgcode}" in ids or f"request-at-minimum-{method.pgcode}" in ids
    assert {"status-after-payer-cancel", "request-body-not-utf8", "request-trailing-comma",
            "request-length-user-name-over"} <= ids


def test_a_broken_case_file_is_refused_with_the_place_and_the_rule(stand_in, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\ncases:\n  - id: no-auth\n    steps:\n"
                      "      - method: POST\n        path: /v1.0/payments/request\n")
    done = run("probe", "--against", stand_in.url, "--cases", str(broken))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cases[0].steps[0]" in done.stderr and stand_in.received == []


def test_a_known_row_names_a_field_inside_a_list(tmp_path):
    page = tmp_path / "fidelity.md"
    page.write_text("# x\n\n## Known differences\n\n| case | field | difference | evidence |\n|---|---|---|---|\n"
                    "| `list-*` | `$.list[].cid` | the row's cid | a capture |\n\n## After\n| `x` | `y` | z | w |\n")
    [row] = read_known(page)
    shown = Difference("list-today-settle", "step1", "$.list[].cid", "format", "digits(7)", "digits(20)")
    assert explain(shown, [row]).known == "the row's cid"
    assert explain(Difference("list-today-settle", "step1", "$.list[].tid", "format", "", ""), [row]).known == ""


def test_a_gateway_that_does_not_answer_is_an_error_not_a_difference(tmp_path):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: refused
        done = run("probe", "--against", url, "--case", "request-creditcard", "--out", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [case] = json.loads((tmp_path / "report.json").read_text("utf-8"))["cases"]
    assert case["result"] == "error" and case["differences"] == []
    assert case["note"].startswith("the gateway did not answer: ConnectionError")


# --- safety -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["probe", "--against"], ["capture", "--out", "unused", "--upstream"]])
def test_the_live_gateway_is_refused_unless_allowed(command, tmp_path):
    for url in ("https://pgapi.payletter.com", "https://PGAPI.payletter.com./v1.0"):
        done = subprocess.run([CLI, *command, url], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env=environment())
        assert done.returncode == 2 and "live gateway (pgapi.payletter.com)" in done.stderr
        assert "--allow-live" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "unused").exists()


def test_requests_to_a_remote_gateway_are_paced():
    assert REMOTE_PACE >= 0.5
    assert not is_local("https://testpgapi.payletter.com") and is_local("http://127.0.0.1:9") and is_local(
        "http://localhost:8080") and is_local("http://[::1]:8080")


# --- the capture --------------------------------------------------------------------------------------

class Capture:
    """`payletter-emulator capture --port 0` in front of a gateway; ready once it says where it listens."""

    def __init__(self, upstream: str, out: Path, *args: str):
        self.process = subprocess.Popen([CLI, "capture", "--upstream", upstream, "--port", "0", "--out", str(out),
                                         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=environment())
        line = self.process.stdout.readline()
        assert "capture listening on" in line, line + self.process.stderr.read()
        self.url = line.split("listening on ")[1].split(",")[0]

    def stop(self) -> tuple[str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, err
        return out, err


HEADERS = {"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"}


def capture_session(capture: Capture, relay: str | None = None) -> list[requests.Response]:
    """A merchant's exchanges through the capture: the PHP shop's body, its EUC-KR body, the page of
    the token it got, an unknown path with a key the capture does not know, a key under another scheme."""
    shop = php_shop_body(callback_url="http://dmp9.test/Payments/paycallback")
    answers = [requests.post(capture.url + "/v1.0/payments/request", data=shop.encode("utf-8"), headers=HEADERS),
               requests.post(capture.url + "/v1.0/payments/request", headers=HEADERS,
                             data=php_shop_body(callback_url="http://dmp9.test/Payments/paycallback", amount="100000",
                                                product_name="테스트 상품").encode("euc-kr"))]
    token = answers[0].json()["token"]
    answers.append(requests.get(capture.url + "/pgsvc/hub.asp", params={"location": "online", "token": token}))
    answers.append(requests.post(capture.url + "/v1.0/payments/refund", json={"tid": "x"},
                                 headers={"Authorization": f"PLKEY {OTHER_KEY}"}))
    answers.append(requests.post(capture.url + "/v1.0/payments/status", json={"client_id": "pay_test", "order_no": "1"},
                                 headers={"Authorization": f"Bearer {PAYMENT_KEY}"}))
    return answers


def test_a_capture_passes_answers_on_unchanged_and_becomes_cases_the_probe_runs(stand_in, tmp_path):
    capture = Capture(stand_in.url, tmp_path / "captured")
    try:
        answers = capture_session(capture)
    finally:
        capture.stop()
    # Unchanged: the stand-in's own answer to each request, status, type and bytes.
    for answer, sent in zip(answers, stand_in.received):
        status, body, content_type = stand_in.answer(sent["method"], sent["path"].split("?")[0],
                                                     sent["headers"].get("Authorization"), sent["body"])
        assert (answer.status_code, answer.content, answer.headers["Content-Type"]) == (status, body, content_type)
    assert stand_in.received[0]["body"] == php_shop_body(callback_url="http://dmp9.test/Payments/paycallback").encode()
    assert stand_in.received[3]["headers"]["Authorization"] == f"PLKEY {OTHER_KEY}"  # forwarded as sent

    evidence = [json.loads(line) for line in (tmp_path / "captured" / "exchanges.jsonl").read_text("utf-8").splitlines()]
    assert [(e["request"]["path"], e["answer"]["status"]) for e in evidence] == [
        ("/v1.0/payments/request", 200), ("/v1.0/payments/request", 400), ("/pgsvc/hub.asp", 501),
        ("/v1.0/payments/refund", 404), ("/v1.0/payments/status", 501)]
    assert evidence[1]["request"]["body"] == {"base64": base64.b64encode(stand_in.received[1]["body"]).decode()}

    [case_file] = (tmp_path / "captured" / "probes").iterdir()
    captured = read(case_file)  # valid against schemas/probe.json
    assert [case.steps[-1]["auth"] for case in captured] == [
        "payment", "payment", "none", "invalid", {"header": "Bearer {{payment_key}}"}]
    page = captured[2]
    assert page.steps[0]["name"] == "e1" and page.steps[0]["compare"] is False
    assert page.steps[1]["query"] == {"location": "online", "token": "{{steps.e1.token}}"}  # linked, not copied

    ids = [case.id for case in captured]
    done, report = probe(stand_in, tmp_path / "report", "--cases", str(case_file), *cases(ids[0], ids[1]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert results(report) == {ids[0]: "same", ids[1]: "same"}


def test_callbacks_through_the_capture_are_recorded_and_relayed(stand_in, tmp_path):
    merchant = CallbackReceiver()
    server = serve_receiver(merchant)
    capture = Capture(stand_in.url, tmp_path, "--callback-relay", merchant.url)
    callback = {"user_id": "13", "amount": 1000, "tid": "tpay_test-202003058157772", "payhash": "935534134B6BE06B"}
    try:
        answer = requests.post(capture.url + "/_capture/callback", json=callback)
    finally:
        capture.stop()
        server.shutdown()
    assert (answer.status_code, answer.content) == (200, ACK)  # the merchant's answer
    [received] = merchant.received
    assert received.json() == callback
    [recorded] = [json.loads(line) for line in (tmp_path / "callbacks.jsonl").read_text("utf-8").splitlines()]
    assert json.loads(recorded["body"]) == callback and recorded["merchant_answer"]["status"] == 200
    assert stand_in.received == []  # a callback is the merchant's business, not the gateway's


def test_no_key_appears_in_anything_the_probe_or_the_capture_shows_or_writes(stand_in, tmp_path):
    outputs = []
    capture = Capture(stand_in.url, tmp_path / "captured")
    try:
        capture_session(capture)
    finally:
        outputs += capture.stop()
    # Every authentication case (the keys in headers, other schemes), the captured ones, payer cases with a person.
    done, _ = probe(stand_in, tmp_path / "report", "--cases", str(ROOT / "probes"),
                    "--cases", str(tmp_path / "captured" / "probes"), *cases("auth-*", "capture-*", "status-after-*"),
                    "--interactive", stdin="\n\n")
    outputs += [done.stdout, done.stderr, run("probe", "--help").stdout, run("capture", "--help").stdout]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"exchanges.jsonl", "report.json", "report.md"}
    assert any(path.name.startswith("capture-") and path.suffix == ".yaml" for path in files)
    written = [path.read_bytes().decode("utf-8") for path in files]
    assert any("PLKEY [PAYMENT key]" in text for text in written)  # the exchanges are there, redacted
    for key in (PAYMENT_KEY, SEARCH_KEY, OTHER_KEY):
        decoded = base64.b64decode(key.rstrip("=") + "=" * (-len(key.rstrip("=")) % 4)).decode()
        for text in outputs + written:
            assert key.rstrip("=") not in text and decoded.lower() not in text.lower()


# --- CI ------------------------------------------------------------------------------------------------

def test_the_parity_workflow_probes_the_public_test_gateway_weekly_and_keeps_the_report():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "parity.yml").read_text())
    triggers = workflow.pop(True, None) or workflow["on"]  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers
    [schedule] = triggers["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert day == month == "*" and weekday not in ("*",)  # once a week
    [job] = workflow["jobs"].values()
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "payletter-emulator probe --against https://testpgapi.payletter.com" in " ".join(commands.split())
    assert "--out parity-report" in commands and "--allow-live" not in commands
    assert "PAYMENT_KEY" not in commands and "MTFB" not in commands  # the default: the public pay_test keys
    [upload] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == "parity-report" and upload["if"] == "always()"


def test_the_stored_answers_name_their_evidence():
    for fixture in fixtures(FIXTURES):
        assert fixture["entries"] and fixture["evidence"] and fixture["seen"], fixture["file"]
        assert any(len(word) == 40 and all(c in "0123456789abcdef" for c in word)
                   for word in fixture["evidence"].replace("(", " ").split()), fixture["file"]


def test_the_case_shown_in_docs_parity_is_a_case_the_probe_runs(api, tmp_path):
    (tmp_path / "example.yaml").write_text(doc_block("probe-case").text, "utf-8")
    done = run("probe", "--against", api.url, "--cases", str(tmp_path / "example.yaml"), "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert results(report) == {"status-after-request": "same"}
    assert "probe ok: 1 cases (1 same)" in done.stdout
