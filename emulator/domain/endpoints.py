"""The gateway's REST API as data: each endpoint's path, method, key and schemas. The routes
(web/gateway_api.py) are made from this list, and a scenario rule's `endpoint` names one of it."""
from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/v1.0"
# Where the real gateway answers (the test gateway, the live one): the hosts `serve --intercept`
# answers for itself (emulator/serving/intercept.py).
GATEWAY_HOSTS = ("testpgapi.payletter.com", "pgapi.payletter.com")
GATEWAY_PORT = 443


@dataclass(frozen=True)
class Endpoint:
    path: str  # under PREFIX, in OpenAPI form: /receipt/info/{tid}
    method: str
    summary: str
    key: str  # the PLKEY it takes: PAYMENT, SEARCH or ANY
    schema: str  # schemas/requests/<schema>.json
    response: str | None = None  # schemas/responses/<response>.json when it is not <schema>
    query: bool = False  # the request's values come as query parameters

    @property
    def name(self) -> str:
        """How scenario rules, the journal and coverage name it: payments/cancel/partial, receipt/info."""
        return self.path.lstrip("/").removesuffix("/{tid}")


GATEWAY = (
    Endpoint("/payments/request", "POST", "Payment request (plain, automatic payment, verification only)",
             key="PAYMENT", schema="payments_request"),
    Endpoint("/payments/autopay", "POST", "Automatic payment (re-payment with a billkey)",
             key="PAYMENT", schema="payments_autopay"),
    Endpoint("/payments/cancel", "POST", "Payment cancellation (what is left of the payment)",
             key="PAYMENT", schema="payments_cancel"),
    Endpoint("/payments/cancel/partial", "POST", "Partial cancellation",
             key="PAYMENT", schema="payments_cancel_partial", response="payments_cancel"),
    Endpoint("/cashreceipt/issue/{tid}", "POST", "Issue cash receipt (e-invoice): the receipt form's URL",
             key="PAYMENT", schema="cashreceipt_issue"),
    Endpoint("/payments/transaction/list", "GET", "Search payment history of a day",
             key="SEARCH", schema="transaction_list", query=True),
    Endpoint("/receipt/info/{tid}", "GET", "Transaction history confirmation: the receipt page's URL",
             key="SEARCH", schema="receipt_info", query=True),
    Endpoint("/payments/status", "POST", "Where a payment request stands, by order_no (either key)",
             key="ANY", schema="payments_status"),
)
BY_NAME = {endpoint.name: endpoint for endpoint in GATEWAY}
