"""Scenario files end to end: each matcher and outcome through a real server, the timeline on
the emulator's clock, loading (flag, environment, control API), precise refusals of broken
files, and repeatable runs."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from payletter_emulator import create_app
from payletter_emulator.client.cli import main
from payletter_emulator.domain.payhash import payhash
from payletter_emulator.resources import scenarios_dir

from .conftest import PAYMENT_KEY, Api, EmulatorProcess, freeze_at, ok, refused, run_cli, stored

T0 = "2026-11-29T10:00:00+09:00"
LIBRARY = sorted(p.stem for p in scenarios_dir().glob("*.yaml"))


@pytest.fixture
def use(api):
    """Put a scenario (a document, or the name of a shipped file) in force for one test."""
    def put(scenario) -> dict:
        if isinstance(scenario, str):
            text = (scenarios_dir() / f"{scenario}.yaml").read_text("utf-8")
            response = api.http.put(api.url + "/_emulator/scenario", data=text.encode(),
                                    headers={"Content-Type": "application/yaml"})
        else:
            response = api.http.put(api.url + "/_emulator/scenario", json={"version": 1, **scenario})
        assert response.status_code == 200, response.text
        return response.json()

    yield put
    api.http.delete(api.url + "/_emulator/scenario")


def rules(*specs) -> dict:
    return {"rules": [{"name": f"rule {i}", **spec} for i, spec in enumerate(specs)]}


def approve(api: Api, token: int, **choices) -> dict:
    return api.control(f"/payments/{token}/approve", choices)


def outcome(api: Api, **overrides) -> dict:
    """Request a payment and let the payer finish it; the control API's answer."""
    answer = approve(api, api.request_payment(**overrides))
    api.flush()
    return answer


def journal_rules(api: Api) -> list:
    return [entry["rule"] for entry in api.control("/requests", method="GET")["requests"]]


# --- matchers --------------------------------------------------------------------------------

DECLINE = {"decline": {"code": "6100", "message": "scenario decline"}}


@pytest.mark.parametrize("when,declined,approved", [
    ({"pgcode": "mobile"}, {"pgcode": "mobile"}, {}),
    ({"pgcode": ["mobile", "payco"]}, {"pgcode": "payco"}, {}),
    ({"amount": 1500}, {"amount": 1500}, {"amount": 1501}),
    ({"amount": 1500}, {"amount": "1500"}, {"amount": "150"}),
    ({"amount": [100, 200]}, {"amount": 200}, {"amount": 300}),
    ({"amount": {"min": 5000, "max": 9999}}, {"amount": 9999}, {"amount": 10000}),
    ({"amount": {"min": 5000}}, {"amount": 5000}, {"amount": 4999}),
    ({"amount": {"ends_with": "13"}}, {"amount": 2013}, {"amount": 2031}),
    ({"user_id": {"regex": "^vip-"}}, {"user_id": "vip-7"}, {"user_id": "a-vip-7"}),
    ({"order_no": ["A-1", "A-2"]}, {"order_no": "A-2"}, {"order_no": "A-3"}),
    ({"product_name": {"regex": "쿠폰"}}, {"product_name": "할인 쿠폰"}, {"product_name": "coupon"}),
    ({"custom_parameter": "fail-me"}, {"custom_parameter": "fail-me"}, {"custom_parameter": "fail-me-not"}),
    ({"client_id": "pay_test", "amount": 1234}, {"amount": 1234}, {}),
])
def test_payer_rules_match_the_payment(api, use, when, declined, approved):
    use(rules({"when": when, "then": DECLINE}))
    answer = outcome(api, **declined)
    assert answer["fields"]["code"] == "6100" and answer["rule"] == "rule 0"
    assert outcome(api, **approved)["fields"]["code"] == "0"


def test_a_header_of_the_payment_request_chooses_the_payers_outcome(api, use):
    use("declined-cards")
    token = api.http.post(api.url + "/v1.0/payments/request", json=api.request_body(),
                          headers={"Authorization": f"PLKEY {PAYMENT_KEY}",
                                   "X-Emulator-Scenario": "declined-card"}).json()["token"]
    answer = approve(api, token)
    assert answer["fields"]["code"] == "6001" and answer["rule"] == "declined by header"
    assert stored(api, token)["status"] == "failed"
    assert outcome(api)["fields"]["code"] == "0"


def test_the_card_number_typed_by_the_payer(api, use):
    use("declined-cards")
    assert approve(api, api.request_payment(), card_number="4000000000000101")["fields"]["code"] == "6004"
    assert approve(api, api.request_payment(), card_number="4111111111111111")["fields"]["code"] == "0"


def test_the_first_matching_rule_wins(api, use):
    use(rules({"when": {"amount": {"min": 1000}}, "then": {"decline": {"code": "6001"}}},
              {"when": {"amount": 5000}, "then": {"decline": {"code": "6002"}}}))
    assert outcome(api, amount=5000)["fields"]["code"] == "6001"


def test_a_time_window_on_the_emulators_clock(api, use):
    freeze_at(api, T0)
    use(rules({"when": {"time": {"from": "2026-11-29T11:00:00", "until": "2026-11-29T12:00:00"}},
               "then": {"api_error": {"status": 503, "code": 999}}}))
    ok(api.post("/v1.0/payments/request", api.request_body()))
    api.advance(seconds=3600)
    refused(api.post("/v1.0/payments/request", api.request_body()), 503, 999)
    api.advance(seconds=3600)
    ok(api.post("/v1.0/payments/request", api.request_body()))


# --- how often a rule applies ------------------------------------------------------------------

@pytest.mark.parametrize("times,declines", [(1, 1), (3, 3), ("always", 5)])
def test_times(api, use, times, declines):
    use(rules({"times": times, "then": DECLINE}))
    codes = [outcome(api)["fields"]["code"] for _ in range(5)]
    assert codes == ["6100"] * declines + ["0"] * (5 - declines)
    [view] = api.control("/scenario", method="GET")["rules"]
    assert view["applied"] == declines


def test_reset_starts_the_scenario_again(api, use):
    use({**rules({"times": 1, "then": DECLINE}), "settings": {"clock": {"start": T0, "frozen": True}}})
    assert outcome(api)["fields"]["code"] == "6100"
    api.advance(seconds=3600)
    api.control("/reset")
    assert api.control("/clock", method="GET") == {"now": T0, "frozen": True}
    assert outcome(api)["fields"]["code"] == "6100"


# --- outcomes of the payer ----------------------------------------------------------------------

def test_abandon(api, use):
    use(rules({"when": {"pgcode": "creditcard"}, "then": {"abandon": {}}}))
    token = api.request_payment()
    answer = approve(api, token)
    assert answer == {"redirect_url": "https://merchant.example/cancel", "rule": "rule 0"}
    assert stored(api, token)["status"] == "abandoned"


def test_approve_with_the_payers_choice(api, use, callback_receiver):
    use(rules({"when": {"pgcode": "naverpay"}, "then": {"approve": {"option": "naverpoint"}}}))
    fields = outcome(api, pgcode="naverpay")["fields"]
    assert fields["pgcode"] == "naverpoint"
    assert callback_receiver.received[-1].json()["pgcode"] == "naverpoint"


def test_backdated_payment_on_the_last_day_of_its_window(api, use):
    use("cancellation-window-closing")
    fields = outcome(api, order_no="closing-1")["fields"]
    assert fields["transaction_date"].startswith("2026-06-03")
    api.advance(seconds=86400)
    refused(api.cancel(fields), 406, 4006)

    use("cancellation-window-closing")
    fields = outcome(api, order_no="closing-2")["fields"]
    ok(api.cancel(fields))  # day 180: the last day a card payment can be cancelled

    mobile = outcome(api, pgcode="mobile", order_no="closing-3")["fields"]
    assert mobile["transaction_date"].startswith("2026-11-01")
    api.advance(seconds=86400)  # December: past "within the month of transaction"
    refused(api.cancel(mobile), 406, 4006)


# --- outcomes of an API request ------------------------------------------------------------------

def test_api_error_with_any_status_and_code(api, use):
    use(rules({"when": {"endpoint": "payments/cancel"}, "then": {"api_error": {"status": 406, "code": 4099,
                                                                                 "message": "try later"}}}))
    fields = api.pay()
    assert refused(api.cancel(fields), 406, 4099)["message"] == "try later"
    assert journal_rules(api)[-1] == "rule 0"
    assert stored(api, fields["tid"])["cancelled_amount"] == 0


def test_outage_and_latency_and_dropped_connections(api, use):
    use("gateway-outage")
    assert api.control("/clock", method="GET")["now"] == "2026-11-29T09:55:00+09:00"
    ok(api.post("/v1.0/payments/request", api.request_body()))
    api.advance(seconds=300)
    body = refused(api.post("/v1.0/payments/request", api.request_body()), 503, 999)
    assert "down" in body["message"]
    api.advance(seconds=1800)
    ok(api.post("/v1.0/payments/request", api.request_body()))
    refused(api.http.post(api.url + "/v1.0/payments/request", json=api.request_body(),
                          headers={"Authorization": f"PLKEY {PAYMENT_KEY}", "X-Emulator-Scenario": "outage"}), 500, 999)

    started = time.monotonic()
    ok(api.post("/v1.0/payments/request", api.request_body(pgcode="mobile")))
    assert time.monotonic() - started >= 1.5

    search = {"client_id": "pay_test", "date": "20261129", "date_type": "transaction"}
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            requests.get(api.url + "/v1.0/payments/transaction/list", params=search,
                         headers={"Authorization": "PLKEY MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="}, timeout=10)
    ok(api.get("/v1.0/payments/transaction/list", search))
    assert journal_rules(api)[-4:] == ["slow mobile requests", "search drops the connection",
                                       "search drops the connection", None]


def test_billkey_refused(api, use):
    use("autopay-refused")
    billkey = api.pay(autopay_flag="Y", user_id="refused-1")["billkey"]
    body = {"pgcode": "creditcard", "client_id": "pay_test", "user_id": "refused-1", "amount": 1000,
            "product_name": "plan", "billkey": billkey, "service_name": "s", "ip_addr": "127.0.0.1"}
    refused(api.post("/v1.0/payments/autopay", body), 406, 4107)
    other = api.pay(autopay_flag="Y", user_id="ok-1")["billkey"]
    limit = {**body, "user_id": "ok-1", "billkey": other, "amount": 99999}
    assert refused(api.post("/v1.0/payments/autopay", limit), 406, 7001)["message"].startswith("한도")
    ok(api.post("/v1.0/payments/autopay", limit))  # once only


# --- outcomes of the callback ------------------------------------------------------------------------

def notification(api: Api, tid: str) -> dict:
    [found] = api.control(f"/callbacks?tid={tid}", method="GET")["callbacks"]
    return found


def test_flaky_callbacks_arrive_three_times(api, use, callback_receiver):
    use("flaky-callbacks")
    api.control("/clock", {"freeze": True})
    tid = api.pay()["tid"]
    api.advance(seconds=600)
    api.flush()
    found = notification(api, tid)
    assert found["status"] == "delivered" and found["attempts_made"] == 3
    assert "two lost answers" in found["attempts"][0]["error"]
    assert [r.json()["tid"] for r in callback_receiver.received] == [tid] * 3


def test_callbacks_that_never_succeed(api, use, callback_receiver):
    use("callbacks-never-succeed")
    api.control("/clock", {"freeze": True})
    tid = api.pay()["tid"]
    api.advance(seconds=6000)
    api.flush()
    assert notification(api, tid)["status"] == "failed"
    assert len(callback_receiver.received) == 21


def test_forged_callbacks(api, use, callback_receiver):
    use("forged-callbacks")
    wrong = api.pay(order_no="forged-hash-1", amount=5000)
    body = callback_receiver.received[-1].json()
    assert body["payhash"] != payhash(body["user_id"], body["amount"], body["tid"], PAYMENT_KEY)
    assert wrong["payhash"] == payhash("test_user_id", 5000, wrong["tid"], PAYMENT_KEY)  # the return is true

    api.pay(order_no="forged-amount-1", amount=5000)
    body = callback_receiver.received[-1].json()
    assert body["amount"] == 1
    assert body["payhash"] == payhash(body["user_id"], 5000, body["tid"], PAYMENT_KEY)
    assert notification(api, body["tid"])["fault"] == {"rule": "tampered amount", "tampered_amount": 1}


def test_out_of_order_and_twice(api, use, callback_receiver):
    use("forged-callbacks")
    late = api.pay(order_no="late-1")["tid"]
    assert callback_receiver.received == [] and notification(api, late)["held"] is True
    twice = api.pay(order_no="twice-1")["tid"]
    api.flush()
    assert [r.json()["tid"] for r in callback_receiver.received] == [twice, twice, late]
    assert [a["kind"] for a in notification(api, twice)["attempts"]] == ["first", "duplicate"]


def test_delayed_and_never_delivered_callbacks(api, use, callback_receiver):
    use(rules({"when": {"order_no": "slow"}, "then": {"callback": {"delay_seconds": 120}}},
              {"when": {"order_no": "lost"}, "then": {"callback": {"never": True}}}))
    api.control("/clock", {"freeze": True})
    slow = api.pay(order_no="slow")["tid"]
    lost = api.pay(order_no="lost")["tid"]
    assert callback_receiver.received == []
    assert notification(api, lost)["status"] == "failed"
    assert "never delivered" in notification(api, lost)["warnings"][-1]
    api.advance(seconds=120)
    api.flush()
    assert [r.json()["tid"] for r in callback_receiver.received] == [slow]


# --- virtual accounts and the timeline ------------------------------------------------------------------

def test_a_late_deposit_after_three_days(api, use, callback_receiver):
    use("virtual-account-late-deposit")
    account = api.pay(pgcode="virtualaccount", amount=10000)
    short = api.pay(pgcode="virtualaccount", amount=10000, order_no="short-1")
    api.advance(days=3)
    api.flush()
    paid = stored(api, account["tid"])
    assert paid["status"] == "approved"
    assert paid["transaction_date"] == "2026-12-02 10:00:00"
    assert [r.json()["tid"] for r in callback_receiver.received] == [account["tid"]]
    assert stored(api, short["tid"])["status"] == "awaiting_deposit"
    jobs = {job["origin"]: job for job in api.control("/scenario", method="GET")["jobs"]}
    assert "must be 10000 KRW, got 9000" in jobs["rule short deposit"]["result"]
    assert jobs["rule deposit after three days"]["result"] == "deposited"


def test_expired_accounts_refuse_deposits(api, use, callback_receiver):
    use("virtual-account-expired")
    timeline = api.pay(pgcode="virtualaccount", amount=10000, order_no="VA-TIMELINE")
    account = api.pay(pgcode="virtualaccount", amount=10000)
    api.advance(seconds=7200)
    response = api.http.post(f"{api.url}/_emulator/virtual-accounts/{account['tid']}/deposit", json={})
    refused(response, 409, 4306)

    api.advance(seconds=3600)  # 13:00: closed at 12:00, the deposit at 12:30 refused
    api.flush()
    jobs = [job["result"] for job in api.control("/scenario", method="GET")["jobs"] if job["origin"].startswith("timeline")]
    assert jobs[0] == "expired" and jobs[1].startswith("refused: the virtual account")
    assert stored(api, timeline["tid"])["status"] == "awaiting_deposit"
    assert callback_receiver.received == []


def test_a_timeline_deposit_by_order_no(api, use, callback_receiver):
    use({"settings": {"clock": {"start": T0, "frozen": True}},
         "timeline": [{"at": "2026-11-29T15:00:00+09:00", "deposit": {"order_no": "VA-7"}}]})
    account = api.pay(pgcode="virtualaccount", amount=10000, order_no="VA-7")
    api.advance(seconds=5 * 3600)
    api.flush()
    paid = stored(api, account["tid"])
    assert paid["status"] == "approved" and paid["transaction_date"] == "2026-11-29 15:00:00"
    assert [r.json()["order_no"] for r in callback_receiver.received] == ["VA-7"]


# --- settings, clients and the happy path ------------------------------------------------------------------

def test_happy_path_for_every_method(api, use):
    use("happy-path")
    from payletter_emulator.domain.methods import table
    for method in table().values():
        answer = outcome(api, pgcode=method.pgcode, amount=max(method.minimum, 1000),
                         service_name="payletter")
        assert answer["fields"]["code"] == "0", (method.pgcode, answer)


def test_scenario_settings_clients_and_policy(api, use, callback_receiver):
    use({"settings": {"strict": True, "callbacks": {"interval": 60, "retries": 1}},
         "clients": [{"client_id": "shop_s", "payment_key": "S-PAYMENT-KEY-1", "search_key": "S-SEARCH-KEY-1"}]})
    refused(api.post("/v1.0/payments/request", api.request_body(amount="1000")), 406, 2007)
    body = api.request_body(client_id="shop_s")
    ok(api.post("/v1.0/payments/request", body, key="S-PAYMENT-KEY-1"))
    callback_receiver.status = 500
    api.control("/clock", {"freeze": True})
    tid = api.pay()["tid"]
    api.advance(seconds=60)
    api.flush()
    assert notification(api, tid)["status"] == "failed"
    assert len(notification(api, tid)["attempts"]) == 2


def test_put_refuses_an_invalid_scenario_and_keeps_the_old_one(api, use):
    use(rules({"then": DECLINE}))
    response = api.http.put(api.url + "/_emulator/scenario",
                            json={"version": 1, "rules": [{"name": "x", "then": {"decline": {}, "abandon": {}}}]})
    body = refused(response, 406, 4501)
    assert "rules[0].then" in body["message"] and "Exactly one outcome" in body["message"]
    response = api.http.put(api.url + "/_emulator/scenario", data=b"version: [1",
                            headers={"Content-Type": "application/yaml"})
    assert "not valid JSON or YAML" in refused(response, 406, 4501)["message"]
    assert outcome(api)["fields"]["code"] == "6100"


# --- loading from files, and checking them ------------------------------------------------------------------

@pytest.mark.parametrize("name", LIBRARY)
def test_every_shipped_scenario_is_valid_and_documented(name):
    path = scenarios_dir() / f"{name}.yaml"
    assert path.read_text("utf-8").startswith(f"# {name}: ")
    result = CliRunner().invoke(main, ["scenario", "check", name])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(path.read_text("utf-8"))["name"] == name


def test_every_shipped_scenario_is_used_by_a_test():
    here = Path(__file__).parent  # Payletter Global's scenarios are tested beside its other tests
    source = "".join(path.read_text("utf-8") for path in (here / "test_scenarios.py", here / "test_global_scenarios.py"))
    assert [name for name in LIBRARY if f'"{name}"' not in source] == []


BROKEN = {
    "syntax": ("version: 1\nrules: [\n", "not valid YAML"),
    "version": ("version: 2\n", "version: 1 was expected"),
    "unknown key": ("version: 1\nrulez: []\n", "(top): Additional properties are not allowed ('rulez'"),
    "no outcome": ("version: 1\nrules:\n  - name: a\n    then: {}\n", "rules[0].then: {} is not allowed here"),
    "wrong type": ("version: 1\nrules:\n  - name: a\n    when: {amount: lots}\n    then: {abandon: {}}\n",
                   "rules[0].when.amount: 'lots' is not allowed here; expected: An amount"),
    "regex": ("version: 1\nrules:\n  - name: a\n    when: {user_id: {regex: '('}}\n    then: {abandon: {}}\n",
              "rules[0].when.user_id.regex: '(' is not a regular expression"),
    "twice the same name": ("version: 1\nrules:\n  - {name: a, then: {abandon: {}}}\n  - {name: a, then: {abandon: {}}}\n",
                            "rules[1].name: 'a' is the name of an earlier rule"),
    "endpoint": ("version: 1\nrules:\n  - {name: a, when: {endpoint: payment/request}, then: {latency: {ms: 1}}}\n",
                 "rules[0].when.endpoint: 'payment/request' is not an endpoint"),
    "moment": ("version: 1\ntimeline:\n  - {at: tomorrow, deposit: {order_no: A}}\n",
               "timeline[0].at: 'tomorrow' is not an ISO 8601 date and time"),
    "stage": ("version: 1\nrules:\n  - {name: a, when: {card_number: '4000'}, then: {latency: {ms: 1}}}\n",
              "rules[0].when.card_number: the payer types the card number after the API request"),
    # Errors that teach: a near miss is named with what was probably meant.
    "pgcode": ("version: 1\nrules:\n  - {name: a, when: {pgcode: [mobile, creditcrad]}, then: {abandon: {}}}\n",
               "rules[0].when.pgcode: 'creditcrad' is not a pgcode; did you mean 'creditcard'?"),
    "no such pgcode": ("version: 1\nrules:\n  - {name: a, when: {pgcode: bitcoin}, then: {abandon: {}}}\n",
                       "rules[0].when.pgcode: 'bitcoin' is not a pgcode (docs/payment-methods.md lists them)"),
    "header value type": ("version: 1\nrules:\n  - {name: a, when: {header: {X-Test: {regx: 'a.*'}}}, "
                          "then: {abandon: {}}}\n",
                          "rules[0].when.header.X-Test: {'regx': 'a.*'} is not allowed here; expected: A value, "
                          "a list of values (any of them), or {regex: ...}; 'regx': did you mean 'regex'?"),
    "header boolean": ("version: 1\nrules:\n  - {name: a, when: {header: {X-Test: yes}}, then: {abandon: {}}}\n",
                       "rules[0].when.header.X-Test: True is not allowed here; expected: A value, a list of values "
                       "(any of them), or {regex: ...}; did you mean a text? YAML reads an unquoted "
                       "true/false/yes/no/on/off as a boolean: quote it"),
    "misspelt condition": ("version: 1\nrules:\n  - {name: a, when: {pgcod: mobile}, then: {abandon: {}}}\n",
                           "('pgcod' was unexpected); 'pgcod': did you mean 'pgcode'?"),
    "misspelt outcome": ("version: 1\nrules:\n  - {name: a, then: {declne: {}}}\n",
                         "('declne' was unexpected); 'declne': did you mean 'decline'?"),
}


def test_a_rule_may_name_every_gateway_route_and_nothing_else():
    app = create_app(db=":memory:")
    routes = {rule.rule.removeprefix("/v1.0/").removesuffix("/<tid>") for rule in app.url_map.iter_rules()
              if rule.endpoint.startswith("gateway_api.")}
    routes |= {rule.rule.removeprefix("/").replace("<pginfo>", "{pginfo}") for rule in app.url_map.iter_rules()
               if rule.endpoint.startswith("global_api.")}  # Payletter Global's, by their paths
    client = app.test_client()

    def put(endpoint):
        return client.put("/_emulator/scenario", json={"version": 1, "rules": [
            {"name": "a", "when": {"endpoint": endpoint}, "then": {"latency": {"ms": 1}}}]})

    assert [name for name in sorted(routes) if put(name).status_code != 200] == []
    refusal = put("payment/request")
    assert refusal.status_code == 406
    assert set(refusal.get_json()["message"].split("; one of ")[1].split(", ")) == routes


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_file_is_refused_with_the_file_the_place_and_the_rule(tmp_path, kind):
    text, expected = BROKEN[kind]
    path = tmp_path / f"{kind.replace(' ', '-')}.yaml"
    path.write_text(text, "utf-8")
    result = CliRunner().invoke(main, ["scenario", "check", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output and expected in result.output, result.output


def test_a_broken_scenario_never_starts_the_server_silently(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN["regex"][0], "utf-8")
    process = run_cli("serve", "--port", "0", "--db", ":memory:", "--scenario", str(path))
    assert process.returncode != 0
    assert f"{path}: rules[0].when.user_id.regex" in process.stderr


def test_files_from_the_flag_and_the_environment_merge_in_order(tmp_path, callback_receiver):
    extra = tmp_path / "extra.json"
    extra.write_text('{"version": 1, "settings": {"clock": {"start": "2027-01-01T09:00:00+09:00"}},'
                     ' "rules": [{"name": "json rule", "when": {"amount": 777}, "then": {"abandon": {}}}]}')
    process = EmulatorProcess(tmp_path, "--scenario", "happy-path", "--scenario", str(extra))
    try:
        api = Api(process.url, callback_receiver.url)
        assert api.control("/clock", method="GET") == {"now": "2027-01-01T09:00:00+09:00", "frozen": True}
        view = api.control("/scenario", method="GET")
        assert view["scenario"]["name"].startswith("happy-path + ")
        assert [r["name"] for r in view["rules"]] == ["json rule"]
        assert "redirect_url" in approve(api, api.request_payment(amount=777))
    finally:
        process.stop()
    (tmp_path / "env").mkdir()
    env = EmulatorProcess(tmp_path / "env", env={"PAYLETTER_EMULATOR_SCENARIO": "declined-cards"})
    try:
        names = [r["name"] for r in Api(env.url, "").control("/scenario", method="GET")["rules"]]
        assert names[0] == "declined by header"
    finally:
        env.stop()


def test_the_same_scenario_and_requests_give_the_same_answers(tmp_path, callback_receiver):
    def run(name: str) -> list[bytes]:
        workdir = tmp_path / name
        workdir.mkdir()
        # One process: with several, which one answers a request (and so which block of tokens
        # and which seeded generator it draws from) is up to the system.
        process = EmulatorProcess(workdir, "--workers", "1", "--scenario", "happy-path", "--scenario", "declined-cards")
        try:
            api = Api(process.url, callback_receiver.url)
            answers = []
            for pgcode, amount in (("creditcard", 50000), ("mobile", 1000), ("virtualaccount", 10000),
                                   ("creditcard", 1013), ("naverpay", 3000)):
                response = api.post("/v1.0/payments/request", api.request_body(pgcode=pgcode, amount=amount))
                answers.append(response.content.replace(process.url.encode(), b"BASE"))
                approved = api.http.post(f"{api.url}/_emulator/payments/{response.json()['token']}/approve", json={})
                answers.append(approved.content.replace(process.url.encode(), b"BASE"))
            answers.append(api.get("/v1.0/payments/transaction/list", {
                "client_id": "pay_test", "date": "20261129", "date_type": "transaction"}).content)
            return answers
        finally:
            process.stop()

    first, second = run("first"), run("second")
    assert [(a, b) for a, b in zip(first, second) if a != b] == []
    assert Counter(b'"code":"0"' in a for a in first)[True] >= 3
