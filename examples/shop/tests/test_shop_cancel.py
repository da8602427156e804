"""Cancelling from the back office: part of a payment, then the rest; and too late."""

def paid_order(shop, payletter) -> dict:
    paid = payletter.approve(shop.checkout("tshirt").token)
    payletter.callbacks.wait(tid=paid["fields"]["tid"], status="delivered")
    return shop.order(paid["fields"]["order_no"])


def test_a_partial_cancel_then_the_rest(shop, payletter):
    order = paid_order(shop, payletter)
    partial = shop.cancel(order["order_no"], amount=5000)
    assert partial.status_code == 200 and partial.json()["status"] == "partially_cancelled"
    rest = shop.cancel(order["order_no"])  # whatever is left: 20,000 KRW
    assert rest.json()["status"] == "cancelled"
    assert [c["amount"] for c in rest.json()["cancellations"]] == [5000, 20000]
    # The gateway's side agrees.
    assert [c["amount"] for c in payletter.payment(order["payment"]["tid"])["cancellations"]] == [5000, 20000]


def test_a_card_payment_cannot_be_cancelled_after_180_days(shop, payletter):
    order = paid_order(shop, payletter)
    payletter.clock.advance(days=181)
    refused = shop.cancel(order["order_no"])
    assert refused.status_code == 409 and refused.json()["code"] == 4006
    assert shop.order(order["order_no"])["status"] == "paid"
