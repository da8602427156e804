"""Whether a request's work is long is declared by its route (waits.LONG) and found by the route,
never learned from raw paths: a sandbox's prefix or a token in the path changes nothing, however
many sandboxes a run makes."""
from __future__ import annotations

import pytest

from payletter_emulator import create_app
from payletter_emulator.waits import LONG
from payletter_emulator.web.app import route_work


@pytest.fixture(scope="module")
def app():
    return create_app(db=":memory:")


@pytest.mark.parametrize("method,path,work", [
    ("POST", "/_emulator/reset", LONG),  # it waits for the other processes' journal
    ("POST", "/_emulator/callbacks/flush", None),  # awaited in the event loop (waits.LATER)
    ("POST", "/_emulator/callbacks/12/resend", None),  # so is the merchant's answer
    ("GET", "/_emulator/requests", LONG),
    ("GET", "/_emulator/payments", LONG),
    ("DELETE", "/_emulator/coverage", LONG),
    ("POST", "/v1.0/payments/request", None),
    ("POST", "/_emulator/payments/170000000000000001/approve", None),
    ("GET", "/_emulator/health", None),
    ("GET", "/no/such/path", None),
    ("DELETE", "/_emulator/reset", None),  # not a route of this method
])
def test_a_route_declares_its_work(app, method, path, work):
    assert route_work(app, method, path) == work


def test_a_sandbox_prefix_never_changes_the_answer(app):
    for n in range(200):  # more sandboxes than any memory of paths would have held
        prefix = f"/_sandbox/sb{n:04d}"
        assert route_work(app, "GET", prefix + "/_emulator/requests") == LONG
        assert route_work(app, "GET", prefix + "/_emulator/payments") == LONG
        assert route_work(app, "POST", prefix + "/v1.0/payments/request") is None


def test_the_long_control_operations_declare_it(app):
    declared = {(method, rule.rule): route_work(app, method, rule.rule)
                for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}
                if rule.rule.startswith("/_emulator") and "<" not in rule.rule}
    assert {route for route, work in declared.items() if work} >= {
        ("GET", "/_emulator/requests"), ("GET", "/_emulator/payments"), ("GET", "/_emulator/callbacks"),
        ("PUT", "/_emulator/scenario")}
