"""Whether a request may wait is declared by its route (waits.THREAD) and found by
the route, never learned from raw paths: a sandbox's prefix or a token in the path changes nothing,
however many sandboxes a run makes."""
from __future__ import annotations

import pytest

from payletter_emulator import create_app
from payletter_emulator.waits import THREAD
from payletter_emulator.web.app import route_waits


@pytest.fixture(scope="module")
def app():
    return create_app(db=":memory:")


@pytest.mark.parametrize("method,path,waits", [
    ("POST", "/_emulator/reset", THREAD),
    ("POST", "/_emulator/callbacks/flush", None),  # awaited in the event loop (waits.LATER)
    ("POST", "/_emulator/callbacks/12/resend", THREAD),
    ("GET", "/_emulator/requests", THREAD),
    ("DELETE", "/_emulator/coverage", THREAD),
    ("POST", "/v1.0/payments/request", None),
    ("POST", "/_emulator/payments/170000000000000001/approve", None),
    ("GET", "/_emulator/health", None),
    ("GET", "/no/such/path", None),
    ("DELETE", "/_emulator/reset", None),  # not a route of this method
])
def test_a_route_declares_how_it_waits(app, method, path, waits):
    assert route_waits(app, method, path) == waits


def test_a_sandbox_prefix_never_changes_the_answer(app):
    for n in range(200):  # more sandboxes than any memory of paths would have held
        prefix = f"/_sandbox/sb{n:04d}"
        assert route_waits(app, "POST", prefix + "/_emulator/reset") == THREAD
        assert route_waits(app, "POST", prefix + "/_emulator/callbacks/12/resend") == THREAD
        assert route_waits(app, "POST", prefix + "/v1.0/payments/request") is None


def test_every_control_operation_that_waits_for_others_declares_it(app):
    declared = {rule.rule: route_waits(app, method, rule.rule)
                for rule in app.url_map.iter_rules() for method in rule.methods - {"HEAD", "OPTIONS"}
                if rule.rule.startswith("/_emulator") and "<" not in rule.rule}
    assert declared["/_emulator/reset"] == THREAD
    assert {path for path, waits in declared.items() if waits} >= {"/_emulator/reset", "/_emulator/requests"}
