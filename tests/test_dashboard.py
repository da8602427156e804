"""The dashboard at /_emulator/: served by the emulator behind the control API's guard, and in a
real browser (headless chromium) it shows payments, callbacks, virtual accounts, the scenario,
Payletter Global's payments and notifications, and the journal, and drives the emulator (resend,
clock, deposit; Global's approve, decline and refund) through the control API. The screenshots go
to test-artifacts/dashboard.png and dashboard-global.png."""
from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import requests
from playwright.sync_api import expect

from .browser import ARTIFACTS, CHROMIUM_ARGS, WAIT, chromium_path, desktop  # noqa: F401
from .conftest import Api, CallbackReceiver, EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ARTIFACTS.parent / "dashboard.png"
GLOBAL_SCREENSHOT = ARTIFACTS.parent / "dashboard-global.png"
GLOBAL_STORE = GLOBAL_KEY = "global_test"  # the built-in Payletter Global test store: its key is its id
TOKEN = "s3cret"
# Values a merchant may send that would be markup if a page parsed them (product_name may not
# hold < or >; these fields may).
HOSTILE_NAME = '<img src=x>"&amp;'
HOSTILE_ORDER = "<b>A-1</b>&lt;"
HOSTILE_CUSTOM = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'

TOUR = """
version: 1
name: dashboard-tour
description: A frozen clock, a deposit three days late and a refused status query.
settings:
  clock: {start: "2026-11-29T10:00:00+09:00", frozen: true}
rules:
  - name: status refused once
    when: {endpoint: payments/status}
    then: {api_error: {status: 503, code: 999, message: "maintenance"}}
    times: 1
  - name: deposit after three days
    when: {pgcode: virtualaccount}
    then: {deposit: {after_seconds: 259200}}
"""


# --- the browser and the processes -------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium(playwright):
    """This module's chromium (browser.py's `desktop` takes it), closed when the module is done,
    launched from the process's one Playwright (browser.py's `playwright`)."""
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def tour_process(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboard")
    (workdir / "tour.yaml").write_text(TOUR)
    process = EmulatorProcess(workdir, "--scenario", str(workdir / "tour.yaml"))
    yield process
    process.stop()


@pytest.fixture
def receiver(callback_receiver):
    return callback_receiver


@pytest.fixture
def tour(tour_process, receiver):
    """The tour's emulator, reset (its scenario starts again: clock at 10:00, frozen)."""
    api = Api(tour_process.url, receiver.url)
    api.control("/reset")
    receiver.clear()
    return api


@pytest.fixture(scope="module")
def closed_process(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("closed"), "--no-control")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def token_process(tmp_path_factory):
    process = EmulatorProcess(tmp_path_factory.mktemp("token"), "--control-token", TOKEN)
    yield process
    process.stop()


def arrivals(receiver: CallbackReceiver, tid: str, count: int) -> list[dict]:
    """The callbacks of `tid` once `count` of them have reached the receiver."""
    def of_tid():
        return [r.json() for r in receiver.received if r.json().get("tid") == tid]

    with receiver.event:
        found = receiver.event.wait_for(lambda: len(of_tid()) >= count, WAIT)
    assert found, f"{count} callbacks of {tid} expected, got {of_tid()}"
    return of_tid()


def scene(api: Api, receiver: CallbackReceiver) -> dict:
    """A bank transfer with a cash receipt, a card payment partly cancelled whose callback failed
    (the merchant answered 500), two virtual accounts awaiting their deposit, a request the
    scenario refused, one with a leniency warning."""
    transfer = api.pay(pgcode="banktransfer", amount=22000, order_no="BT-1")
    form = api.post(f"/v1.0/cashreceipt/issue/{transfer['tid']}", {
        "client_id": "pay_test", "type": "2", "tax_flag": "N", "return_url": "https://merchant.example/receipt"})
    issued = requests.post(form.json()["receipt_url"], data={"cash_receipt_type": "02", "cash_receipt_id": "1234567890"},
                           timeout=10)
    assert issued.status_code == 200, issued.text
    receiver.status = 500
    card = api.pay(amount=55000, user_name=HOSTILE_NAME, order_no=HOSTILE_ORDER, custom_parameter=HOSTILE_CUSTOM)
    assert api.cancel(card, amount=5000, partial=True).status_code == 200
    accounts = [api.control(f"/payments/{api.request_payment(pgcode='virtualaccount', amount=amount, order_no=order)}"
                            "/approve", {})["fields"] for amount, order in ((25000, "VA-1"), (18000, "VA-2"))]
    refused = api.post("/v1.0/payments/status", {"client_id": "pay_test", "order_no": "VA-1"})
    assert refused.status_code == 503, refused.text
    lenient = api.post("/v1.0/payments/request", api.request_body(amount="1000", order_no="lenient"))
    assert lenient.status_code == 200, lenient.text
    return {"transfer": transfer["tid"], "card": card["tid"], "account": accounts[0]["tid"]}


def global_payment(api: Api, notiurl: str, **fields) -> str:
    """A Payletter Global payment requested as a merchant's server does (GPLKEY, JSON); its token."""
    body = {"storeid": GLOBAL_STORE, "currency": "USD", "storeorderno": "G-1", "amount": "10.00",
            "payerid": "user42", "payeremail": "buyer@example.com", "servicename": "A T-shirt",
            "pginfo": "PLCreditCard", "returnurl": "https://shop.example/return", "notiurl": notiurl, **fields}
    answer = requests.post(api.url + "/api/payment/request", headers={"Authorization": f"GPLKEY {GLOBAL_KEY}"},
                           json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def notifications(receiver: CallbackReceiver, path: str, count: int) -> list[dict]:
    """The Global notification forms POSTed to `path`, once `count` have arrived."""
    def forms():
        return [dict(parse_qsl(r.body.decode())) for r in receiver.received if r.path == path]

    with receiver.event:
        found = receiver.event.wait_for(lambda: len(forms()) >= count, WAIT)
    assert found, f"{count} notifications expected at {path}, got {forms()}"
    return forms()


def notification_hash(form: dict) -> str:
    """What a merchant's notification page recomputes (Payletter's samples): lower-case hex SHA-256
    of storeid, currency, storeorderno, payamt, payerid, timestamp and the key."""
    signed = "".join(form[name] for name in ("storeid", "currency", "storeorderno", "payamt", "payerid", "timestamp"))
    return hashlib.sha256((signed + GLOBAL_KEY).encode()).hexdigest()


# --- served by the emulator, guarded like the control API ---------------------------------------

def test_the_page_is_a_shell_with_its_own_script_under_a_strict_policy(api):
    page = requests.get(api.url + "/_emulator/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert (page.headers["Cache-Control"], page.headers["X-Content-Type-Options"]) == ("no-store", "nosniff")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert '<script src="/static/dashboard.js" defer></script>' in page.text
    assert "<script>" not in page.text  # nothing inline: the policy would block it
    for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        served = requests.get(f"{api.url}/static/{asset}", timeout=10)
        assert served.status_code == 200 and kind in served.headers["Content-Type"], asset


def test_without_the_trailing_slash_the_page_moves_to_it(api):
    """The script's URLs are relative to the page, so the page lives at .../_emulator/."""
    moved = requests.get(api.url + "/_emulator?lang=ko", allow_redirects=False, timeout=10)
    assert moved.status_code == 308
    assert moved.headers["Location"] == "_emulator/?lang=ko"


def test_in_korean_on_request(api):
    page = requests.get(api.url + "/_emulator/", params={"lang": "ko"}, timeout=10)
    assert '<html lang="ko">' in page.text and "+1시간" in page.text and "입금 대기 중인 가상계좌" in page.text
    assert "페이레터 글로벌 결제" in page.text and "페이레터 글로벌 알림" in page.text
    assert 'href="?lang=en"' in page.text


def test_no_merchant_value_is_rendered_by_the_server(api):
    """Merchants' values reach the page only through the script, as text; the query is not
    reflected as markup either."""
    api.pay(user_name=HOSTILE_NAME, order_no=HOSTILE_ORDER, custom_parameter=HOSTILE_CUSTOM)
    page = requests.get(api.url + "/_emulator/", params={"sandbox": "<script>x</script>", "lang": '"><b>'},
                        timeout=10)
    assert page.status_code == 200
    for value in (HOSTILE_NAME, HOSTILE_ORDER, HOSTILE_CUSTOM, "<img", "<script>x", '"><b>'):
        assert value not in page.text, value


def test_switched_off_with_the_control_api(closed_process):
    for path in ("/_emulator/", "/_emulator/?token=anything"):
        answer = requests.get(closed_process.url + path, timeout=10)
        assert answer.status_code == 404
        assert answer.json() == {"code": 996, "message": answer.json()["message"]}
    assert requests.get(closed_process.url + "/_emulator/health", timeout=10).status_code == 200


def test_behind_the_control_token(token_process):
    url = token_process.url + "/_emulator/"
    for attempt in (requests.get(url, timeout=10), requests.get(url, params={"token": "guess"}, timeout=10),
                    requests.get(url, headers={"X-Emulator-Token": "guess"}, timeout=10)):
        assert attempt.status_code == 401
        assert attempt.json()["code"] == 4312
    assert requests.get(url, headers={"X-Emulator-Token": TOKEN}, timeout=10).status_code == 200


def test_the_token_is_taken_once_then_kept_in_a_cookie_for_the_page_only(token_process):
    browser = requests.Session()
    first = browser.get(token_process.url + "/_emulator/", params={"token": TOKEN, "lang": "ko"},
                        allow_redirects=False, timeout=10)
    assert first.status_code == 303
    assert first.headers["Location"] == "./?lang=ko"  # the token leaves the address bar
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = browser.get(token_process.url + "/_emulator/?lang=ko", timeout=10)
    assert page.status_code == 200
    # The page hands the token to its script, which sends the control API's header.
    assert f'<meta name="emulator-control-token" content="{TOKEN}">' in page.text
    # The cookie opens the page, not the control API: another site cannot drive it through it.
    assert browser.get(token_process.url + "/_emulator/clock", timeout=10).status_code == 401


def test_a_sandbox_has_the_same_page_under_its_path(tour):
    sandbox = requests.post(tour.url + "/_emulator/sandboxes", json={}, timeout=10).json()
    try:
        page = requests.get(sandbox["base_url"] + "/_emulator/", timeout=10)
        assert page.status_code == 200
        script = re.search(r'<script src="([^"]+)"', page.text).group(1)
        assert script == f"/_sandbox/{sandbox['id']}/static/dashboard.js"
        assert requests.get(tour.url + script, timeout=10).status_code == 200
        moved = requests.get(sandbox["base_url"] + "/_emulator", allow_redirects=False, timeout=10)
        assert (moved.status_code, moved.headers["Location"]) == (308, "_emulator/")
    finally:
        requests.delete(f"{tour.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10)
    gone = requests.get(sandbox["base_url"] + "/_emulator/", timeout=10)
    assert gone.status_code == 404 and gone.json()["code"] == 4601


def test_the_text_tables_are_in_step():
    text = tomllib.loads((ROOT / "emulator" / "web" / "dashboard_text.toml").read_text("utf-8"))

    def keys(table, prefix=""):
        return {f"{prefix}{k}" for k, v in table.items()} | {
            key for k, v in table.items() if isinstance(v, dict) for key in keys(v, f"{prefix}{k}.")}

    assert keys(text["en"]) == keys(text["ko"])


def test_every_word_the_script_asks_for_is_in_the_table():
    script = (ROOT / "emulator" / "web" / "static" / "dashboard.js").read_text("utf-8")
    text = tomllib.loads((ROOT / "emulator" / "web" / "dashboard_text.toml").read_text("utf-8"))["en"]
    asked = set(re.findall(r"\bW\.(\w+)", script)) | set(re.findall(r'\bsay\("(\w+)"', script))
    assert asked - set(text) - {"methods"} == set()


# --- in a browser ---------------------------------------------------------------------------------

def test_the_dashboard_shows_the_emulator_and_drives_it(tour, receiver, desktop):
    made = scene(tour, receiver)
    desktop.goto(tour.url + "/_emulator/")

    # The clock of the scenario: frozen at its start.
    expect(desktop.get_by_test_id("clock-now")).to_have_text("2026-11-29 10:00:00 KST")
    expect(desktop.get_by_test_id("clock-state")).to_have_attribute("data-frozen", "true")

    # Payments, with the cancellation; merchants' values as text, never as markup.
    card = desktop.locator(f'[data-testid=payment-row][data-tid="{made["card"]}"]')
    expect(card.get_by_test_id("amount")).to_have_text("₩55,000")
    expect(card.get_by_test_id("cancelled")).to_have_text("₩5,000")
    expect(card.get_by_test_id("remaining")).to_have_text("₩50,000")
    expect(card.get_by_test_id("status")).to_have_attribute("data-status", "approved")
    expect(card.get_by_test_id("cancel-status")).to_have_attribute("data-status", "partly_cancelled")
    expect(card.get_by_test_id("order-no")).to_have_text(HOSTILE_ORDER)
    expect(card.get_by_test_id("buyer")).to_have_text(f"test_user_id · {HOSTILE_NAME}")
    card.get_by_test_id("details").click()
    details = desktop.locator("tr.detail").first
    expect(details).to_contain_text(HOSTILE_CUSTOM)
    expect(details.get_by_test_id("cancellation")).to_contain_text("₩5,000")
    assert desktop.locator("main img, main b, main script").count() == 0
    assert desktop.evaluate("window.pwned") is None

    # The cash receipt of the bank transfer.
    transfer = desktop.locator(f'[data-testid=payment-row][data-tid="{made["transfer"]}"]')
    transfer.get_by_test_id("details").click()
    receipt = desktop.get_by_test_id("cash-receipt")
    expect(receipt).to_contain_text("Issued")
    expect(receipt).to_contain_text("Proof of expense")
    expect(receipt).to_contain_text("1234567890")
    transfer.get_by_test_id("details").click()

    # The virtual accounts waiting for their deposit.
    expect(desktop.get_by_test_id("account-row")).to_have_count(2)
    account = desktop.locator(f'[data-testid=account-row][data-tid="{made["account"]}"]')
    expect(account.get_by_test_id("amount")).to_have_text("₩25,000")

    # The failed callback: the merchant answered 500.
    failed = desktop.locator(f'[data-testid=callback-row][data-tid="{made["card"]}"]')
    expect(failed).to_have_attribute("data-status", "pending")
    expect(failed.get_by_test_id("last-result")).to_contain_text("HTTP 500")

    # The scenario: its rules and how often each applied, its timed job.
    expect(desktop.get_by_test_id("scenario-name")).to_have_text("dashboard-tour")
    expect(desktop.locator('[data-rule="status refused once"]').get_by_test_id("applied")).to_have_text("1")
    expect(desktop.locator('[data-rule="deposit after three days"]').get_by_test_id("applied")).to_have_text("2")
    expect(desktop.locator('[data-testid=job-row][data-kind="deposit"][data-done="false"]')).to_have_count(2)

    # The journal: the rule that decided a request, a leniency warning.
    journal = desktop.get_by_test_id("journal")
    expect(journal.get_by_test_id("rule")).to_have_text(["status refused once"])
    expect(journal.get_by_test_id("warning").first).to_contain_text("amount")
    refusal = journal.locator('[data-testid=journal-row][data-path="/v1.0/payments/status"]')
    expect(refusal.get_by_test_id("http-status")).to_have_text("503")
    expect(refusal.get_by_test_id("code")).to_have_text("999")
    refusal.get_by_test_id("details").click()
    expect(journal.locator("tr.detail")).to_contain_text('"message": "maintenance"')
    refusal.get_by_test_id("details").click()

    # Resend: the merchant now acknowledges, and gets the notification again.
    receiver.status = 200
    failed.get_by_test_id("resend").click()
    assert arrivals(receiver, made["card"], 2)[-1]["amount"] == 55000
    expect(failed).to_have_attribute("data-status", "delivered")
    expect(desktop.get_by_test_id("flash")).to_contain_text("one extra attempt made")

    # The clock moves by the buttons.
    desktop.get_by_test_id("advance-3600").click()
    expect(desktop.get_by_test_id("clock-now")).to_have_text("2026-11-29 11:00:00 KST")
    desktop.get_by_test_id("advance-300").click()
    expect(desktop.get_by_test_id("clock-now")).to_have_text("2026-11-29 11:05:00 KST")
    assert tour.control("/clock", method="GET")["now"] == "2026-11-29T11:05:00+09:00"

    # Deposit: the account is paid and its callback arrives.
    account.get_by_test_id("deposit").click()
    deposited = arrivals(receiver, made["account"], 1)[0]
    assert (deposited["amount"], deposited["transaction_date"]) == (25000, "2026-11-29 11:05:00")
    expect(account).to_have_count(0)
    expect(desktop.get_by_test_id("account-row")).to_have_count(1)
    paid = desktop.locator(f'[data-testid=payment-row][data-tid="{made["account"]}"]')
    expect(paid.get_by_test_id("status")).to_have_attribute("data-status", "approved")
    expect(desktop.locator(f'[data-testid=callback-row][data-tid="{made["account"]}"]')).to_have_attribute(
        "data-status", "delivered")

    card.get_by_test_id("details").click()  # closed, for the picture
    failed.get_by_test_id("details").click()
    expect(desktop.locator("tr.detail").get_by_test_id("attempt")).to_have_count(2)
    desktop.evaluate("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(SCREENSHOT), full_page=True)

    # Freeze and unfreeze.
    desktop.get_by_test_id("freeze-toggle").click()
    expect(desktop.get_by_test_id("clock-state")).to_have_attribute("data-frozen", "false")
    desktop.get_by_test_id("freeze-toggle").click()
    expect(desktop.get_by_test_id("clock-state")).to_have_attribute("data-frozen", "true")


def test_the_global_sections_show_payletter_global_and_drive_it(tour, receiver, desktop):
    """Payments made through Payletter Global's API, approved, declined and refunded from the page;
    their notifications with their hash and attempts, resent from the page once the notification
    page acknowledges; the domestic sections keep to the domestic gateway."""
    noti = receiver.url.replace("/callback", "/noti")
    receiver.as_global_page().answer = b"<RESULT>FAIL</RESULT>"  # the notification page refuses, at first
    paid = global_payment(tour, noti, storeorderno=HOSTILE_ORDER, custom=HOSTILE_CUSTOM)
    declined = global_payment(tour, noti, storeorderno="G-2", currency="JPY", amount="1200", servicename="A mug")
    domestic = tour.pay(order_no="domestic")
    desktop.goto(tour.url + "/_emulator/")

    payments = desktop.get_by_test_id("global-payments")
    row = payments.locator(f'[data-testid=global-payment-row][data-token="{paid}"]')
    other = payments.locator(f'[data-testid=global-payment-row][data-token="{declined}"]')
    expect(payments.get_by_test_id("global-payment-row")).to_have_count(2)
    expect(row.get_by_test_id("amount")).to_have_text("USD 10.00")
    expect(other.get_by_test_id("amount")).to_have_text("JPY 1200")
    expect(row.get_by_test_id("order-no")).to_have_text(HOSTILE_ORDER)
    expect(row.get_by_test_id("store-id")).to_have_text(GLOBAL_STORE)
    expect(row.get_by_test_id("payer")).to_have_text("user42 · buyer@example.com")
    expect(row.get_by_test_id("status")).to_have_attribute("data-status", "requested")
    expect(row.get_by_test_id("remaining")).to_have_text("—")
    expect(row.get_by_test_id("refund")).to_have_count(0)

    # Approve, as the payer on the page would (a Visa test card); the notification leaves and is refused.
    row.get_by_test_id("approve").click()
    expect(row.get_by_test_id("status")).to_have_attribute("data-status", "paid")
    expect(desktop.get_by_test_id("flash")).to_contain_text(f"Global payment {paid}: Paid.")
    expect(row.get_by_test_id("card")).to_have_text("VISA ************1111")
    expect(row.get_by_test_id("remaining")).to_have_text("USD 10.00")
    [first] = notifications(receiver, "/noti", 1)
    paytoken = first["paytoken"]
    expect(row).to_have_attribute("data-paytoken", paytoken)
    notices = desktop.get_by_test_id("global-notifications")
    notice = notices.locator(f'[data-testid=global-notification-row][data-paytoken="{paytoken}"][data-notifytype="1"]')
    expect(notice).to_have_attribute("data-status", "pending")
    expect(notice.get_by_test_id("notifytype")).to_have_text("Paid")
    expect(notice.get_by_test_id("payamt")).to_have_text("USD 10.00")
    expect(notice.get_by_test_id("hash")).to_have_text(notification_hash(first))
    expect(notice.get_by_test_id("attempts")).to_have_text("1")
    expect(notice.get_by_test_id("last-result")).to_contain_text("<RESULT>OK</RESULT>")
    notice.get_by_test_id("details").click()
    answers = notices.locator("tr.detail").get_by_test_id("attempt")
    expect(answers).to_have_count(1)
    expect(answers).to_contain_text("<RESULT>FAIL</RESULT>")
    expect(notices.locator("tr.detail")).to_contain_text(first["notifyid"])

    # Resend, once the page acknowledges: delivered.
    receiver.answer = b"<RESULT>OK</RESULT>"
    notice.get_by_test_id("resend").click()
    assert notifications(receiver, "/noti", 2)[-1]["hash"] == first["hash"]
    expect(notice).to_have_attribute("data-status", "delivered")
    expect(answers).to_have_count(2)
    expect(desktop.get_by_test_id("flash")).to_contain_text("one extra attempt made")

    # Decline: nothing to refund, nothing notified.
    other.get_by_test_id("decline").click()
    expect(other.get_by_test_id("status")).to_have_attribute("data-status", "declined")
    expect(other.get_by_test_id("approve")).to_have_count(0)
    expect(other.get_by_test_id("refund")).to_have_count(0)

    # A partial refund of the amount typed, then the rest; each notified (notifytype 2).
    row.get_by_test_id("refund-amount").fill("2.50")
    row.get_by_test_id("refund").click()
    expect(desktop.get_by_test_id("flash")).to_contain_text(f"{paytoken}: USD 2.50 refunded, USD 7.50 left.")
    expect(row.get_by_test_id("status")).to_have_attribute("data-status", "partially_refunded")
    expect(row.get_by_test_id("refunded")).to_have_text("USD 2.50")
    expect(row.get_by_test_id("remaining")).to_have_text("USD 7.50")
    refund = notifications(receiver, "/noti", 3)[-1]
    assert (refund["notifytype"], refund["payamt"], refund["hash"]) == ("2", "2.50", notification_hash(refund))
    refunded = notices.locator('[data-testid=global-notification-row][data-notifytype="2"]')
    expect(refunded.get_by_test_id("notifytype")).to_have_text("Refund")
    expect(refunded).to_have_attribute("data-status", "delivered")
    expect(row.get_by_test_id("refund-amount")).to_have_value("")
    row.get_by_test_id("refund").click()  # empty: what is left
    expect(row.get_by_test_id("status")).to_have_attribute("data-status", "refunded")
    expect(row.get_by_test_id("refunded")).to_have_text("USD 10.00")
    expect(row.get_by_test_id("refund")).to_have_count(0)
    assert notifications(receiver, "/noti", 4)[-1]["payamt"] == "7.50"
    row.get_by_test_id("details").click()
    detail = payments.locator("tr.detail")
    expect(detail.get_by_test_id("refund-row")).to_have_count(2)
    expect(detail.get_by_test_id("refund-row").first).to_contain_text("USD 2.50")
    expect(detail).to_contain_text(HOSTILE_CUSTOM)  # as text
    assert desktop.locator("main img, main b, main script").count() == 0
    assert desktop.evaluate("window.pwned") is None

    # The domestic sections keep to the domestic gateway; the tile counts Global's.
    expect(desktop.get_by_test_id("callback-row")).to_have_count(1)
    expect(desktop.get_by_test_id("callback-row")).to_have_attribute("data-tid", domestic["tid"])
    expect(desktop.get_by_test_id("payment-row")).to_have_count(1)
    expect(desktop.locator("[data-stat=global]")).to_have_text("2")
    expect(desktop.locator("[data-stat=global-sub]")).to_have_text("1 paid · 0 notifications pending")
    expect(desktop.locator("[data-stat=callbacks]")).to_have_text("1")
    desktop.evaluate("window.scrollTo(0, 0)")
    GLOBAL_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(GLOBAL_SCREENSHOT), full_page=True)

    # The filter finds a Global payment by its paytoken; in Korean, Global's words too.
    desktop.get_by_test_id("filter").fill(paytoken)
    expect(payments.get_by_test_id("global-payment-row")).to_have_count(1)
    expect(desktop.get_by_test_id("payment-row")).to_have_count(0)
    expect(notices.get_by_test_id("global-notification-row")).to_have_count(3)
    desktop.goto(tour.url + "/_emulator/?lang=ko")
    expect(row.get_by_test_id("status")).to_have_text("환불")
    expect(other.get_by_test_id("status")).to_have_text("거절됨")
    expect(refunded.first.get_by_test_id("notifytype")).to_have_text("환불")


def test_refreshes_by_itself_and_on_demand_and_filters(tour, desktop):
    first = tour.pay(order_no="first")
    desktop.goto(tour.url + "/_emulator/")
    rows = desktop.get_by_test_id("payment-row")
    expect(rows).to_have_count(1)
    desktop.get_by_test_id("auto-refresh").uncheck()
    second = tour.pay(order_no="second")
    desktop.get_by_test_id("refresh").click()
    expect(rows).to_have_count(2)
    desktop.get_by_test_id("auto-refresh").check()
    tour.pay(order_no="third")
    expect(rows).to_have_count(3)  # the next automatic refresh brings it
    desktop.get_by_test_id("filter").fill(second["tid"])
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-tid", second["tid"])
    desktop.get_by_test_id("filter").fill("no such payment")
    expect(rows).to_have_count(0)
    expect(desktop.locator("[data-empty=payments]")).to_have_text("Nothing matches the filter.")
    desktop.get_by_test_id("filter").fill("")
    expect(rows.first).to_have_attribute("data-tid", re.compile(".+"))
    expect(rows.last).to_have_attribute("data-tid", first["tid"])  # newest first


def test_a_sandboxs_dashboard_shows_and_moves_that_sandbox(tour, receiver, desktop):
    tour.pay(order_no="root-order")
    sandbox = requests.post(tour.url + "/_emulator/sandboxes", json={}, timeout=10).json()
    try:
        inside = Api(sandbox["base_url"], receiver.url)
        inside.control("/clock", {"freeze": True})
        inside.set_clock("2027-01-01T00:00:00")
        keys = {"Authorization": f"PLKEY {sandbox['payment_key']}"}
        body = inside.request_body(client_id=sandbox["client_id"], order_no="sandbox-order", amount=7700)
        token = requests.post(tour.url + "/v1.0/payments/request", headers=keys, json=body, timeout=10).json()["token"]
        inside.control(f"/payments/{token}/approve", {})
        # By its path, and by the header the script sends for ?sandbox=.
        for address in (sandbox["base_url"] + "/_emulator/", f"{tour.url}/_emulator/?sandbox={sandbox['id']}"):
            desktop.goto(address)
            expect(desktop.get_by_test_id("where")).to_have_text(f"Sandbox {sandbox['id']}")
            rows = desktop.get_by_test_id("payment-row")
            expect(rows.get_by_test_id("order-no")).to_have_text(["sandbox-order"])
            expect(rows.get_by_test_id("amount")).to_have_text(["₩7,700"])
            expect(desktop.get_by_test_id("clock-now")).to_have_text("2027-01-01 00:00:00 KST")
        desktop.get_by_test_id("advance-86400").click()
        expect(desktop.get_by_test_id("clock-now")).to_have_text("2027-01-02 00:00:00 KST")
        assert inside.control("/clock", method="GET")["now"] == "2027-01-02T00:00:00+09:00"
        assert tour.control("/clock", method="GET")["now"] == "2026-11-29T10:00:00+09:00"  # the root's stayed
    finally:
        requests.delete(f"{tour.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10)


def test_the_sandbox_picker_opens_a_sandboxs_dashboard_and_comes_back(tour, receiver, desktop):
    """What a kept sandbox of a failed test (--payletter-keep-failed) is opened with."""
    tour.pay(order_no="root-order")
    sandbox = requests.post(tour.url + "/_emulator/sandboxes", json={}, timeout=10).json()
    try:
        keys = {"Authorization": f"PLKEY {sandbox['payment_key']}"}
        body = tour.request_body(client_id=sandbox["client_id"], order_no="kept-order")
        assert requests.post(tour.url + "/v1.0/payments/request", headers=keys, json=body, timeout=10).ok
        desktop.goto(tour.url + "/_emulator/?lang=ko")
        picker = desktop.get_by_test_id("sandbox-picker")
        expect(picker.locator("option")).to_have_text(["기본 에뮬레이터", f"샌드박스 {sandbox['id']}"])
        expect(picker).to_have_value("")
        picker.select_option(sandbox["id"])
        desktop.wait_for_url(f"{tour.url}/_sandbox/{sandbox['id']}/_emulator/?lang=ko")
        expect(desktop.get_by_test_id("where")).to_have_text(f"샌드박스 {sandbox['id']}")
        expect(desktop.get_by_test_id("payment-row").get_by_test_id("order-no")).to_have_text(["kept-order"])
        expect(desktop.get_by_test_id("sandbox-picker")).to_have_value(sandbox["id"])
        desktop.get_by_test_id("sandbox-picker").select_option("")
        desktop.wait_for_url(f"{tour.url}/_emulator/?lang=ko")
        expect(desktop.get_by_test_id("payment-row").get_by_test_id("order-no")).to_have_text(["root-order"])
    finally:
        requests.delete(f"{tour.url}/_emulator/sandboxes/{sandbox['id']}", timeout=10)


def test_in_korean_with_amounts_in_won(tour, desktop):
    tour.pay(amount=1234500)
    desktop.goto(tour.url + "/_emulator/?lang=ko")
    expect(desktop.get_by_test_id("payment-row").get_by_test_id("amount")).to_have_text("1,234,500원")
    expect(desktop.get_by_test_id("clock-state")).to_have_text("멈춤")
    expect(desktop.get_by_test_id("advance-86400")).to_have_text("+1일")
    expect(desktop.get_by_test_id("callback-row").get_by_test_id("status")).to_have_text("전달됨")


def test_with_a_control_token_the_address_with_the_token_opens_it(token_process, desktop):
    response = desktop.goto(token_process.url + f"/_emulator/?token={TOKEN}")
    assert response.status == 200
    assert desktop.url == token_process.url + "/_emulator/"
    expect(desktop.get_by_test_id("clock-now")).to_contain_text("KST")
    expect(desktop.get_by_test_id("error-banner")).to_be_hidden()
    desktop.get_by_test_id("advance-300").click()  # actions carry the token too
    expect(desktop.get_by_test_id("flash")).to_contain_text("Clock moved")
    expect(desktop.get_by_test_id("error-banner")).to_be_hidden()
    assert desktop.reload().status == 200


def test_without_the_token_the_page_is_refused(token_process, desktop):
    response = desktop.goto(token_process.url + "/_emulator/")
    assert response.status == 401
    assert response.json()["code"] == 4312
