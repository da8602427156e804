"""The one error type, carrying (HTTP status, code, message), and the catalog it is made from."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class ErrorKind:
    name: str
    code: int
    status: int
    message: str
    meaning: str
    # The request that provokes it, as data (client/error_examples.py sends it for the docs), or why
    # a client cannot provoke it on purpose.
    example: dict | None = None
    no_example: str | None = None


@cache
def catalog() -> dict[str, ErrorKind]:
    text = resources.files(__package__).joinpath("error_codes.toml").read_text("utf-8")
    return {name: ErrorKind(name=name, **row) for name, row in tomllib.loads(text).items()}


class GatewayError(Exception):
    """Raised anywhere below the HTTP layer; rendered once as `{"code", "message"}`."""

    def __init__(self, kind: str, **details):
        entry = catalog()[kind]
        self.kind = kind
        self.code = entry.code
        self.status = entry.status
        self.details = details
        self.message = entry.message.format(**details)
        super().__init__(self.message)

    @classmethod
    def answer(cls, status: int, code: int, message: str) -> "GatewayError":
        """An answer a scenario dictates: any status, code and message."""
        error = cls("scenario_answer", message=message)
        error.status, error.code = status, code
        return error

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}
