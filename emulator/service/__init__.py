"""The gateway's service, one room per who acts: the merchant's API (merchant_api), the payer's
pages and their control-API twins (payer), virtual accounts (virtual_accounts), and the clock
with the scenario and its timed jobs (clock_jobs), Payletter Global's payments (global_payments). They share one Context (context); a callback
leaves through the outbox (outbox). No Flask, no SQL: the web layer calls a room, the room
calls storage."""
from __future__ import annotations

from random import Random

from ..domain.clock import Clock
from ..config import Settings
from ..storage import Storage
from .clock_jobs import ClockJobs
from .context import Context
from .global_payments import GlobalPayments
from .merchant_api import MerchantApi
from .payer import Payer
from .virtual_accounts import VirtualAccounts


class Service:
    """The rooms of one emulator, wired to one context (the web layer calls them directly)."""

    def __init__(self, storage: Storage, clock: Clock, settings: Settings, draws: Random):
        self.context = Context(storage, clock, settings, draws)
        self.merchant_api = MerchantApi(self.context)
        self.virtual_accounts = VirtualAccounts(self.context)
        self.payer = Payer(self.context, self.virtual_accounts)
        self.clock_jobs = ClockJobs(self.context, self.virtual_accounts)
        self.global_payments = GlobalPayments(self.context)
