"""Payletter Global through HTTP, against a real `payletter-emulator serve`: each public sample's
part played from the facts it shows (docs/fidelity.md cites them by repository, path and
commit), written here, not copied. The formulas are computed in this file with hashlib and
urllib alone, so the emulator's own code is not checking itself."""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from urllib.parse import parse_qsl, quote_plus

import pytest
import requests
from jsonschema import Draft202012Validator

from .conftest import EmulatorProcess

STORE, KEY = "global_test", "global_test"  # the built-in test store: its key is its id, as in the samples
FAIL = b"<RESULT>FAIL</RESULT>"
CANONICAL = "https://dev-api.payletter.com"


# --- the formulas, as a merchant's code computes them ---

def signed_url(url: str) -> str:
    """PHP's urlencode of the whole URL, lower-cased."""
    return quote_plus(url, safe="").replace("~", "%7E").lower()


def poqapi(url: str, body: str, *, nonce: str, timestamp: str | None = None, store: str = STORE,
           key: str = KEY) -> str:
    timestamp = timestamp or str(int(time.time()))
    signature = hashlib.sha256(f"{store}{key}POST{signed_url(url)}{timestamp}{nonce}{body}".encode()).hexdigest()
    return f"POQAPI {store}:{signature}:{nonce}:{timestamp}"


def notification_hash(form: dict, key: str = KEY) -> str:
    text = "".join(form[name] for name in ("storeid", "currency", "storeorderno", "payamt", "payerid", "timestamp"))
    return hashlib.sha256((text + key).encode()).hexdigest()


# --- the suite's server, a strict one, and a merchant's notification page ---

@pytest.fixture
def server(emulator_process):
    return emulator_process  # the suite's one server (tests/conftest.py)


@pytest.fixture
def strict_server(strict_process):
    return strict_process


@pytest.fixture
def noti(server, receiver):
    """The merchant's notification page (conftest's receiver), answering <RESULT>OK</RESULT>; the
    emulator reset."""
    requests.post(f"{server.url}/_emulator/reset", json={}, timeout=30).raise_for_status()
    receiver.clear()  # after the reset, which waits for the attempts in flight: none of an earlier test's lands here
    return receiver.as_global_page()


def control(server, path: str, body=None, method: str = "POST") -> dict:
    answer = requests.request(method, f"{server.url}/_emulator{path}", json=body, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def flush(server) -> None:
    assert control(server, "/callbacks/flush", {})["idle"]


def refused(answer: requests.Response, status: int, code: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    return body["message"]


def php_sample_body(noti_url: str, order: str = "123456789") -> bytes:
    """Payletter's newer PHP sample writes its JSON by hand: amount a number, a trailing comma."""
    return ('{\n  "storeid"      : "%s",\n  "currency"     : "USD",\n  "storeorderno" : "%s",\n'
            '  "amount"       : 1,\n  "payerid"      : "tester",\n  "payeremail"   : "tester@test.example",\n'
            '  "returnurl"    : "https://merchant.example/Return.php",\n  "notiurl"      : "%s",\n'
            '  "pginfo"       : "PLCreditCard",\n}' % (STORE, order, noti_url)).encode()


def gplkey_request(server, body: dict, key: str = KEY) -> requests.Response:
    return requests.post(f"{server.url}/api/payment/request", json=body, timeout=30,
                         headers={"Authorization": f"GPLKEY {key}"})


def payment(noti_url: str, **overrides) -> dict:
    body = {"storeid": STORE, "currency": "USD", "storeorderno": "ORD-1001", "amount": "10.00",
            "payerid": "user42", "payeremail": "buyer@example.com", "servicename": "A test product",
            "returnurl": "https://merchant.example/return", "notiurl": noti_url, "pginfo": "PLCreditCard"}
    return {k: v for k, v in {**body, **overrides}.items() if v is not None}


def paid(server, noti, **overrides) -> tuple[dict, dict]:
    """A payment requested with GPLKEY and paid through the control API: (its view, the form of its
    first notification)."""
    answer = gplkey_request(server, payment(noti.url, **overrides))
    assert answer.status_code == 200, answer.text
    view = control(server, f"/global/payments/{answer.json()['token']}/approve", {})
    flush(server)
    return view, dict(parse_qsl(noti.wait_for(1)[0].body.decode()))


# --- the PHP sample: GPLKEY, JSON with a trailing comma ---

def test_the_php_samples_gplkey_request_with_its_trailing_comma_gets_a_token_and_the_two_page_urls(server, noti):
    answer = requests.post(f"{server.url}/api/payment/request", data=php_sample_body(noti.url), timeout=30,
                           headers={"Authorization": f"GPLKEY {KEY}", "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "online_url", "mobile_url"}
    assert body["online_url"] == f"{server.url}/Web/Payment.aspx?token={body['token']}"
    assert body["mobile_url"] == f"{server.url}/Smart/Payment.aspx?token={body['token']}"
    assert "%" not in answer.text and "+" not in answer.text  # the sample urldecodes the answer first
    journal = control(server, "/requests", method="GET")["requests"][-1]
    assert journal["path"] == "/api/payment/request" and journal["client_id"] == STORE
    assert any("trailing comma" in warning for warning in journal["warnings"]), journal


def test_under_strict_the_trailing_comma_is_a_request_error(strict_server):
    answer = requests.post(f"{strict_server.url}/api/payment/request", data=php_sample_body("https://m.example/n"),
                           headers={"Authorization": f"GPLKEY {KEY}", "Content-Type": "application/json"}, timeout=30)
    assert "trailing comma" in refused(answer, 400, 997)


@pytest.mark.parametrize("overrides, warned", [
    ({"pginfo": "PLUnionPay"}, "pginfo PLUnionPay is not accepted for test payment"),
    ({"productname": "Gold", "servicename": None}, "productname is not a field of the gateway"),
    ({"nickname": "buyer"}, "nickname is not a field of this request")])
def test_what_leniency_takes_with_a_warning_strict_refuses_naming_the_field(server, noti, strict_server, overrides,
                                                                            warned):
    """A pginfo Payletter's test environment lacks, productname, a field the gateway does not have:
    taken with a warning in the journal, or refused 406/995 under --strict."""
    body = payment(noti.url, **overrides)
    assert gplkey_request(server, body).status_code == 200
    field = warned.split()[0]
    warnings = control(server, "/requests", method="GET")["requests"][-1]["warnings"]
    assert any(warning.startswith(f"{field}:") for warning in warnings), warnings
    assert warned in refused(gplkey_request(strict_server, body), 406, 995)


def test_the_php_samples_error_table(server, noti):
    base = payment(noti.url)
    assert refused(requests.post(f"{server.url}/api/payment/request", json=base, timeout=30), 401, 998)
    refused(gplkey_request(server, base, key="not-a-key"), 401, 998)
    refused(gplkey_request(server, {**base, "storeid": "another_store"}), 403, 993)
    assert "payeremail is required" in refused(gplkey_request(server, {k: v for k, v in base.items()
                                                                      if k != "payeremail"}), 406, 995)
    assert "currency must be one of" in refused(gplkey_request(server, {**base, "currency": "EUR"}), 406, 995)
    assert "whole number" in refused(gplkey_request(server, {**base, "currency": "JPY", "amount": "10.5"}), 406, 995)
    assert "PLCreditCard" in refused(gplkey_request(server, {**base, "pginfo": "Visa"}), 406, 995)
    refused(requests.post(f"{server.url}/api/payment/nowhere", json=base, timeout=30), 404, 996)
    refused(requests.get(f"{server.url}/api/payment/request", timeout=30), 405, 995)
    refused(requests.post(f"{server.url}/api/payment/request", data=b"{not json", timeout=30,
                          headers={"Authorization": f"GPLKEY {KEY}", "Content-Type": "application/json"}), 400, 997)


def test_pginfo_is_matched_without_regard_to_case_and_productname_reads_as_servicename(server, noti):
    answer = gplkey_request(server, payment(noti.url, pginfo="plcreditcard", productname="Gold", servicename=None))
    assert answer.status_code == 200, answer.text
    stored = control(server, "/global/payments", method="GET")["payments"][-1]
    assert stored["pginfo"] == "PLCreditCard" and stored["service_name"] == "Gold"


# --- beatsomeone (the older PHP sample): POQAPI over a form, signing the URL it calls ---

def test_a_poqapi_form_request_signed_over_the_url_called_or_the_canonical_one(server, noti):
    for signed in (f"{server.url}/api/payment/request", f"{CANONICAL}/api/payment/request"):
        form = (f"storeid={STORE}&currency=JPY&storeorderno=B-1&amount=1200&payerid=u1&payeremail=u1@example.com"
                f"&returnurl=https://merchant.example/return&notiurl={noti.url}&pginfo=PLCreditCard")
        nonce = "{" + str(uuid.uuid4()).upper() + "}"  # the sample's GUID in braces
        answer = requests.post(f"{server.url}/api/payment/request", data=form.encode(), timeout=30, headers={
            "Authorization": poqapi(signed, form, nonce=nonce),
            "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200, (signed, answer.text)
    form = f"storeid={STORE}&currency=USD&storeorderno=B-2&amount=1"
    answer = requests.post(f"{server.url}/api/payment/request", data=form, timeout=30, headers={
        "Authorization": poqapi("https://elsewhere.example/api/payment/request", form, nonce="n1"),
        "Content-Type": "application/x-www-form-urlencoded"})
    refused(answer, 401, 998)


# --- the WooCommerce plugin: the notification's hash and <RESULT>OK</RESULT>; the older refund ---

def test_the_notification_is_a_form_whose_hash_the_plugin_checks_and_ok_acknowledges_it(server, noti):
    view, form = paid(server, noti)
    received = noti.wait_for(1)[0]
    assert received.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert form["hash"] == notification_hash(form)
    assert (form["notifytype"], form["retcode"], form["payamt"], form["paytoken"]) == ("1", "0", "10.00", view["paytoken"])
    assert (form["cardkind"], form["cardno"]) == ("VISA", "************1111")
    callback = control(server, f"/callbacks?tid={view['paytoken']}", method="GET")["callbacks"][0]
    assert callback["status"] == "delivered" and callback["gateway"] == "global"


def test_openapi_json_describes_globals_requests_and_its_notification_is_what_is_sent(server, noti):
    """/openapi.json carries Global's paths with their request schemas (both bodies), and the
    notification's schema, which the form a merchant's page receives satisfies."""
    document = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    for path, schema in (("/api/payment/request", "global_payment_request"), ("/api/payment/refund", "global_refund"),
                         ("/payment/{pginfo}/refund", "global_refund")):
        content = document["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "application/x-www-form-urlencoded"}, path
        assert {body["schema"]["$ref"] for body in content.values()} == {f"#/components/schemas/{schema}"}, path
    components = document["components"]["schemas"]
    assert {"global_hosted_form", "global_refund_answer", "global_error"} <= set(components)
    _, first = paid(server, noti)
    # As a page receives it: every field, the empty ones too (PHP's $_POST keeps them).
    form = dict(parse_qsl(noti.received[0].body.decode(), keep_blank_values=True))
    assert form["paytoken"] == first["paytoken"]
    Draft202012Validator(components["global_notification"]).validate(form)
    answer = requests.post(f"{server.url}/api/payment/refund", headers={"Authorization": f"GPLKEY {KEY}"}, timeout=30,
                           json={"storeid": STORE, "paytoken": form["paytoken"], "currency": "USD", "amount": "1.00"})
    assert answer.status_code == 200, answer.text
    Draft202012Validator(components["global_refund_answer"]).validate(answer.json())
    flush(server)
    refund_form = dict(parse_qsl(noti.wait_for(2)[1].body.decode(), keep_blank_values=True))
    assert refund_form["notifytype"] == "2"
    Draft202012Validator(components["global_notification"]).validate(refund_form)


def test_the_plugins_older_refund_partial_then_whole_never_past_the_amount(server, noti):
    view, _ = paid(server, noti)
    paytoken = view["paytoken"]

    def refund(amount: str) -> requests.Response:
        url = "https://dev-api.payletter.com/payment/PLCreditCard/refund"
        content = f"storeid={STORE}&paytoken={paytoken}&currency=USD&amount={amount}&pginfo=PLCreditCard"
        nonce = hashlib.sha256(f"{paytoken}{time.time()}".encode()).hexdigest()  # 64 hex characters
        return requests.post(f"{server.url}/payment/PLCreditCard/refund", timeout=30,
                             data={"storeid": STORE, "paytoken": paytoken, "currency": "USD", "amount": amount,
                                   "pginfo": "PLCreditCard"},
                             headers={"Authorization": poqapi(url, content, nonce=nonce),
                                      "Content-Type": "application/x-www-form-urlencoded;charset=euc-kr"})

    first = refund("4.00")
    assert first.status_code == 200, first.text
    assert "data" in first.json()  # what the plugin counts a refund done by
    assert first.json()["data"]["remainamount"] == "6.00"
    assert "more than what is left" in refused(refund("6.01"), 406, 995)
    assert refund("6.00").status_code == 200
    assert "already refunded" in refused(refund("1.00"), 400, 997)
    flush(server)
    refunds = [dict(parse_qsl(r.body.decode())) for r in noti.wait_for(3)[1:]]
    assert [(f["notifytype"], f["payamt"]) for f in refunds] == [("2", "4.00"), ("2", "6.00")]
    assert all(f["hash"] == notification_hash(f) for f in refunds)
    assert control(server, "/global/payments?status=refunded", method="GET")["payments"][0]["refunded_units"] == 1000


def test_concurrent_refunds_never_exceed_the_amount(server, noti):
    """Twelve refunds of 1.00 at once on a 10.00 payment, across the server's processes: ten taken,
    the two after the whole amount refused as already refunded (400/997), ten notified."""
    view, _ = paid(server, noti)
    body = {"storeid": STORE, "paytoken": view["paytoken"], "currency": "USD", "amount": "1.00"}
    barrier = threading.Barrier(12)
    answers: list[requests.Response] = []

    def refund():
        with requests.Session() as session:
            barrier.wait()
            answers.append(session.post(f"{server.url}/api/payment/refund", json=body, timeout=60,
                                        headers={"Authorization": f"GPLKEY {KEY}"}))

    threads = [threading.Thread(target=refund) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    taken = sorted(a.json()["data"]["remainamount"] for a in answers if a.status_code == 200)
    assert taken == sorted(f"{left}.00" for left in range(10)), [a.text for a in answers]
    for answer in answers:
        if answer.status_code != 200:
            refused(answer, 400, 997)
    [payment] = [p for p in control(server, "/global/payments", method="GET")["payments"] if p["token"] == view["token"]]
    assert (payment["status"], payment["refunded_units"], len(payment["refunds"])) == ("refunded", 1000, 10)
    flush(server)
    notifications = f"/global/notifications?paytoken={view['paytoken']}"
    assert len(control(server, notifications, method="GET")["notifications"]) == 11
    # A page at a time, as every control list: 4, 4, then the 3 left with no cursor after them.
    first = control(server, notifications + "&limit=4", method="GET")
    second = control(server, f"{notifications}&limit=4&after={first['next']}", method="GET")
    last = control(server, f"{notifications}&limit=4&after={second['next']}", method="GET")
    pages = [first["notifications"], second["notifications"], last["notifications"]]
    assert [len(page) for page in pages] == [4, 4, 3] and last["next"] is None
    ids = [n["id"] for page in pages for n in page]
    assert ids == sorted(set(ids))
    refused(requests.get(f"{server.url}/_emulator{notifications}&limit=1001", timeout=30), 406, 4314)


def test_an_euc_kr_form_value_is_read_as_euc_kr(server, noti):
    form = {"storeid": STORE, "currency": "KRW", "storeorderno": "K-1", "amount": "5000", "payerid": "u1",
            "payeremail": "u1@example.com", "servicename": "상품", "returnurl": "https://merchant.example/r",
            "notiurl": noti.url, "pginfo": "PLCreditCard"}
    content = "&".join(f"{k}={v}" for k, v in form.items())
    body = "&".join(f"{k}={quote_plus(v, encoding='euc-kr')}" for k, v in form.items())
    answer = requests.post(f"{server.url}/api/payment/request", data=body, timeout=30, headers={
        "Authorization": poqapi(f"{CANONICAL}/api/payment/request", content, nonce=secrets.token_hex(32)),
        "Content-Type": "application/x-www-form-urlencoded; charset=euc-kr"})
    assert answer.status_code == 200, answer.text
    assert control(server, "/global/payments", method="GET")["payments"][-1]["service_name"] == "상품"


# --- a TypeScript client (sudamk): GPLKEY, KRW, the newer refund, the hash compared case-insensitively ---

def test_a_typescript_clients_krw_payment_newer_refund_and_hash_check(server, noti):
    view, form = paid(server, noti, currency="KRW", amount=15000, storeorderno=str(uuid.uuid4()))
    assert form["payamt"] == "15000" and form["hash"].upper() == notification_hash(form).upper()
    answer = requests.post(f"{server.url}/api/payment/refund", timeout=30, headers={"Authorization": f"GPLKEY {KEY}"},
                           json={"storeid": STORE, "paytoken": view["paytoken"], "currency": "KRW", "amount": 15000})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["remainamount"] == "0"


def test_a_card_that_is_no_test_card_declines_and_nothing_is_notified(server, noti):
    token = gplkey_request(server, payment(noti.url)).json()["token"]
    assert control(server, f"/global/payments/{token}/approve", {"card_number": "6011000000000004"})["status"] == "declined"
    flush(server)
    assert noti.received == []


# --- retries: every 5 minutes of the emulator's clock, 10 times after the first ---

def test_a_notification_not_acknowledged_is_resent_every_5_minutes_ten_times(server, noti):
    noti.answer = b'{"code": 0}'  # the domestic acknowledgement is none here
    view, _ = paid(server, noti)
    for _ in range(10):
        control(server, "/clock", {"advance_seconds": 300})
        flush(server)
    control(server, "/clock", {"advance_seconds": 3600})
    flush(server)
    callback = control(server, f"/callbacks?tid={view['paytoken']}", method="GET")["callbacks"][0]
    assert callback["status"] == "failed" and len(callback["attempts"]) == 11
    assert "<RESULT>OK</RESULT>" in callback["attempts"][0]["error"]
    assert len(noti.received) == 11


def test_a_resend_that_gets_ok_delivers_it(server, noti):
    noti.answer = FAIL
    view, _ = paid(server, noti)
    noti.answer = b"  <RESULT>OK</RESULT>\r\n"  # surrounding whitespace is tolerated
    control(server, "/clock", {"advance_seconds": 300})
    flush(server)
    assert control(server, f"/callbacks?tid={view['paytoken']}", method="GET")["callbacks"][0]["status"] == "delivered"


# --- a sandbox has a Global store of its own ---

def test_a_sandbox_has_its_own_global_store(server, noti):
    sandbox = control(server, "/sandboxes", {})
    try:
        url = f"{server.url}{sandbox['path']}/api/payment/request"
        body = payment(noti.url, storeid=sandbox["global_store_id"])
        answer = requests.post(url, json=body, headers={"Authorization": f"GPLKEY {sandbox['global_key']}"},
                               timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["online_url"].startswith(f"{server.url}{sandbox['path']}/Web/")
        refused(requests.post(url, json=payment(noti.url), headers={"Authorization": f"GPLKEY {KEY}"}, timeout=30),
                401, 998)
    finally:  # the server is the suite's: leave no sandbox behind for the next test
        control(server, f"/sandboxes/{sandbox['id']}", method="DELETE")


def test_a_store_from_the_configuration_takes_payments_with_its_own_key(tmp_path):
    """PAYLETTER_EMULATOR_GLOBAL_STORES adds stores beside global_test, each with its key."""
    server = EmulatorProcess(tmp_path, env={"PAYLETTER_EMULATOR_GLOBAL_STORES": "shop_global:shop-global-key"})
    try:
        body = payment("http://127.0.0.1:9/noti", storeid="shop_global")
        answer = gplkey_request(server, body, key="shop-global-key")
        assert answer.status_code == 200, answer.text
        paid = control(server, f"/global/payments/{answer.json()['token']}/approve", {})
        assert (paid["store_id"], paid["status"]) == ("shop_global", "paid")
        refused(gplkey_request(server, body, key=KEY), 403, 993)  # global_test's key for another store
        refused(gplkey_request(server, body, key="not-a-key"), 401, 998)
        assert gplkey_request(server, payment("http://127.0.0.1:9/noti")).status_code == 200  # global_test stays
    finally:
        server.stop()


# --- docs/global.md ---

def test_the_example_of_the_global_page_runs(server, noti, capsys):
    from .doc_blocks import doc_block

    example = doc_block("global-example").text.replace("http://127.0.0.1:8080", server.url)
    exec(compile(example, "docs/global.md", "exec"), {})
    assert capsys.readouterr().out == "6.00\n"


# --- the journal and coverage count Global's requests apart ---

def test_every_global_request_is_journaled_refusals_with_the_global_code(server, noti):
    refused(gplkey_request(server, payment(noti.url), key="not-a-key"), 401, 998)
    refused(gplkey_request(server, payment(noti.url, currency="EUR")), 406, 995)
    assert gplkey_request(server, payment(noti.url)).status_code == 200
    refused(requests.get(f"{server.url}/api/payment/request", timeout=30), 405, 995)
    assert "Cannot find resource" in refused(requests.post(f"{server.url}/api/payment/search", timeout=30), 404, 996)
    entries = requests.get(f"{server.url}/_emulator/requests", timeout=30).json()["requests"][-5:]
    assert [(e["method"], e["path"], e["status"], e["response"]["code"] if e["status"] != 200 else None)
            for e in entries] == [("POST", "/api/payment/request", 401, 998), ("POST", "/api/payment/request", 406, 995),
                                  ("POST", "/api/payment/request", 200, None), ("GET", "/api/payment/request", 405, 995),
                                  ("POST", "/api/payment/search", 404, 996)]
    assert entries[0]["error"].startswith("998") and entries[1]["client_id"] == STORE
    assert entries[1]["response"]["message"].startswith("Error detail Message: currency")


def test_coverage_counts_global_endpoints_pginfo_and_codes_apart(server, noti):
    requests.delete(f"{server.url}/_emulator/coverage", timeout=30).raise_for_status()
    view, _ = paid(server, noti)
    refused(gplkey_request(server, payment(noti.url), key="not-a-key"), 401, 998)
    answer = requests.post(f"{server.url}/api/payment/refund", headers={"Authorization": f"GPLKEY {KEY}"}, timeout=30,
                           json={"storeid": STORE, "paytoken": view["paytoken"], "currency": "USD", "amount": "99.00"})
    refused(answer, 406, 995)
    coverage = requests.get(f"{server.url}/_emulator/coverage", timeout=30).json()
    assert coverage["global_endpoints"] == {"api/payment/request": 2, "api/payment/refund": 1}
    assert coverage["global_pginfo"] == {"PLCreditCard": 1}
    assert coverage["global_error_codes"] == {"995": 1, "998": 1}
    assert coverage["endpoints"] == {} and coverage["error_codes"] == {}  # the domestic gateway's stay its own
    assert coverage["never"]["global_endpoints"] == ["payment/{pginfo}/refund"]
    assert coverage["never"]["global_pginfo"] == ["PayPalExpressCheckout"]  # the pginfo values that work in test
    assert coverage["callbacks"]["first_try"] == 1


# --- recurring: a poqtoken issued, never charged ---

def test_recurringtype_y_issues_a_poqtoken_and_a_charge_with_one_is_501_994(server, noti):
    _, recurring = paid(server, noti, recurringtype="Y", storeorderno="REC-1")
    assert recurring["poqtoken"].startswith("POQ") and recurring["poqtoken"][3:] == recurring["paytoken"][2:]
    noti.clear()
    noti.as_global_page()
    _, once = paid(server, noti, recurringtype="N", storeorderno="ONCE-1")
    assert once.get("poqtoken", "") == ""  # sent empty
    message = refused(gplkey_request(server, payment(noti.url, poqtoken=recurring["poqtoken"])), 501, 994)
    assert message.startswith("Related function is not implemented: a recurring charge with a poqtoken")
