"""The payment-method table: loads payment_methods.toml into immutable rows, keyed by pgcode.
A row is the whole method: its rules, what its page asks for, what the pages call it."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from .windows import validate_window

DETAIL_KINDS = {"card", "phone", "bank", "account", "wallet", "voucher"}
CID_FORMATS = {"digits7", "datetime20", "tid_serial"}


LANGUAGES = ("ko", "en")


@dataclass(frozen=True)
class Label:
    """What the hosted pages and the dashboard call a method or an option, by language."""

    ko: str
    en: str


@dataclass(frozen=True)
class PaymentOption:
    """A choice the payer makes on the page (Naver Pay card/point, SmilePay card/cash)."""

    pgcode: str
    window: str
    label: Label


@dataclass(frozen=True)
class PaymentMethod:
    pgcode: str
    name: str
    label: Label
    minimum: int
    window: str
    recurring: bool = False
    verification: bool = False
    cancel: bool = True
    partial_cancel: bool = False
    service_name_required: bool = False
    cup_deposit: bool = False
    autopay_cup_deposit: bool = False
    cash_receipt: bool = False
    details: str = "wallet"
    cid: str = "digits7"
    no_cancel_redirect: bool = False
    monthly_repayment: bool = False
    inputs: tuple[str, ...] = ()
    app_step: bool = False
    in_app_return: bool = False
    options: tuple[PaymentOption, ...] = field(default=())

    def option(self, pgcode: str | None) -> PaymentOption | None:
        """The payer's pick by its pgcode; the first option when none is given."""
        if not self.options:
            return None
        if pgcode is None:
            return self.options[0]
        for option in self.options:
            if option.pgcode == pgcode:
                return option
        raise KeyError(pgcode)

    def window_for(self, paid_pgcode: str) -> str:
        for option in self.options:
            if option.pgcode == paid_pgcode:
                return option.window
        return self.window


def _label(pgcode: str, raw: dict) -> Label:
    if set(raw) != set(LANGUAGES):
        raise ValueError(f"payment_methods.toml: {pgcode}'s label needs exactly {', '.join(LANGUAGES)}")
    return Label(**raw)


def _row(pgcode: str, raw: dict) -> PaymentMethod:
    raw = dict(raw)
    window = validate_window(raw.pop("window"))
    options = tuple(
        PaymentOption(code, validate_window(spec.get("window", window)), _label(code, spec.get("label", {})))
        for code, spec in raw.pop("options", {}).items()
    )
    method = PaymentMethod(pgcode=pgcode, window=window, options=options, label=_label(pgcode, raw.pop("label", {})),
                           inputs=tuple(raw.pop("inputs", ())), **raw)
    if method.details not in DETAIL_KINDS or method.cid not in CID_FORMATS:
        raise ValueError(f"payment_methods.toml: bad details or cid for {pgcode}")
    if ("option" in method.inputs) != bool(method.options):
        raise ValueError(f"payment_methods.toml: {pgcode}'s `option` input and its options go together")
    return method


@cache
def table() -> dict[str, PaymentMethod]:
    text = resources.files(__package__).joinpath("payment_methods.toml").read_text("utf-8")
    return {code: _row(code, raw) for code, raw in tomllib.loads(text).items()}


def lookup(pgcode: str) -> PaymentMethod | None:
    return table().get(pgcode)


def labels(lang: str) -> dict[str, str]:
    """What the pages call every pgcode a payer sees, each method's and each option's, in `lang`."""
    found = {}
    for method in table().values():
        found[method.pgcode] = getattr(method.label, lang)
        found.update((option.pgcode, getattr(option.label, lang)) for option in method.options)
    return found


def verification_methods() -> list[str]:
    """The pgcodes that offer verification only (amount 0 with autopay_flag=Y)."""
    return [code for code, method in table().items() if method.verification]
