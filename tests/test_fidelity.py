"""Real merchants' code works unchanged: each test replays a behaviour of the real test gateway
seen in public code or captures (docs/fidelity.md names the evidence of each)."""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, fields as dataclass_fields
from pathlib import Path

import pytest
import requests

from payletter_emulator.domain.details import BANKS
from payletter_emulator.domain.methods import table
from payletter_emulator.domain.payhash import payhash

from .conftest import PAYMENT_KEY, SEARCH_KEY, Answer, CallbackReceiver, ok, refused, serve_receiver, stored

REQUEST = "/v1.0/payments/request"
HEADERS = {"Authorization": f"PLKEY {PAYMENT_KEY}", "Content-Type": "application/json"}
CAPTURED_USER_NAME = "Dr. Godfrey Larkin III"  # 22 characters, approved and echoed by the real test gateway


def php_shop_body(*, callback_url: str, user_name: str = CAPTURED_USER_NAME, amount: str = "1000",
                  product_name: str = "호텔타임") -> str:
    """The body of a real Laravel shop's payments/request, as its controller builds it: a
    single-quoted PHP template (members indented 12 spaces, keys padded to 20, a trailing comma
    before the `}` indented 8), every value a string, custom_parameter empty. The values are
    those of a captured return of the real test gateway (user 13, order 202003050002)."""
    members = [("pgcode", "creditcard"), ("user_id", "13"), ("user_name", user_name), ("service_name", "dmp9"),
               ("client_id", "pay_test"), ("order_no", "202003050002"), ("amount", amount),
               ("product_name", product_name), ("email_flag", "Y"), ("email_addr", "mbeahan@example.net"),
               ("autopay_flag", "N"), ("receipt_flag", "Y"), ("custom_parameter", ""),
               ("return_url", "http://dmp9.test/Payments/payreturn"), ("callback_url", callback_url),
               ("cancel_url", "http://dmp9.test/Payments/payCancel")]
    lines = "".join(f'            {json.dumps(key):<20}: "{value}",\n' for key, value in members)
    return "{\n" + lines + "        }"


def journal(api) -> dict:
    return api.control("/requests", method="GET")["requests"][-1]


# --- request bodies ---------------------------------------------------------------------------

def test_the_php_shops_body_gets_a_token_as_from_the_real_gateway(api):
    body = php_shop_body(callback_url=api.callback_url).encode("utf-8")
    assert body.count(b",\n        }") == 1 and body.startswith(b'{\n            "pgcode"            : "creditcard",\n')
    response = api.http.post(api.url + REQUEST, data=body, headers=HEADERS, timeout=30)
    answer = ok(response)
    # The captured answer's shape: token (a number), online_url, mobile_url, in that order.
    assert list(answer) == ["token", "online_url", "mobile_url"]
    assert isinstance(answer["token"], int) and len(str(answer["token"])) == 18
    assert answer["online_url"].endswith(f"/pgsvc/hub.asp?location=online&token={answer['token']}")
    assert journal(api)["warnings"] == [
        "body: trailing comma before } at line 17 column 72",
        "user_name: 22 characters, longer than the reference's 20; the real test gateway accepted 22",
        "amount: sent as a string ('1000'), expected a number",
        'custom_parameter: empty optional field sent as "", treated as absent',
    ]


def test_the_php_shops_payment_returns_what_the_real_test_gateway_returned(api, callback_receiver):
    """A captured return of that shop: `code=0&message=&user_id=13&user_name=Dr. Godfrey Larkin
    III&...&pay_info=테스트카드&domestic_flag=N&install_month=00&...`, cid the tid's serial less one."""
    body = php_shop_body(callback_url=api.callback_url).encode("utf-8")
    token = ok(api.http.post(api.url + REQUEST, data=body, headers=HEADERS, timeout=30))["token"]
    fields = api.control(f"/payments/{token}/approve", {})["fields"]
    captured = ["code", "message", "user_id", "user_name", "order_no", "service_name", "product_name",
                "custom_parameter", "pgcode", "tid", "cid", "amount", "pay_info", "domestic_flag", "install_month",
                "payhash", "taxfree_amount", "tax_amount", "nonsettle_amount", "transaction_date"]
    assert set(captured) <= set(fields)
    assert {name: fields[name] for name in captured if name not in ("tid", "cid", "payhash", "transaction_date")} == {
        "code": "0", "message": "", "user_id": "13", "user_name": CAPTURED_USER_NAME, "order_no": "202003050002",
        "service_name": "dmp9", "product_name": "호텔타임", "custom_parameter": "", "pgcode": "creditcard",
        "amount": "1000", "pay_info": "테스트카드", "domestic_flag": "N", "install_month": "00",
        "taxfree_amount": "0", "tax_amount": "91", "nonsettle_amount": "0"}
    assert re.fullmatch(r"tpay_test-\d{8}\d{7}", fields["tid"])
    assert int(fields["cid"]) == int(fields["tid"][-7:]) - 1 and len(fields["cid"]) == 7
    assert fields["payhash"] == payhash("13", 1000, fields["tid"], PAYMENT_KEY)
    api.flush()
    [callback] = callback_receiver.received
    assert callback.json()["user_name"] == CAPTURED_USER_NAME


def test_strict_mode_refuses_the_trailing_comma_by_name(strict_api):
    body = php_shop_body(callback_url=strict_api.callback_url).encode("utf-8")
    response = strict_api.http.post(strict_api.url + REQUEST, data=body, headers=HEADERS, timeout=30)
    assert refused(response, 406, 2007)["message"] == (
        "body: trailing comma before } at line 17 column 72; the real gateway tolerates this, --strict does not")


def test_strict_mode_keeps_the_references_size_of_user_name(strict_api):
    response = strict_api.post(REQUEST, strict_api.request_body(user_name=CAPTURED_USER_NAME))
    assert refused(response, 406, 2003)["message"] == "user_name is longer than 20 characters"


def test_lenient_mode_takes_no_more_than_real_traffic_showed(api):
    assert api.post(REQUEST, api.request_body(user_name="x" * 21)).status_code == 200
    assert journal(api)["warnings"] == [
        "user_name: 21 characters, longer than the reference's 20; the real test gateway accepted 22"]
    assert refused(api.post(REQUEST, api.request_body(user_name="x" * 23)), 406, 2003)["message"] == \
        "user_name is longer than 22 characters"


def test_a_body_in_euc_kr_gets_the_real_code_997(api):
    """The shop's first version sent EUC-KR; the real test gateway answered `{"code":997,
    "message":"지정한 코드 페이지의 367 인덱스에서 바이트 [C5]을(를) 유니코드로 변환할 수 없습니다."}`
    (its .NET decoder: the first bad byte and its offset). With a product name that starts with
    테 (C5 D7 in EUC-KR) after a 6-digit amount, that byte sits at offset 367 of this template."""
    body = php_shop_body(callback_url="http://dmp9.test/Payments/paycallback", amount="100000",
                         product_name="테스트 상품").encode("euc-kr")
    response = api.http.post(api.url + REQUEST, data=body, headers=HEADERS, timeout=30)
    assert refused(response, 400, 997) == {
        "code": 997, "message": "지정한 코드 페이지의 367 인덱스에서 바이트 [C5]을(를) 유니코드로 변환할 수 없습니다."}
    assert api.control("/payments", method="GET")["payments"] == []


def test_commas_inside_values_are_left_alone(api):
    body = php_shop_body(callback_url=api.callback_url, product_name="커피, 원두,}").encode("utf-8")
    token = ok(api.http.post(api.url + REQUEST, data=body, headers=HEADERS, timeout=30))["token"]
    assert stored(api, token)["product_name"] == "커피, 원두,}"


# --- callbacks ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CashReceipt:
    cid: str
    code: str
    deal_no: str
    issue_type: str
    message: str
    payer_sid: str
    type: str


@dataclass(frozen=True)
class RealCallback:
    """Every key real callbacks carry, typed as they are: the keys of a captured virtual-account
    callback of the real test gateway, those typed clients of 2025 require (`method_info`,
    `coupon_amount`, `receipt_possible_amount`, `disposable_cup_deposit`), and those a PHP
    handler reads without isset (`card_code`, `pointuse_flag`)."""

    amount: int
    billkey: str
    card_code: str
    card_info: str
    cid: str
    coupon_amount: int
    custom_parameter: str
    discount_amount: int
    disposable_cup_deposit: int
    domestic_flag: str
    install_month: str
    method_info: str
    nonsettle_amount: int
    order_no: str
    pay_info: str
    payhash: str
    pgcode: str
    pointuse_flag: str
    product_name: str
    receipt_possible_amount: int
    service_name: str
    tax_amount: int
    taxfree_amount: int
    tid: str
    transaction_date: str
    user_id: str
    user_name: str
    cash_receipt: CashReceipt | None = None

    @classmethod
    def parse(cls, raw: bytes) -> "RealCallback":
        """As strictly as a typed client: every key present, of its type (no bool for an int)."""
        body = json.loads(raw)
        values = {}
        for spec in dataclass_fields(cls):
            if spec.name == "cash_receipt":
                if "cash_receipt" in body:
                    values["cash_receipt"] = CashReceipt(**body["cash_receipt"])
                    assert all(isinstance(v, str) for v in body["cash_receipt"].values())
                continue
            assert spec.name in body, f"the callback has no {spec.name}"
            kind = {"int": int, "str": str}[spec.type]
            value = body[spec.name]
            assert type(value) is kind, f"{spec.name} is {value!r}, not {spec.type}"
            values[spec.name] = value
        return cls(**values)


def the_callback(api, callback_receiver) -> tuple[RealCallback, bytes]:
    api.flush()
    [received] = callback_receiver.received
    return RealCallback.parse(received.body), received.body


def test_a_card_callback_parses_as_a_real_one(api, callback_receiver):
    fields = api.pay(amount=60000, approve={"install_month": "03"})
    callback, raw = the_callback(api, callback_receiver)
    assert (callback.install_month, callback.pay_info, callback.cid) == ("03", "테스트카드", fields["cid"])
    assert (callback.coupon_amount, callback.receipt_possible_amount, callback.method_info) == (0, 0, "")
    assert callback.cash_receipt is None
    keys = list(json.loads(raw))
    assert keys == sorted(keys), "real callbacks come with their keys in alphabetical order"


def test_a_virtual_account_callback_parses_as_the_captured_one(api, callback_receiver):
    """The captured deposit callback: pay_info the account number, install_month "", and a
    cash_receipt object of type 06 (no need to issue) although none was asked."""
    fields = api.pay(pgcode="virtualaccount", amount=1000, taxfree_amount=100, tax_amount=20)
    assert fields["pay_info"] == fields["account_no"]
    assert fields["bank_name"] == BANKS[fields["bank_code"]]
    assert fields["cash_receipt_type"] == "06"
    api.deposit(fields["tid"])
    callback, _ = the_callback(api, callback_receiver)
    assert callback.pay_info == fields["account_no"]
    assert (callback.install_month, callback.domestic_flag, callback.card_info, callback.billkey) == ("", "", "", "")
    assert callback.cash_receipt == CashReceipt(cid="", code="0", deal_no="", issue_type="1", message="",
                                                payer_sid="", type="06")
    assert (callback.amount, callback.taxfree_amount, callback.tax_amount) == (1000, 100, 20)


# --- card companies ---------------------------------------------------------------------------

# A typed Go client's table of Payletter's card codes (whitecubeinc/payletter constant.go @
# 09c06048be3b4f2bb8ab06f47c952ed25ed7d424). Its ReplacePayInfo (type.go @ 5eb88b29) shows
# the name of a callback's card_code instead of pay_info: an unknown code shows "".
GO_CARD_CODES = {
    "P001": "비씨카드", "P002": "KB국민카드", "P003": "하나카드", "P004": "삼성카드", "P005": "신한카드",
    "P006": "현대카드", "P007": "롯데카드", "P008": "NH카드", "P009": "씨티카드", "P010": "수협카드",
    "P011": "우리카드", "P012": "신협카드", "P013": "광주카드", "P014": "전북카드", "P015": "제주카드",
    "P016": "우체국카드", "P017": "MG새마을금고", "P018": "저축은행", "P019": "카카오뱅크카드", "P020": "은련카드",
    "P021": "해외 VISA 카드", "P022": "해외 MASTER 카드", "P023": "해외 JCB 카드", "P024": "해외 AMX 카드",
    "P025": "해외 DINERS 카드"}
CARD_COMPANIES = tomllib.loads(
    (Path(__file__).resolve().parent.parent / "emulator" / "domain" / "card_companies.toml").read_text("utf-8"))


def card_number(bin_: str) -> str:
    """A 16-digit number starting with `bin_` that passes the Luhn check, as the payer types one."""
    body = bin_ + "000000000"
    total = sum(d if i % 2 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(map(int, reversed(body))))
    return body + str(-total % 10)


def test_the_card_company_table_is_payletters():
    assert {code: row["name"] for code, row in CARD_COMPANIES["codes"].items()} == GO_CARD_CODES
    assert CARD_COMPANIES["default"] in GO_CARD_CODES


@pytest.mark.parametrize("code", sorted(GO_CARD_CODES))
def test_a_cards_code_is_its_companys_in_the_return_and_the_callback(api, callback_receiver, code):
    """The payer's card number says the company (its bin, card_companies.toml); a typed client
    that shows the company's name instead of pay_info finds it; a foreign brand is overseas."""
    row = CARD_COMPANIES["codes"][code]
    fields = api.pay(approve={"card_number": card_number(row["bin"])}, amount=1000)
    foreign = "Y" if row.get("foreign") else "N"
    assert (fields["card_code"], fields["domestic_flag"], fields["pay_info"]) == (code, foreign, "테스트카드")
    assert fields["card_info"].startswith(row["bin"])
    callback, _ = the_callback(api, callback_receiver)
    assert (callback.card_code, callback.domestic_flag, callback.tid) == (code, foreign, fields["tid"])
    assert GO_CARD_CODES[callback.card_code] == row["name"]


def test_the_default_test_card_and_any_other_number_are_the_default_companys(api, callback_receiver):
    default = CARD_COMPANIES["default"]
    typed = api.pay(approve={"card_number": "4579730000001235"}, amount=1000)  # the README's example
    assert (typed["card_code"], typed["domestic_flag"]) == (default, "N")
    assert the_callback(api, callback_receiver)[0].card_code == default
    callback_receiver.clear()
    fields = api.pay(pgcode="payco", amount=1000)  # no number: the default test card
    callback, _ = the_callback(api, callback_receiver)
    assert (fields["card_code"], callback.card_code, callback.domestic_flag) == (default, default, "N")
    assert GO_CARD_CODES[callback.card_code] != ""


# What a real Laravel handler reads from every callback without isset: a missing one is a 500.
LARAVEL_READS = ("tid", "cid", "pay_info", "custom_parameter", "domestic_flag", "install_month", "tax_amount",
                 "taxfree_amount", "nonsettle_amount", "payhash", "transaction_date")


@pytest.mark.parametrize("pgcode", sorted(table()))
def test_every_methods_callback_carries_what_a_real_handler_reads(api, callback_receiver, pgcode):
    method = table()[pgcode]
    fields = api.pay(pgcode=pgcode, amount=max(method.minimum, 1000), service_name="payletter")
    if pgcode == "virtualaccount":
        api.deposit(fields["tid"])
    callback, raw = the_callback(api, callback_receiver)
    body = json.loads(raw)
    assert all(name in body for name in LARAVEL_READS)
    assert callback.install_month == ("00" if method.details == "card" else "")
    assert fields["install_month"] == callback.install_month
    assert callback.card_code == (CARD_COMPANIES["default"] if method.details == "card" else "")
    assert fields["card_code"] == callback.card_code


class LaravelHandler(CallbackReceiver):
    """The shop's callback handler: it indexes the keys it reads, so a missing one is an
    exception, which Laravel answers with a 500 (and the gateway retries, 20 times)."""

    def next_answer(self) -> Answer:
        with self.event:
            body = self.received[-1].json()
        if any(name not in body for name in LARAVEL_READS):
            return Answer(500, b'{"message": "Undefined index"}')
        return Answer()


@pytest.mark.parametrize("pgcode", ["creditcard", "mobile", "banktransfer", "kakaopay"])
def test_a_laravel_handler_acknowledges_every_callback_at_once(api, pgcode):
    handler = LaravelHandler()
    server = serve_receiver(handler)
    try:
        api.pay(pgcode=pgcode, amount=1000, callback_url=handler.url)
        [notification] = api.control("/callbacks", method="GET")["callbacks"]
        assert notification["status"] == "delivered", notification
        assert [a["http_status"] for a in notification["attempts"]] == [200]
    finally:
        server.shutdown()


def test_callbacks_and_returns_agree_with_the_capture_for_the_test_card(api):
    fields = api.pay(amount=1000)
    assert (fields["message"], fields["pay_info"], fields["install_month"]) == ("", "테스트카드", "00")
    assert stored(api, fields["tid"])["cid"] == fields["cid"]


def test_an_oncash_cid_is_the_tids_serial_less_one_as_in_the_references_list(api, callback_receiver):
    """The reference's transaction/list example, and the Korean documentation's as a client copied
    it: oncash `tpay_test-201809142506687` has cid `2506686`. The return fields, the list row and
    the callback carry the same cid."""
    fields = api.pay(pgcode="oncash", amount=1000)
    assert fields["cid"] == f"{int(fields['tid'][-7:]) - 1:07d}"
    day = fields["transaction_date"][:10].replace("-", "")
    listed = ok(api.get("/v1.0/payments/transaction/list",
                        {"client_id": "pay_test", "date": day, "date_type": "transaction"}))["list"]
    assert [(row["pgcode"], row["tid"], row["cid"]) for row in listed] == [("oncash", fields["tid"], fields["cid"])]
    api.flush()
    [callback] = callback_receiver.received
    assert (callback.json()["tid"], callback.json()["cid"]) == (fields["tid"], fields["cid"])


def test_a_real_go_client_reads_a_success_body_by_its_missing_code(api):
    """whitecubeinc/payletter: `if code, exists := res["code"]; exists { error }`, then
    res["tid"].(string), res["cid"].(string), res["transaction_date"].(string)."""
    fields = api.pay(amount=1000)
    body = ok(api.cancel(fields, 400, partial=True))
    assert "code" not in body
    assert all(isinstance(body[name], str) for name in ("tid", "cid", "cancel_date"))


# whitecubeinc/payletter's autopay and cancel bodies: first without ClientInfo (type.go @ 0599a2fd),
# then with it embedded, client_id and ip_addr (type.go @ 5eb88b29, "fix: fix client info").
GO_AUTOPAY = {"pgcode": "creditcard", "service_name": "shop", "user_id": 42, "user_name": "kim", "order_no": "A-2",
              "amount": 1000, "product_name": "monthly"}
GO_CANCEL = {"pgcode": "creditcard", "user_id": 42}
GO_CLIENT_INFO = {"client_id": "pay_test", "ip_addr": "10.1.2.3"}


@pytest.mark.parametrize("endpoint", ["autopay", "cancel"])
def test_the_go_librarys_first_bodies_without_client_info_are_refused(api, endpoint):
    """Even leniently: the reference says Necessary, and the library's author added both fields
    to exactly these two requests (docs/fidelity.md entry 5). client_id is named first (the
    schema's order), and nothing is paid or cancelled. --strict refuses them too
    (tests/test_cancel.py, tests/test_autopay.py)."""
    fields = api.pay(user_id="42", autopay_flag="Y", amount=1000)
    body = {**GO_AUTOPAY, "billkey": fields["billkey"]} if endpoint == "autopay" else {**GO_CANCEL, "tid": fields["tid"]}
    made = len(api.control("/payments", method="GET")["payments"])
    assert refused(api.post(f"/v1.0/payments/{endpoint}", body)) == {"code": 2001, "message": "client_id is required"}
    without_ip = {**body, "client_id": "pay_test"}
    assert refused(api.post(f"/v1.0/payments/{endpoint}", without_ip)) == {"code": 2001,
                                                                          "message": "ip_addr is required"}
    assert len(api.control("/payments", method="GET")["payments"]) == made
    assert stored(api, fields["tid"])["cancelled_amount"] == 0


def test_the_go_librarys_later_bodies_with_client_info_are_accepted(api):
    """type.go @ 5eb88b29: the same bodies with client_id and ip_addr; user_id is still a number
    and the cancel still has no amount (both tolerated, with a warning)."""
    fields = api.pay(user_id="42", autopay_flag="Y", amount=1000)
    paid = ok(api.post("/v1.0/payments/autopay", {**GO_CLIENT_INFO, **GO_AUTOPAY, "billkey": fields["billkey"]}))
    assert journal(api)["warnings"] == ["user_id: sent as a number (42), expected a string"]
    cancelled = ok(api.post("/v1.0/payments/cancel", {**GO_CLIENT_INFO, **GO_CANCEL, "tid": paid["tid"]}))
    assert (cancelled["tid"], cancelled["amount"]) == (paid["tid"], 1000)
    assert journal(api)["warnings"] == [
        "user_id: sent as a number (42), expected a string",
        "amount: omitted on a full cancel; the whole remaining amount is cancelled"]
    assert stored(api, paid["tid"])["cancellations"][0]["ip_addr"] == "10.1.2.3"


def test_the_docs_sample_request_as_real_clients_copy_it(api):
    """Seobe22/payletter-test sends the documentation's sample, taxfree 100 and VAT 20 included."""
    body = {"pgcode": "creditcard", "user_id": "test_user_id", "user_name": "테스터", "service_name": "페이레터",
            "client_id": "pay_test", "order_no": "1234567890", "amount": 1000, "taxfree_amount": 100,
            "tax_amount": 20, "product_name": "테스트상품", "email_flag": "Y", "email_addr": "payletter@payletter.com",
            "autopay_flag": "N", "receipt_flag": "Y", "custom_parameter": "this is custom parameter",
            "return_url": "https://testpg.payletter.com/result", "callback_url": api.callback_url,
            "cancel_url": "https://testpg.payletter.com/cancel"}
    token = ok(api.post(REQUEST, body))["token"]
    assert journal(api)["warnings"] == []
    payment = stored(api, token)
    assert (payment["taxfree_amount"], payment["tax_amount"]) == (100, 20)


def test_captured_payhashes_are_what_the_emulator_computes():
    """Two payhashes of the real test gateway: a card return and a virtual account's callback."""
    assert payhash("13", 1000, "tpay_test-202003058157772", PAYMENT_KEY) == \
        "935534134B6BE06BFAF36DEFCB2EB69BEC47085DE0638945CD9E6EB1FE3E7160"
    assert payhash("test_user_id", 1000, "pay_test-202003238171666", PAYMENT_KEY) == \
        "2ACDD8ECBA39BB3C4718AF01329C0BF6280B078D1C2E4BA82D2FF1E7AC3B82AD"


def test_captured_vat_defaults(api):
    """Captured returns: amount 1000 gives tax_amount 91, 3000 gives 273 (no tax_amount sent)."""
    assert [api.pay(amount=amount)["tax_amount"] for amount in (1000, 3000)] == ["91", "273"]


def test_success_bodies_are_compact_json_without_code(api):
    """A C# shop cuts online_url out of the answer by offsets (`IndexOf("online_url") + 13`)."""
    raw = api.post(REQUEST, api.request_body()).text
    assert '"online_url":"http' in raw and '"code"' not in raw


def test_the_status_answer_has_the_captured_shape(api):
    """A captured answer of payments/status: code 0 (a number), message "ok", token a string."""
    api.pay(order_no="pay_test2023118164578")
    answer = ok(api.post("/v1.0/payments/status", {"client_id": "pay_test", "order_no": "pay_test2023118164578"}))
    assert (answer["code"], answer["message"], answer["status_code"]) == (0, "ok", 5)
    assert isinstance(answer["token"], str)


def test_a_zero_tax_amount_sent_by_a_typed_client_is_zero(api):
    """A Go client always sends tax_amount (0 when unset): 0 is a value, not "compute it"."""
    fields = api.pay(amount=1000, tax_amount=0)
    assert fields["tax_amount"] == "0"


def test_unknown_keys_of_real_clients_are_ignored_with_a_warning(api):
    """A real backend sends company_name_flag, which the reference does not list."""
    assert api.post(REQUEST, api.request_body(company_name_flag="Y")).status_code == 200
    assert journal(api)["warnings"] == ["company_name_flag: not a parameter of payments/request, ignored"]


def test_client_id_written_client_Id_on_receipt_info(api):
    """A Go merchant calls receipt/info with `?client_Id=...&amount=...&transaction_date=...`."""
    fields = api.pay(amount=1000)
    day = fields["transaction_date"][:10].replace("-", "")
    response = requests.get(f"{api.url}/v1.0/receipt/info/{fields['tid']}",
                            params={"client_Id": "pay_test", "amount": 1000, "transaction_date": day},
                            headers={"Authorization": f"PLKEY {SEARCH_KEY}"},
                            timeout=30)
    assert response.status_code == 200 and "receipt_url" in response.json()
