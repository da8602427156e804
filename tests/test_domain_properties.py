"""Property-based tests of the pure domain: payhash, tax, identifiers, windows, the table."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from hypothesis import given, strategies as st

from payletter_emulator.domain.clock import KST, Clock, ClockState
from payletter_emulator.domain import identifiers, tax, windows
from payletter_emulator.domain.methods import table
from payletter_emulator.domain.payhash import billkey_payhash, payhash

texts = st.text(min_size=0, max_size=60)
amounts = st.integers(min_value=0, max_value=10**12)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(KST))
client_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)


@given(texts, amounts, texts, texts)
def test_payhash_is_uppercase_sha256_of_the_documented_string(user_id, amount, tid, key):
    expected = hashlib.sha256(f"{user_id}{amount}{tid}{key}".encode()).hexdigest().upper()
    assert payhash(user_id, amount, tid, key) == expected
    assert re.fullmatch(r"[0-9A-F]{64}", expected)


@given(texts, texts, texts)
def test_billkey_payhash(user_id, billkey, key):
    assert billkey_payhash(user_id, billkey, key) == hashlib.sha256(
        (user_id + billkey + key).encode()).hexdigest().upper()


def test_payhash_of_the_reference_callback_shape():
    # amount is written as a plain integer, never 1000.0
    assert payhash("test_user_id", 1000, "tpay_test-201808162396515", "K") == hashlib.sha256(
        b"test_user_id1000tpay_test-201808162396515K").hexdigest().upper()


@given(amounts, st.data())
def test_vat_is_the_ceiling_of_a_eleventh_of_the_taxable_part(amount, data):
    taxfree = data.draw(st.integers(min_value=0, max_value=amount))
    vat = tax.vat(amount, taxfree)
    assert vat * 11 >= amount - taxfree > (vat - 1) * 11 or (amount == taxfree and vat == 0)


def test_vat_examples():
    assert tax.vat(1000) == 91 and tax.vat(1100) == 100 and tax.vat(1101) == 101 and tax.vat(0) == 0
    assert tax.split(1000, None, None) == (0, 91)
    assert tax.split(1000, 100, 50) == (100, 50)


@given(st.integers(min_value=10**12, max_value=10**13 - 1), st.integers(min_value=0, max_value=10**9))
def test_token_is_18_digits_of_millis_then_counter(millis, counter):
    token = identifiers.token(millis, counter)
    assert len(str(token)) == 18
    assert str(token).startswith(str(millis))
    assert str(token).endswith(f"{counter % 100000:05d}")


@given(st.integers(min_value=10**12, max_value=10**13 - 10**5), st.lists(
    st.integers(min_value=1, max_value=10**8), min_size=2, max_size=50, unique=True))
def test_a_frozen_instant_never_repeats_a_token(millis, counters):
    """On a frozen clock every token shares its milliseconds: distinct serials, distinct tokens,
    however far apart (their last five digits alike or not); below 100,000 the usual shape."""
    counters = [*counters, *(counters[0] + 10**5 * lap for lap in (1, 2, 3))]  # last five digits alike
    counters = list(dict.fromkeys(counters))
    tokens = [identifiers.token(millis, counter, frozen=True) for counter in counters]
    assert len(set(tokens)) == len(tokens)
    for counter, token in zip(counters, tokens):
        assert len(str(token)) == 18
        if counter < 10**5:
            assert token == identifiers.token(millis, counter)


@given(client_ids, moments, st.integers(min_value=1, max_value=10**9))
def test_tid_shape(client_id, at, serial):
    tid = identifiers.tid(client_id, at, serial)
    match = identifiers.TID_PATTERN.match(tid)
    assert match and match.group("client_id") == client_id and match.group("day") == at.strftime("%Y%m%d")
    assert len(tid) <= 40


@given(client_ids, moments, st.integers(min_value=1, max_value=10**9))
def test_billkey_shape(client_id, at, serial):
    billkey = identifiers.billkey(client_id, at, serial)
    assert re.fullmatch(rf"tb{re.escape(client_id)}\d{{14}}\d{{4}}", billkey)
    assert billkey[2 + len(client_id):][:14] == at.strftime("%Y%m%d%H%M%S")


@given(moments, st.text(alphabet="0123456789", min_size=7, max_size=7), st.integers(min_value=0, max_value=10**9))
def test_cid_shapes(at, digits, serial):
    tid = identifiers.tid("pay_test", at, serial)
    assert re.fullmatch(r"\d{7}", identifiers.cid("digits7", at, digits, tid))
    mobile = identifiers.cid("datetime20", at, digits, tid)
    assert re.fullmatch(r"\d{20}", mobile) and mobile.startswith(at.strftime("%Y%m%d%H%M%S"))
    card = identifiers.cid("tid_serial", at, digits, tid)
    assert re.fullmatch(r"\d{7}", card) and (int(card) + 1) % 10**7 == int(tid[-7:])


def test_a_card_cid_is_the_tid_serial_less_one_as_captured():
    """Captured test approvals: tpay_test-202003058157772 / 8157771, ...-202002288149418 / 8149417."""
    for tid, cid in [("tpay_test-202003058157772", "8157771"), ("tpay_test-202002288149418", "8149417"),
                     ("tpay_test-202611290000000", "9999999")]:
        assert identifiers.cid("tid_serial", datetime(2020, 3, 5, tzinfo=KST), "1234567", tid) == cid


@given(moments, st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=800))
def test_day_windows_are_calendar_days_inclusive(made, days, later):
    at = (made + timedelta(days=later)).replace(hour=23, minute=59, second=59)
    assert windows.within_window(f"D+{days}", made, at) == (later <= days)


@given(moments, st.integers(min_value=0, max_value=24 * 40))
def test_same_day_and_same_month(made, hours):
    at = made + timedelta(hours=hours)
    assert windows.within_window("same_day", made, at) == (at.date() == made.date())
    assert windows.within_window("same_month", made, at) == ((at.year, at.month) == (made.year, made.month))


@given(moments, st.integers(min_value=0, max_value=10**5))
def test_none_never_and_client_policy_always(made, days):
    at = made + timedelta(days=days)
    assert not windows.within_window("none", made, at)
    assert windows.within_window("client_policy", made, at)


def test_the_table_covers_the_appendix():
    appendix = ("creditcard banktransfer virtualaccount mobile book culture smartculture happymoney mobilepop "
                "teencash tmoney cvs eggmoney oncash phonebill cashbee kakaopay payco checkpay toss ssgpay lpay "
                "naverpay samsungpay chai smilepay").split()
    assert sorted(table()) == sorted(appendix)
    rows = table()
    assert (rows["creditcard"].minimum, rows["creditcard"].window, rows["creditcard"].recurring) == (100, "D+180", True)
    assert rows["virtualaccount"].cancel is False and rows["checkpay"].partial_cancel is False
    assert rows["smilepay"].window_for("smilecash") == "D+365"
    assert (rows["oncash"].cancel, rows["oncash"].partial_cancel, rows["oncash"].window, rows["oncash"].minimum) == (
        True, False, "D+24", 10)


@given(st.floats(min_value=-10**6, max_value=10**6, allow_nan=False))
def test_clock_advance_moves_frozen_and_running_time_alike(seconds):
    wall = [1_800_000_000.0]
    clock = Clock(wall=lambda: wall[0])
    clock.advance(seconds)
    assert clock.timestamp() == 1_800_000_000.0 + seconds
    clock.freeze(True)
    wall[0] += 50
    assert clock.timestamp() == 1_800_000_000.0 + seconds
    clock.freeze(False)
    wall[0] += 5
    assert abs(clock.timestamp() - (1_800_000_005.0 + seconds)) < 1e-6
    assert Clock(ClockState(0, 42.0)).now() == datetime.fromtimestamp(42.0, KST)


def test_a_clock_ignores_a_state_older_than_the_one_it_took():
    clock = Clock(wall=lambda: 1_000.0)
    clock.load(ClockState(0.0, 5_000.0), version=7)
    clock.load(ClockState(0.0, 2_000.0), version=6)  # read from the store before version 7 was written
    assert clock.timestamp() == 5_000.0
    clock.load(ClockState(0.0, 9_000.0), version=8)
    assert clock.timestamp() == 9_000.0
