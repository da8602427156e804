"""The callback policy as plain values: acknowledgement, the schedule, giving up, the
allow-list and the reachability warnings."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payletter_emulator.config import Settings
from payletter_emulator.delivery.dispatcher import DeliverySettings
from payletter_emulator.domain.callback_policy import (DELIVERED, FAILED, PENDING, RESEND, RETRY, Outcome, Policy, acknowledged,
                                      host_allowed, next_state, reachability_warnings)

GATEWAY = DeliverySettings.of(Settings()).policy  # the gateway's policy, as the emulator starts
OK = Outcome(200, '{"code": 0}', "", 1.0, acknowledged=True)
REFUSED = Outcome(500, "", "not acknowledged", 1.0, acknowledged=False)
BLOCKED = Outcome(None, "", "blocked", 0.0, acknowledged=False, blocked=True)


@pytest.mark.parametrize("status,body,expected", [
    (200, b'{"code": 0, "message": "success"}', True),
    (200, b'{"code": "0"}', True),
    (200, b'{"code": 0.0}', False),
    (200, b'{"code": false}', False),
    (200, b'{"code": "00"}', False),
    (200, b'[0]', False),
    (200, b'', False),
    (201, b'{"code": 0}', False),
    (None, b'', False),
])
def test_what_acknowledges(status, body, expected):
    assert acknowledged(status, body) is expected


@given(first=st.integers(0, 10**13), retries=st.integers(0, 50), interval=st.integers(0, 86400))
def test_the_schedule_is_exact_and_ends(first, retries, interval):
    policy = Policy(interval, retries)
    due, made, status, schedule = first, 0, PENDING, []
    while status == PENDING:
        schedule.append(due)
        status, made, due = next_state(policy, RETRY, status, made, due, REFUSED)
    assert status == FAILED and made == retries + 1 and due is None
    assert schedule == [first + k * interval * 1000 for k in range(retries + 1)]


def test_an_acknowledgement_ends_the_schedule():
    assert next_state(GATEWAY, RETRY, PENDING, 3, 1_000, OK) == (DELIVERED, 4, None)


def test_a_blocked_host_is_given_up_at_once():
    assert next_state(GATEWAY, RETRY, PENDING, 0, 1_000, BLOCKED) == (FAILED, 1, None)


@pytest.mark.parametrize("status", [PENDING, DELIVERED, FAILED])
def test_a_resend_never_moves_the_schedule(status):
    assert next_state(GATEWAY, RESEND, status, 5, 9_000, REFUSED) == (status, 5, 9_000)
    assert next_state(GATEWAY, RESEND, status, 5, 9_000, OK) == (DELIVERED, 5, 9_000)


@pytest.mark.parametrize("url,allowed,expected", [
    ("https://shop.example/cb", (), True),
    ("https://shop.example/cb", ("shop.example",), True),
    ("https://api.shop.example/cb", ("*.shop.example",), True),
    ("https://SHOP.example/cb", ("shop.example",), True),
    ("http://127.0.0.1:8000/cb", ("shop.example",), False),
    ("https://evilshop.example/cb", ("*.shop.example",), False),
])
def test_the_allow_list(url, allowed, expected):
    assert host_allowed(url, allowed) is expected


@pytest.mark.parametrize("url,expected", [
    ("https://shop.example/callback", []),
    ("http://shop.example:80/callback", []),
    ("https://shop.example:8443/callback", ["port 8443"]),
    ("http://localhost/callback", ["private host localhost"]),
    ("http://10.1.2.3/callback", ["private host 10.1.2.3"]),
    ("http://127.0.0.1:5000/callback", ["port 5000", "private host 127.0.0.1"]),
    ("https://8.8.8.8/callback", []),
])
def test_reachability_warnings(url, expected):
    warnings = reachability_warnings(url)
    assert len(warnings) == len(expected)
    for warning, fragment in zip(warnings, expected):
        assert fragment in warning
