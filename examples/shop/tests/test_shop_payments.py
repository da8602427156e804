"""Paying: the buyer goes to the payment page, pays (the control API plays the payer), comes
back; the gateway calls the shop back. Both are verified, and the order is fulfilled once."""
import json

import requests


def test_a_card_payment_is_verified_on_return_and_on_callback(shop, payletter):
    page = shop.checkout("mug")  # the shop sends the buyer to the payment page
    assert page.online_url.startswith(payletter.url + "/pgsvc/hub.asp")
    assert requests.get(page.online_url).status_code == 200

    paid = payletter.approve(page.token)  # the buyer pays there
    order_no, tid = paid["fields"]["order_no"], paid["fields"]["tid"]
    callback = payletter.callbacks.wait(tid=tid, status="delivered")  # the shop acknowledged it
    assert json.loads(callback["attempts"][0]["response_body"]) == {"code": 0, "message": "success"}

    back = shop.come_back(paid)  # the buyer's browser returns to the shop
    assert back.status_code == 200 and f"Order {order_no} is paid." in back.text

    order = shop.order(order_no)
    assert (order["status"], order["amount"], order["fulfilments"]) == ("paid", 12000, 1)
    assert order["payment"] == {"tid": tid, "order_no": order_no, "pgcode": "creditcard", "amount": 12000,
                                "confirmed_by": "callback"}
    assert payletter.payment(tid)["status"] == "approved"


def test_a_declined_payment_leaves_the_order_unpaid(shop, payletter):
    declined = payletter.decline(shop.checkout("tshirt").token, code="6002", message="잔액이 부족합니다.")
    page = shop.come_back(declined)
    assert "The payment failed" in page.text and "잔액이 부족합니다." in page.text
    order = shop.order(declined["fields"]["order_no"])
    assert (order["status"], order["payment"], order["fulfilments"]) == ("failed", None, 0)
    assert payletter.callbacks.list() == []  # no callback for a failed payment


def test_a_virtual_account_is_paid_when_the_deposit_arrives(shop, payletter):
    issued = payletter.approve(shop.checkout("mug", pgcode="virtualaccount").token)
    page = shop.come_back(issued)
    assert "Please deposit" in page.text and issued["fields"]["account_no"] in page.text
    order_no, tid = issued["fields"]["order_no"], issued["fields"]["tid"]
    assert shop.order(order_no)["status"] == "awaiting_deposit"

    payletter.clock.advance(hours=2)  # the payer takes their time
    payletter.deposit(tid)
    payletter.callbacks.wait(tid=tid, status="delivered")
    order = shop.order(order_no)
    assert (order["status"], order["payment"]["confirmed_by"], order["fulfilments"]) == ("paid", "callback", 1)
