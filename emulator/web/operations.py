"""The one list of HTTP operations: each route declares itself here, and /openapi.json reads it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    path: str  # OpenAPI form: /v1.0/receipt/info/{tid}
    method: str
    summary: str
    key: str | None = None  # PAYMENT, SEARCH, ANY; None for the control API
    request: str | None = None  # schema name under schemas/
    response: str | None = None
    query: bool = False  # the request schema describes query parameters
    status: str = "200"  # the answer's status when it succeeds


OPERATIONS: list[Operation] = []


def register(operation: Operation) -> Operation:
    OPERATIONS.append(operation)
    return operation
