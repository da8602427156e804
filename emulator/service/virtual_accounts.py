"""Virtual accounts: issued when the payer pays by one, then paid by a deposit (the payer's,
through the control API, or a scenario's timed job) or closed by their expiry."""
from __future__ import annotations

from datetime import datetime, timedelta

from ..domain.clock import kst_datetime
from ..domain.details import expiry_moment
from ..domain.payment import APPROVED, ISSUED, Payment
from ..domain.rules import VIRTUAL_ACCOUNT
from ..domain.errors import GatewayError
from .context import Room
from .outbox import queue_callback


class VirtualAccounts(Room):
    def issue(self, payment: Payment, now: datetime, bank_code: str | None) -> None:
        """The payer chose a virtual account: its number and expiry; a scenario's deposit or
        expiry for it, as a timed job."""
        payment.details.update(self.context.details.virtual_account(payment.request, now, bank_code))
        payment.status = ISSUED
        rule = self.context.decide(VIRTUAL_ACCOUNT, payment)
        if rule is not None:
            due = now + timedelta(seconds=rule.params["after_seconds"])
            params = {"tid": payment.tid, **({"amount": rule.params["amount"]} if "amount" in rule.params else {})}
            self.storage.add_job(round(due.timestamp() * 1000), rule.outcome, params, origin=f"rule {rule.name}")

    def deposit(self, tid: str, amount: int | None, at: datetime | None = None) -> dict:
        """The payer deposits, now or at the moment a timed job was due."""
        with self.storage.atomic():
            payment = self._issued(tid)
            now = at or self.clock.now()
            expiry = expiry_moment(payment.details["expire_date"], payment.details["expire_time"])
            if now > expiry:
                raise GatewayError("virtual_account_expired", tid=tid, expiry=kst_datetime(expiry))
            if amount is not None and amount != payment.amount:
                raise GatewayError("deposit_amount_mismatch", tid=tid, expected=payment.amount, amount=amount)
            payment.status = APPROVED
            payment.details["issued_at"] = payment.transaction_date
            payment.transaction_date = kst_datetime(now)  # the payment happens at the deposit
            queue_callback(self.context, payment, self.context.clients[payment.client_id], now)
            self.storage.save_payment(payment)
        return self.context.payment_view(payment)

    def expire(self, tid: str, at: datetime) -> dict:
        """The virtual account closes at `at`: a later deposit is refused."""
        with self.storage.atomic():
            payment = self._issued(tid)
            payment.details["expire_date"], payment.details["expire_time"] = at.strftime("%Y%m%d"), at.strftime("%H%M")
            self.storage.save_payment(payment)
        return self.context.payment_view(payment)

    def _issued(self, tid: str) -> Payment:
        """Read to be changed: kept from every other writer until the transaction ends."""
        payment = self.storage.payment_by_tid(tid, to_change=True)
        if payment is None:
            raise GatewayError("payment_unknown", tid=tid)
        if payment.status != ISSUED:
            raise GatewayError("not_virtual_account", tid=tid, status=payment.status)
        return payment
