"""Scenario files scripting Payletter Global, through HTTP against the suite's real `serve`: rules
that match a Global request or payment by its own fields (storeid, storeorderno, amount as
written, pginfo, payerid, ...), refuse or slow its API requests, decide its payer's Pay (the
control API's approve and the hosted page), and fault its notifications at a real receiver; the
domestic gateway untouched by a rule that names a Global field, and the reverse."""
from __future__ import annotations

import hashlib
import threading
from urllib.parse import parse_qsl

import pytest
import requests
import yaml
from click.testing import CliRunner

from payletter_emulator.client.cli import main
from payletter_emulator.resources import scenarios_dir

from .browser import read_html
from .conftest import PAYMENT_KEY, until

STORE, KEY = "global_test", "global_test"
HASHED = ("storeid", "currency", "storeorderno", "payamt", "payerid", "timestamp")


@pytest.fixture
def server(emulator_process, receiver):
    """The suite's server, reset, with `receiver` as the Global notification page."""
    requests.post(f"{emulator_process.url}/_emulator/reset", json={}, timeout=30).raise_for_status()
    receiver.clear()
    receiver.as_global_page()
    yield emulator_process
    requests.delete(f"{emulator_process.url}/_emulator/scenario", timeout=30)


def use(server, scenario) -> dict:
    """Put a scenario (a document, or the name of a shipped file) in force."""
    if isinstance(scenario, str):
        answer = requests.put(f"{server.url}/_emulator/scenario", timeout=30,
                              data=(scenarios_dir() / f"{scenario}.yaml").read_bytes(),
                              headers={"Content-Type": "application/yaml"})
    else:
        answer = requests.put(f"{server.url}/_emulator/scenario", json={"version": 1, **scenario}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def rules(*specs) -> dict:
    return {"rules": [{"name": f"rule {i}", **spec} for i, spec in enumerate(specs)]}


def control(server, path: str, body=None, method: str = "POST") -> dict:
    answer = requests.request(method, f"{server.url}/_emulator{path}", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def body(receiver, **overrides) -> dict:
    fields = {"storeid": STORE, "currency": "USD", "storeorderno": "ORD-1", "amount": "10.00", "payerid": "user42",
              "payeremail": "buyer@example.com", "servicename": "A mug", "pginfo": "PLCreditCard",
              "returnurl": "https://merchant.example/return", "notiurl": receiver.url, **overrides}
    return {k: v for k, v in fields.items() if v is not None}


def global_request(server, fields: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{server.url}/api/payment/request", json=fields, timeout=30,
                         headers={"Authorization": f"GPLKEY {KEY}", **(headers or {})})


def requested(server, receiver, headers: dict | None = None, **overrides) -> dict:
    answer = global_request(server, body(receiver, **overrides), headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def approve(server, token: str, **choices) -> dict:
    return control(server, f"/global/payments/{token}/approve", choices)


def flush(server) -> None:
    assert control(server, "/callbacks/flush", {})["idle"]


def notifications(server, paytoken: str) -> list[dict]:
    return [c for c in control(server, "/callbacks", method="GET")["callbacks"] if c["tid"] == paytoken]


def forms(receiver) -> list[dict]:
    return [dict(parse_qsl(r.body.decode(), keep_blank_values=True)) for r in receiver.received]


def merchant_hash(form: dict, key: str = KEY) -> str:
    return hashlib.sha256(("".join(form[name] for name in HASHED) + key).encode()).hexdigest()


def page_pay(url: str, number: str = "4111111111111111") -> dict:
    """Pay on the hosted page through HTTP; the fields its return form would POST to returnurl."""
    answer = requests.post(url, data={"action": "pay", "card_number": number, "card_expiry": "12/39",
                                      "card_cvv": "123"}, timeout=30)
    assert answer.status_code == 200, answer.text[-400:]
    [form] = [f for f in read_html(answer.text).forms if f["testid"] == "return-form"]
    return form["fields"]


def refused(answer: requests.Response, status: int, code: int) -> str:
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"code", "message"} and answer.json()["code"] == code, answer.text
    return answer.json()["message"]


def journal(server) -> list[dict]:
    return control(server, "/requests", method="GET")["requests"]


DECLINE = {"decline": {"code": "1190", "message": "Declined by the scenario"}}


@pytest.mark.parametrize("when, declined, paid", [
    ({"storeid": STORE}, {}, None),
    ({"storeorderno": ["A-1", "A-2"]}, {"storeorderno": "A-2"}, {"storeorderno": "A-3"}),
    ({"storeorderno": {"regex": "^VIP-"}}, {"storeorderno": "VIP-9"}, {"storeorderno": "A-VIP-9"}),
    ({"amount": 10}, {"amount": "10.00"}, {"amount": "10.01"}),
    ({"amount": {"min": 10.5, "max": 20}}, {"amount": 15.5}, {"amount": "20.01"}),
    ({"amount": {"ends_with": "13"}}, {"amount": "10.13"}, {"amount": "13.10"}),
    ({"pginfo": "PayPalExpressCheckout"}, {"pginfo": "paypalexpresscheckout"}, {}),
    ({"currency": "JPY"}, {"currency": "JPY", "amount": 1000}, {}),
    ({"payerid": {"regex": "^fraud-"}}, {"payerid": "fraud-1"}, {"payerid": "user-fraud-1"}),
    ({"servicename": "Gift card"}, {"servicename": "Gift card"}, {}),
    ({"custom": "decline-me"}, {"custom": "decline-me"}, {"custom": "keep-me"}),
    ({"gateway": "global", "header": {"X-Emulator-Scenario": "declined"}}, "header", {}),
])
def test_a_payer_rule_matches_a_global_payment_by_its_own_fields(server, receiver, when, declined, paid):
    use(server, rules({"when": when, "then": DECLINE}))
    headers = {"X-Emulator-Scenario": "declined"} if declined == "header" else None
    token = requested(server, receiver, headers=headers, **({} if declined == "header" else declined))["token"]
    view = approve(server, token)
    assert (view["status"], view["rule"]) == ("declined", "rule 0")
    if paid is not None:
        other = approve(server, requested(server, receiver, **paid)["token"])
        assert other["status"] == "paid" and "rule" not in other
    flush(server)
    assert [form["retcode"] for form in forms(receiver)] == ([] if paid is None else ["0"])  # a decline is not notified


def test_on_the_hosted_page_a_decline_says_its_retcode_approve_pays_and_abandon_cancels(server, receiver):
    use(server, rules({"when": {"storeorderno": "D-1"}, "then": DECLINE},
                      {"when": {"storeorderno": "C-1"}, "then": {"abandon": {}}},
                      {"when": {"storeorderno": "P-1"}, "then": {"approve": {"card_number": "3530111333300000"}}},
                      {"when": {"storeorderno": "P-2", "card_number": "4000000000000101"}, "then": {"decline": {}}}))
    declined = page_pay(requested(server, receiver, storeorderno="D-1")["online_url"])
    assert (declined["retcode"], declined["retmsg"], declined["paytoken"]) == ("1190", "Declined by the scenario", "")
    assert page_pay(requested(server, receiver, storeorderno="C-1")["online_url"])["retcode"] == "2001"
    paid = page_pay(requested(server, receiver, storeorderno="P-1")["online_url"], "4111111111111111")
    assert (paid["retcode"], paid["cardkind"]) == ("0", "JCB")  # the rule's card, not the one typed
    by_card = page_pay(requested(server, receiver, storeorderno="P-2")["online_url"], "4000000000000101")
    assert by_card["retcode"] == "1003" and "rule 3" in by_card["retmsg"]  # no code given: the page's decline
    statuses = {p["order_no"]: p["status"] for p in control(server, "/global/payments", method="GET")["payments"]}
    assert statuses == {"D-1": "declined", "C-1": "cancelled", "P-1": "paid", "P-2": "declined"}


def test_an_api_rule_refuses_a_global_request_with_the_envelope_and_the_journal_names_it(server, receiver):
    use(server, rules({"when": {"endpoint": "api/payment/request", "storeorderno": {"regex": "^REFUSE-"}},
                       "then": {"api_error": {"status": 406, "code": 995, "message": "Error detail Message: refused"}}}))
    assert refused(global_request(server, body(receiver, storeorderno="REFUSE-1")), 406, 995) == \
        "Error detail Message: refused"
    assert global_request(server, body(receiver, storeorderno="KEEP-1")).status_code == 200
    assert [(e["path"], e["status"], e["rule"]) for e in journal(server)][-2:] == \
        [("/api/payment/request", 406, "rule 0"), ("/api/payment/request", 200, None)]


def test_a_rule_naming_a_global_field_leaves_the_domestic_gateway_alone_and_the_reverse(server, receiver):
    use(server, rules({"when": {"gateway": "domestic"}, "then": DECLINE},
                      {"when": {"storeid": STORE, "endpoint": "api/payment/request"},
                       "then": {"api_error": {"status": 500, "code": 999}}},
                      {"when": {"pgcode": "creditcard"}, "then": {"abandon": {}}}))
    refused(global_request(server, body(receiver)), 500, 999)
    domestic = requests.post(f"{server.url}/v1.0/payments/request", timeout=30,
                             headers={"Authorization": f"PLKEY {PAYMENT_KEY}"},
                             json={"pgcode": "creditcard", "client_id": "pay_test", "user_id": "u1", "amount": 1000,
                                   "product_name": "mug", "return_url": "https://merchant.example/return",
                                   "callback_url": receiver.url})
    assert domestic.status_code == 200, domestic.text  # rule 1 names storeid: no domestic request has one
    answer = control(server, f"/payments/{domestic.json()['token']}/approve", {})
    assert (answer["fields"]["code"], answer["rule"]) == ("1190", "rule 0")
    use(server, rules({"when": {"pgcode": "creditcard"}, "then": {"abandon": {}}}))
    assert approve(server, requested(server, receiver)["token"])["status"] == "paid"  # a pgcode is no Global field


def test_a_rule_without_conditions_holds_for_both_gateways(server, receiver):
    use(server, rules({"then": {"api_error": {"status": 503, "code": 999, "message": "down"}}}))
    refused(global_request(server, body(receiver)), 503, 999)
    refused(requests.post(f"{server.url}/v1.0/payments/request", json={}, timeout=30,
                          headers={"Authorization": f"PLKEY {PAYMENT_KEY}"}), 503, 999)


def test_notification_faults_fail_first_wrong_hash_tampered_amount_delay_and_never(server, receiver):
    use(server, rules({"when": {"storeorderno": "FLAKY"}, "then": {"callback": {"fail_first": 2}}},
                      {"when": {"storeorderno": "FORGED"}, "then": {"callback": {"wrong_payhash": True}}},
                      {"when": {"storeorderno": "TAMPERED"}, "then": {"callback": {"tampered_amount": 1}}},
                      {"when": {"storeorderno": "LATE"}, "then": {"callback": {"delay_seconds": 600}}},
                      {"when": {"storeorderno": "LOST"}, "then": {"callback": {"never": True}}}))
    control(server, "/clock", {"freeze": True})
    paytokens = {order: approve(server, requested(server, receiver, storeorderno=order)["token"])["paytoken"]
                 for order in ("FLAKY", "FORGED", "TAMPERED", "LATE", "LOST")}
    flush(server)
    by_order = {form["storeorderno"]: form for form in forms(receiver)}
    assert sorted(by_order) == ["FLAKY", "FORGED", "TAMPERED"]  # LATE waits for the clock, LOST never leaves
    assert by_order["FORGED"]["hash"] != merchant_hash(by_order["FORGED"])
    tampered = by_order["TAMPERED"]
    assert tampered["payamt"] == "1" and tampered["hash"] == merchant_hash({**tampered, "payamt": "10.00"})
    [lost] = notifications(server, paytokens["LOST"])
    assert (lost["status"], lost["attempts"], lost["fault"]["rule"]) == ("failed", [], "rule 4")
    for _ in range(2):  # the page answered OK each time; the scenario counts the first two as failed
        control(server, "/clock", {"advance_seconds": 300})
        flush(server)
    assert [form["storeorderno"] for form in forms(receiver)].count("FLAKY") == 3
    [flaky] = notifications(server, paytokens["FLAKY"])
    assert flaky["status"] == "delivered" and [a["kind"] for a in flaky["attempts"]] == ["first", "retry", "retry"]
    assert [form["storeorderno"] for form in forms(receiver)].count("LATE") == 1  # its 600 s passed with the retries


def test_the_shipped_global_faults_scenario(server, receiver):
    use(server, "global-faults")
    assert "refused" in refused(global_request(server, body(receiver, storeorderno="REFUSE-7")), 406, 995)
    assert approve(server, requested(server, receiver, amount="10.13")["token"])["rule"] == "insufficient funds"
    fraud = [approve(server, requested(server, receiver, payerid="fraud-7")["token"])["status"] for _ in range(2)]
    assert fraud == ["declined", "paid"]  # once
    flaky = approve(server, requested(server, receiver, storeorderno="FLAKY-7")["token"])
    control(server, "/clock", {"freeze": True})
    flush(server)
    assert notifications(server, flaky["paytoken"])[0]["attempts_made"] == 1
    for _ in range(2):
        control(server, "/clock", {"advance_seconds": 300})
        flush(server)
    assert notifications(server, flaky["paytoken"])[0]["status"] == "delivered"
    assert [form["storeorderno"] for form in forms(receiver)].count("FLAKY-7") == 3
    # A slow refund: the journal has its entry (the rule decided it) while its answer is still held.
    answers = []
    refund = threading.Thread(target=lambda: answers.append(requests.post(
        f"{server.url}/api/payment/refund", headers={"Authorization": f"GPLKEY {KEY}"}, timeout=30,
        json={"storeid": STORE, "paytoken": flaky["paytoken"], "currency": "USD", "amount": "10.00"})))
    refund.start()
    until(lambda: any(e["rule"] == "slow refunds" for e in journal(server)), what="the refund's journal entry")
    assert answers == []
    refund.join(30)
    assert answers[0].status_code == 200 and answers[0].json()["data"]["remainamount"] == "0.00"


def test_a_scenario_check_names_global_endpoints_and_pginfo(tmp_path):
    document = {"version": 1, "rules": [{"name": "a", "when": {"pginfo": "PLCreditcard2"}, "then": {"abandon": {}}},
                                        {"name": "b", "when": {"endpoint": "api/payment/refnd"},
                                         "then": {"latency": {"ms": 1}}},
                                        {"name": "c", "when": {"gateway": "gloabl"}, "then": {"abandon": {}}}]}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(document), "utf-8")
    result = CliRunner().invoke(main, ["scenario", "check", str(path)])
    assert result.exit_code == 1
    assert "rules[0].when.pginfo: 'PLCreditcard2' is not a Payletter Global pginfo; did you mean 'PLCreditCard'?" \
        in result.output
    assert "rules[1].when.endpoint: 'api/payment/refnd' is not an endpoint; one of" in result.output
    assert "api/payment/refund" in result.output and "payment/{pginfo}/refund" in result.output
    assert "rules[2].when.gateway: 'gloabl' is not one of ['domestic', 'global']" in result.output


def test_the_scenario_example_of_the_global_page_runs(server, receiver, capsys):
    from .doc_blocks import doc_block

    example = doc_block("global-scenario-example").text.replace("http://127.0.0.1:8080", server.url)
    exec(compile(example.replace("http://127.0.0.1:8081/noti", receiver.url), "docs/global.md", "exec"), {})
    assert capsys.readouterr().out == "declined paid\ndelivered 3\n"
    assert len(receiver.received) == 3  # the page answered OK each time; two counted as failed
