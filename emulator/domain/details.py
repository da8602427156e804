"""Method details made on approval (card, phone, bank, account): their digits drawn from one
seedable generator (`random.Random`, seeded by the `faker_seed` setting)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from random import Random

from .clock import KST
from .errors import GatewayError
from .methods import PaymentMethod

TEST_CARD = "테스트카드"  # a card's pay_info on the real test gateway, in every captured approval
BANKS = {
    "003": "IBK기업은행", "004": "KB국민은행", "011": "NH농협은행", "020": "우리은행",
    "023": "SC제일은행", "031": "iM뱅크", "032": "부산은행", "081": "하나은행",
    "088": "신한은행", "089": "케이뱅크", "090": "카카오뱅크", "092": "토스뱅크",
}
DEFAULT_CARD_BIN = "457973"  # the reference's own example card_info
INSTALLMENT_FROM = 50_000
INSTALLMENT_MONTHS = {0} | set(range(2, 37))
ACCOUNT_HOLDER = "(주)페이레터"
VIRTUAL_ACCOUNT_DAYS = 7


@dataclass(frozen=True)
class CardCompany:
    """A row of card_companies.toml: Payletter's card_code, its name, and where it issues."""

    code: str
    name: str
    bin: str
    foreign: bool = False


@cache
def card_companies() -> tuple[CardCompany, dict[str, CardCompany]]:
    """The default company and every company by its bin (card_companies.toml)."""
    raw = tomllib.loads(resources.files(__package__).joinpath("card_companies.toml").read_text("utf-8"))
    companies = {code: CardCompany(code, **row) for code, row in raw["codes"].items()}
    by_bin = {company.bin: company for company in companies.values()}
    if len(by_bin) != len(companies) or any(len(b) != 6 or not b.isdigit() for b in by_bin):
        raise ValueError("card_companies.toml: every bin is six digits, one company each")
    return companies[raw["default"]], by_bin


def card_company(number: str) -> CardCompany:
    """Whose card `number` is: the company of its first six digits, else the default one."""
    default, by_bin = card_companies()
    return by_bin.get(number[:6], default)


def mask_card(number: str) -> str:
    """First 6 and last 4 digits, the middle 6 masked: `457973******1234`."""
    return f"{number[:6]}******{number[-4:]}"


def install_month(method: PaymentMethod, amount: int, requested: str | None) -> str:
    if requested is None or requested == "00":
        return "00"
    months = int(requested)
    if method.details != "card":
        raise GatewayError("install_month_invalid", install_month=requested,
                           rule=f"{method.pgcode} has no installments")
    if months not in INSTALLMENT_MONTHS:
        raise GatewayError("install_month_invalid", install_month=requested,
                           rule="must be 00 (lump sum) or 02 to 36")
    if amount < INSTALLMENT_FROM:
        raise GatewayError("install_month_invalid", install_month=requested,
                           rule=f"installments start at {INSTALLMENT_FROM:,} KRW")
    return f"{months:02d}"


class DetailMaker:
    """Makes the payer's side of an approval, drawing from `draws` (a `random.Random`): seed it
    for repeatable runs."""

    def __init__(self, draws: Random):
        self.draws = draws

    def digits(self, count: int) -> str:
        """`count` random digits, in one draw."""
        return f"{self.draws.randrange(10 ** count):0{count}d}"

    def phone(self) -> str:
        return "010" + self.digits(8)

    def approval(self, method: PaymentMethod, amount: int, *, card_number: str | None = None,
                 install: str | None = None, bank_code: str | None = None) -> dict:
        """pay_info, card_info, card_code, domestic_flag and install_month for an approved
        payment. A card's company (card_code, and whether it is foreign) is its number's; its
        pay_info stays the test gateway's 테스트카드. A virtual account's pay_info is its account
        number, set when the account is made; install_month is "" where installments do not
        apply, as in real callbacks."""
        kind = method.details
        details = {"pay_info": "", "card_info": "", "card_code": "", "domestic_flag": "", "install_month": ""}
        if kind == "card":
            number = card_number or DEFAULT_CARD_BIN + self.digits(10)
            company = card_company(number)
            details.update(pay_info=TEST_CARD, card_info=mask_card(number), card_code=company.code,
                           domestic_flag="Y" if company.foreign else "N",
                           install_month=install_month(method, amount, install))
        elif kind == "phone":
            details["pay_info"] = self.phone()
        elif kind == "bank":
            details["pay_info"] = BANKS[self.bank_code(bank_code)]
        elif kind == "voucher":
            details["pay_info"] = f"{self.digits(4)}-****-****-{self.digits(4)}"
        elif kind == "wallet":
            details["pay_info"] = method.name
        if install not in (None, "00") and kind != "card":
            install_month(method, amount, install)  # raises with the reason
        return details

    def bank_code(self, requested: str | None) -> str:
        if requested is None:
            return self.draws.choice(sorted(BANKS))
        if requested not in BANKS:
            raise GatewayError("field_invalid", field="bank_code",
                               rule="must be one of " + ", ".join(sorted(BANKS)))
        return requested

    def virtual_account(self, request: dict, issued: datetime, bank_code: str | None) -> dict:
        code = self.bank_code(bank_code)
        expiry = virtual_account_expiry(request, issued)
        account_no = self.digits(14)
        return {
            "pay_info": account_no,  # as in real virtual-account callbacks: the account, not a bank
            "account_no": account_no,
            "account_name": request.get("user_name") or request["user_id"],
            "account_holder": ACCOUNT_HOLDER,
            "bank_code": code,
            "bank_name": BANKS[code],
            "issue_tid": self.digits(12),
            "expire_date": expiry.strftime("%Y%m%d"),
            "expire_time": expiry.strftime("%H%M"),
        }


def expiry_moment(expire_date: str, expire_time: str) -> datetime:
    """`YYYYMMDD` and `HHMM` as a KST moment; ValueError if they are not a real date and time."""
    return datetime.strptime(expire_date + expire_time, "%Y%m%d%H%M").replace(tzinfo=KST)


def virtual_account_expiry(request: dict, issued: datetime) -> datetime:
    """The request's expire_date/expire_time, or 23:59 seven days after issue."""
    issued = issued.astimezone(KST)
    if "expire_date" in request:
        return expiry_moment(request["expire_date"], request.get("expire_time", "2359"))
    return (issued + timedelta(days=VIRTUAL_ACCOUNT_DAYS)).replace(hour=23, minute=59, second=0, microsecond=0)
