"""The seed (`--seed`, PAYLETTER_EMULATOR_FAKER_SEED, a scenario's `faker_seed`) makes the
generated details of approvals repeatable: two servers started with one seed give the same card
numbers, phone numbers and banks in the same order; another seed gives others."""
from __future__ import annotations

from .conftest import Api, EmulatorProcess

# Details drawn at random: a card's masked number (its hidden digits are drawn, but the mask shows
# the BIN and the last four), a phone's number, a bank transfer's bank.
APPROVALS = (("creditcard", "card_info"), ("mobile", "pay_info"), ("banktransfer", "pay_info"))


def details(workdir, *args: str) -> list[str]:
    workdir.mkdir()
    server = EmulatorProcess(workdir, *args)
    try:
        api = Api(server.url, "http://127.0.0.1:9/callback")  # nothing is flushed: no receiver needed
        drawn = []
        for _ in range(3):
            for pgcode, field in APPROVALS:
                token = api.request_payment(pgcode=pgcode)
                drawn.append(api.control(f"/payments/{token}/approve", {})["fields"][field])
        return drawn
    finally:
        server.stop()


def test_one_seed_draws_the_same_details_and_another_seed_others(tmp_path):
    first = details(tmp_path / "a", "--seed", "7")
    again = details(tmp_path / "b", "--seed", "7")
    other = details(tmp_path / "c", "--seed", "8")
    assert first == again
    assert first != other
    phones = first[1::3]
    assert len(set(phones)) == len(phones), phones  # drawn, not one fixed number
