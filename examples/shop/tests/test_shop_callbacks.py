"""The callback endpoint: forged notifications are refused; a notification delivered again is
acknowledged but processed once."""
import pytest


@pytest.mark.parametrize("prefix", ["forged-hash-", "forged-amount-"])
def test_a_forged_callback_is_refused(shop, payletter, prefix):
    payletter.use_scenario("forged-callbacks")  # order_no forged-hash… / forged-amount…: a forged callback
    shop.configure(order_prefix=prefix)
    paid = payletter.approve(shop.checkout("mug").token)
    tid = paid["fields"]["tid"]

    callback = payletter.callbacks.wait(tid=tid, status="pending")  # not acknowledged: the gateway would retry
    [attempt] = callback["attempts"]
    assert attempt["http_status"] == 400 and "payhash does not match" in attempt["response_body"]
    order = shop.order(paid["fields"]["order_no"])
    assert (order["status"], order["payment"], order["fulfilments"]) == ("created", None, 0)
    assert order["notifications"] == [{"tid": tid, "accepted": 0, "reason": "payhash does not match"}]


@pytest.mark.payletter_scenario("flaky-callbacks")  # the first two attempts count as failed
def test_a_callback_delivered_three_times_is_processed_once(shop, payletter):
    paid = payletter.approve(shop.checkout("tshirt").token)
    tid = paid["fields"]["tid"]
    assert payletter.callbacks.wait(tid=tid, status="pending")["attempts_made"] == 1

    payletter.clock.advance(minutes=10)  # retries 5 and 10 minutes after the first attempt
    callback = payletter.callbacks.wait(tid=tid, status="delivered")
    assert callback["attempts_made"] == 3

    order = shop.order(paid["fields"]["order_no"])
    assert (order["status"], order["fulfilments"]) == ("paid", 1)
    assert [n["reason"] for n in order["notifications"]] == ["settled", "already settled", "already settled"]

