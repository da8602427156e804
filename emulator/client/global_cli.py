"""`payletter-emulator global ...`: Payletter Global's control operations from a shell, as the
domestic ones are (drive.py): `list` its payments, `approve` or `decline` one as its payer would,
`refund` one as the merchant would, and list its `notifications`.
Each prints the control API's answer as one JSON document; a refusal is JSON on stderr, exit 1."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..domain.global_rules import PAYMENT_STATUSES
from .drive_options import connection

if TYPE_CHECKING:
    from .control_client import EmulatorClient


def register(main: click.Group) -> None:
    main.add_command(global_group)


@click.group("global")
def global_group():
    """Payletter Global's payments (docs/global.md)."""


@global_group.command("list")
@click.option("--status", type=click.Choice(PAYMENT_STATUSES), help="Only payments in this status.")
@click.option("--store-id", help="Only this store's (global_test, or a sandbox's id).")
@connection(sandbox=True)
def global_list(client: EmulatorClient, status: str | None, store_id: str | None):
    """Global payments with their refunds, in the order they were requested: {"payments": [...]}."""
    return {"payments": client.pages("/global/payments", "payments", {"status": status, "store_id": store_id})}


@global_group.command("approve")
@click.argument("token")
@click.option("--card-number", help="A test card (4 Visa, 51-55 Master, 35 JCB, 34/37 Amex) [default: a Visa]; "
                                    "another number declines, as on the page.")
@connection(sandbox=True)
def global_approve(client: EmulatorClient, token: str, card_number: str | None):
    """Pay TOKEN's payment as its payer would; the notification is queued (`callbacks flush` waits
    for its first attempt). The payment: status, paytoken, card_kind, ..."""
    body = {"card_number": card_number} if card_number else {}
    return client.control("POST", f"/global/payments/{token}/approve", body)


@global_group.command("decline")
@click.argument("token")
@connection(sandbox=True)
def global_decline(client: EmulatorClient, token: str):
    """TOKEN's payment fails; nothing is notified."""
    return client.control("POST", f"/global/payments/{token}/decline")


@global_group.command("refund")
@click.argument("token")
@click.option("--amount", help="The amount refunded, as written in the payment's currency (\"2.50\") "
                               "[default: what is left].")
@connection(sandbox=True)
def global_refund(client: EmulatorClient, token: str, amount: str | None):
    """Refund TOKEN's paid payment as the merchant's server would (never past its amount); the
    refund notification (notifytype 2) is queued. The refund's answer: {code, message, data}."""
    return client.control("POST", f"/global/payments/{token}/refund", {"amount": amount} if amount else {})


@global_group.command("notifications")
@click.option("--paytoken", help="Only this payment's.")
@click.option("--status", type=click.Choice(("pending", "delivered", "failed")), help="Only notifications in this status.")
@connection(sandbox=True)
def global_notifications(client: EmulatorClient, paytoken: str | None, status: str | None):
    """Global notifications with their form and attempts, oldest first: {"notifications": [...]}."""
    query = {name: value for name, value in (("paytoken", paytoken), ("status", status)) if value}
    return {"notifications": client.pages("/global/notifications", "notifications", query)}
