"""The payer's side of the hosted pages: what each method's page asks for, what the payer typed
read into an approval (or the failure a test input stands for), and where the browser goes next.

Plain Python, no Flask: the pages blueprint hands in the form as a dict, the service's payer
(service/payer.py) acts on the Entry that comes back. The tables are data: each method's row of
domain/payment_methods.toml says what its page asks for; domain/test_inputs.toml, which typed
values decline.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

from .. import domain
from ..domain.details import BANKS, INSTALLMENT_FROM, INSTALLMENT_MONTHS
from ..domain.methods import PaymentMethod, table
from ..domain.payment import Payment

# A payment page can be used this long after payments/request, on the emulator's clock.
PAGE_LIFETIME = timedelta(minutes=30)
LOCATIONS = ("online", "mobile")
CARRIERS = ("SKT", "KT", "LGU", "SKT_MVNO", "KT_MVNO", "LGU_MVNO")
INSTALLMENT_OFFER = ("00", *(f"{months:02d}" for months in range(2, 13)))
# Usage of a cash receipt (the reference's `type`): tax deduction, proof of expense, not asked for.
DEDUCTION, EXPENSE, NOT_ASKED = "01", "02", "06"
# A receipt the payer does not ask for is issued by the shop itself to the tax office's number.
SELF_ISSUED_SID = "0100001234"
CASH_RECEIPT_ISSUED = "현금영수증이 발급되었습니다."
CASH_RECEIPT_SELF_ISSUED = "현금영수증이 자진발급되었습니다."
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_UNSAFE_SCHEMES = {"javascript", "vbscript", "data", "file", "blob", "about", "filesystem"}
_MOBILE = re.compile(r"01[016789][0-9]{7,8}")
_ANY_PHONE = re.compile(r"0[0-9]{8,10}")


# --- the tables ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """What a declining test input (or the app's decline button) makes the payment end with."""

    code: str
    message: str
    meaning: str = ""


@dataclass(frozen=True)
class TestInputs:
    cards: dict[str, Failure]
    auth_codes: dict[str, Failure]
    pins: dict[str, Failure]
    app_decline: Failure


def _data(name: str) -> dict:
    return tomllib.loads(resources.files(domain).joinpath(name).read_text("utf-8"))


@cache
def pages() -> dict[str, PaymentMethod]:
    """The method table, each row's page inputs (`inputs`, `app_step`, `in_app_return`) checked
    once against the rules this module has for them."""
    unknown = {name for method in table().values() for name in method.inputs} - set(INPUT_RULES)
    if unknown:
        raise ValueError(f"payment_methods.toml: no rule for the inputs {sorted(unknown)}")
    return table()


@cache
def test_inputs() -> TestInputs:
    raw = _data("test_inputs.toml")
    group = lambda name: {value: Failure(**row) for value, row in raw[name].items()}  # noqa: E731
    return TestInputs(group("cards"), group("auth_codes"), group("pins"), Failure(**raw["app_decline"]))


# --- reading what the payer typed ---------------------------------------------------------------

@dataclass
class Entry:
    """The payer's inputs, checked: the choices for Payer.approve, or the failure they stand for,
    and the cash receipt asked for on the page ({"type", "payer_sid"})."""

    choices: dict = field(default_factory=dict)
    failure: Failure | None = None
    cash_receipt: dict | None = None


@dataclass
class Reading:
    """`values` (cleaned, to show again or to carry into the app step) and per-field `errors` (text
    keys); `entry` once nothing is wrong and no app step is left to do."""

    values: dict
    errors: dict
    entry: Entry | None = None

    @property
    def app_step_due(self) -> bool:
        return not self.errors and self.entry is None


@dataclass(frozen=True)
class PaymentPage:
    method: PaymentMethod
    payment: Payment
    now: datetime


def _without_separators(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def luhn(number: str) -> bool:
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(number)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def installments_offered(amount: int) -> bool:
    return amount >= INSTALLMENT_FROM


# Each rule: (typed text, context) -> (clean value, error key or None).
def _card_number(text: str, page: PaymentPage):
    number = _without_separators(text)
    ok = number.isascii() and number.isdigit() and 12 <= len(number) <= 19 and luhn(number)
    return number, None if ok else "card_number"


def _card_expiry(text: str, page: PaymentPage):
    match = re.fullmatch(r"(0[1-9]|1[0-2])\s*/?\s*([0-9]{2})", text.strip())
    if not match:
        return text.strip(), "card_expiry"
    month, year = int(match.group(1)), 2000 + int(match.group(2))
    value = f"{month:02d}/{year % 100:02d}"
    return value, None if (year, month) >= (page.now.year, page.now.month) else "card_expired"


def _install_month(text: str, page: PaymentPage):
    value = text.strip() or "00"
    if value == "00":
        return value, None
    ok = (value.isascii() and value.isdigit() and len(value) <= 2 and int(value) in INSTALLMENT_MONTHS
          and installments_offered(page.payment.amount))
    return (f"{int(value):02d}", None) if ok else (value, "install_month")


def _carrier(text: str, page: PaymentPage):
    return text, None if text in CARRIERS else "carrier"


def _phone(text: str, page: PaymentPage):
    number = _without_separators(text)
    pattern = _MOBILE if page.method.pgcode == "mobile" else _ANY_PHONE
    return number, None if pattern.fullmatch(number) else "phone"


def _auth_code(text: str, page: PaymentPage):
    code = text.strip()
    return code, None if re.fullmatch(r"[0-9]{6}", code) else "auth_code"


def _bank_code(text: str, page: PaymentPage):
    return text, None if text in BANKS else "bank_code"


def _pin(text: str, page: PaymentPage):
    pin = _without_separators(text)
    return pin, None if re.fullmatch(r"[0-9]{12,18}", pin) else "pin"


def _option_input(text: str, page: PaymentPage):
    return text, None if text in {o.pgcode for o in page.method.options} else "option"


def _member_phone(text: str, page: PaymentPage):
    number = _without_separators(text)
    return number, None if _MOBILE.fullmatch(number) else "member_phone"


INPUT_RULES = {"card_number": _card_number, "card_expiry": _card_expiry, "install_month": _install_month,
               "carrier": _carrier, "phone": _phone, "auth_code": _auth_code, "bank_code": _bank_code,
               "pin": _pin, "option": _option_input, "member_phone": _member_phone}
# The inputs Payer.approve takes as the payer's choices; the others are only checked.
CHOICES = ("card_number", "install_month", "bank_code", "option")
# The page's checks a choice sent to the control API's approve must pass too, in the words of the
# refusal (the others, install_month, bank_code and option, are checked where they are used).
CHOICE_RULES = {"card_number": "must be 12 to 19 digits that pass the Luhn check, as on the payment page"}


def refused_choice(method: PaymentMethod, payment: Payment, choices: dict, now: datetime) -> tuple[str, str] | None:
    """(field, rule) of the first choice the payment page would refuse, or None: the control
    API's approve takes what the page takes, so a mistyped test card is refused, not approved."""
    page = PaymentPage(method, payment, now)
    for name, rule in CHOICE_RULES.items():
        if choices.get(name) is not None and INPUT_RULES[name](str(choices[name]), page)[1] is not None:
            return name, f"{rule}: {str(choices[name])[:40]!r} does not"
    return None


def asks_cash_receipt(method: PaymentMethod, payment: Payment) -> bool:
    """receipt_flag=Y on a cash-type method: the payment page asks for the cash receipt."""
    return payment.request.get("receipt_flag") == "Y" and method.cash_receipt and payment.kind == "payment"


def read_cash_receipt(form: dict, usages: tuple[str, ...]) -> tuple[dict, dict]:
    """The cash-receipt inputs: usage (`cash_receipt_type`) and identification number
    (`cash_receipt_id`): a mobile number or a cash-receipt card for a deduction, a business
    registration number or a mobile number for a proof of expense."""
    usage = form.get("cash_receipt_type", usages[0] if len(usages) == 1 else "").strip()
    number = _without_separators(form.get("cash_receipt_id", ""))
    values = {"cash_receipt_type": usage, "cash_receipt_id": number}
    if usage not in usages:
        return values, {"cash_receipt_type": "cash_receipt_type"}
    if usage == NOT_ASKED:
        return {**values, "cash_receipt_id": ""}, {}
    if usage == DEDUCTION:
        ok = bool(_MOBILE.fullmatch(number) or re.fullmatch(r"[0-9]{13,19}", number))
    else:
        ok = bool(re.fullmatch(r"[0-9]{10}", number) or _MOBILE.fullmatch(number))
    return values, {} if ok else {"cash_receipt_id": f"cash_receipt_id_{usage}"}


def read_payment_form(method: PaymentMethod, payment: Payment, form: dict, now: datetime) -> Reading:
    """What the payer sent from the payment page, checked input by input."""
    asks = pages()[method.pgcode]  # what this method's page asks for
    page = PaymentPage(method, payment, now)
    values, errors = {}, {}
    for name in asks.inputs:
        if name == "install_month" and not installments_offered(payment.amount) and not form.get(name):
            continue  # not offered below 50,000 KRW: a lump sum
        values[name], error = INPUT_RULES[name](str(form.get(name, "")), page)
        if error:
            errors[name] = error
    cash_receipt = None
    if asks_cash_receipt(method, payment):
        receipt_values, receipt_errors = read_cash_receipt(form, (DEDUCTION, EXPENSE, NOT_ASKED))
        values.update(receipt_values)
        errors.update(receipt_errors)
        cash_receipt = {"type": receipt_values["cash_receipt_type"], "payer_sid": receipt_values["cash_receipt_id"]}
    if errors:
        return Reading(values, errors)
    choices = {name: values[name] for name in CHOICES if name in values}
    failure = declining_input(method.pgcode, values)
    if failure is None and asks.app_step:
        app_result = form.get("app_result")
        if app_result not in ("approve", "decline"):
            return Reading(values, {})  # the app step comes next
        if app_result == "decline":
            failure = test_inputs().app_decline
    return Reading(values, {}, Entry(choices, failure, None if failure else cash_receipt))


def declining_inputs(pgcode: str) -> list[tuple[str, Failure]]:
    """The test inputs that make a payment with this method's page fail, to list on the page."""
    tests, inputs = test_inputs(), pages()[pgcode].inputs
    found = []
    for name, group in (("card_number", tests.cards), ("auth_code", tests.auth_codes), ("pin", tests.pins)):
        if name in inputs:
            found += group.items()
    return found


def declining_input(pgcode: str, values: dict) -> Failure | None:
    """The failure a test input stands for, if the payer gave one this method's page asks for.
    The one decision for both paths: the page's pay button and the control API's approve."""
    tests, inputs = test_inputs(), pages()[pgcode].inputs
    for name, group in (("card_number", tests.cards), ("auth_code", tests.auth_codes), ("pin", tests.pins)):
        if name in inputs and values.get(name) in group:
            return group[values[name]]
    return None


def cash_receipt_result(asked: dict, *, cid: str, deal_no: str) -> dict:
    """The issued cash receipt, in the callback's `cash_receipt` shape (the reference's names)."""
    if asked["type"] == NOT_ASKED:
        return {"code": "0", "message": CASH_RECEIPT_SELF_ISSUED, "cid": cid, "deal_no": deal_no,
                "issue_type": "2", "payer_sid": SELF_ISSUED_SID, "type": NOT_ASKED}
    return {"code": "0", "message": CASH_RECEIPT_ISSUED, "cid": cid, "deal_no": deal_no,
            "issue_type": "1", "payer_sid": asked["payer_sid"], "type": asked["type"]}


def cash_receipt_form_usages(kind: str) -> tuple[str, ...]:
    """cashreceipt/issue's `type`: 0 the payer picks, 1 tax deduction, 2 proof of expense."""
    return {"1": (DEDUCTION,), "2": (EXPENSE,)}.get(kind, (DEDUCTION, EXPENSE))


# --- where the browser goes -------------------------------------------------------------------

def _in_app(payment: Payment) -> bool:
    return payment.request.get("inapp_flag") == "Y" and pages()[payment.pgcode].in_app_return


def return_target(payment: Payment) -> str:
    """return_url; app_return_url for an in-app ISP card or account-transfer payment."""
    if _in_app(payment) and payment.request.get("app_return_url"):
        return payment.request["app_return_url"]
    return payment.request["return_url"]


def cancel_target(payment: Payment, method: PaymentMethod, redirect_url: str | None) -> str | None:
    """Where the payer's cancel goes: cancel_url (app_cancel_url in an app), or nowhere."""
    if method.no_cancel_redirect:
        return None
    if _in_app(payment) and payment.request.get("app_cancel_url"):
        return payment.request["app_cancel_url"]
    return redirect_url


def browser_can_go(url: str, *, app: bool = False) -> bool:
    """An absolute http(s) address (or, for an app's URL, an app scheme); never javascript: and
    the like, which a form or a redirect would run in the emulator's page."""
    cleaned = re.sub(r"[\t\n\r]", "", url).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                                               "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c"
                                               "\x1d\x1e\x1f ")
    match = _SCHEME.match(cleaned)
    if not match:
        return False
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return cleaned[len(scheme) + 1:].startswith("//") and len(cleaned) > len(scheme) + 3
    return app and scheme not in _UNSAFE_SCHEMES


def receipt_tid(receipt_id: str) -> str | None:
    """The tid a receipt id ends with, in hex (the id is checked against the gateway's own)."""
    try:
        return bytes.fromhex(receipt_id.rsplit("|", 1)[-1]).decode("utf-8")
    except ValueError:
        return None
