"""An example shop that takes payments through Payletter: the integration a merchant needs,
done the careful way (verify every payhash, answer the callback, process each tid once).

    PAYLETTER_API_URL=http://127.0.0.1:8080 flask --app shop run --port 5000
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace

from flask import Flask, abort, current_app, jsonify, redirect, render_template_string, request, url_for

from .gateway import Gateway, GatewayRefused
from .orders import Orders

PRODUCTS = {"mug": ("Payletter mug", 12000), "tshirt": ("Emulator T-shirt", 25000)}
METHODS = {"creditcard": "Card", "banktransfer": "Bank transfer", "virtualaccount": "Virtual account"}
ACK = {"code": 0, "message": "success"}  # the only answer the gateway takes as "received"


@dataclass(frozen=True)
class Config:
    """Everything the shop needs to know, from the environment by default."""

    payletter_url: str = "https://testpgapi.payletter.com"  # the emulator: http://127.0.0.1:8080
    client_id: str = "pay_test"
    payment_key: str = "MTFBNTAzNTEwNDAxQUIyMjlCQzgwNTg1MkU4MkZENDA="
    search_key: str = "MUI3MjM0RUExQTgyRDA1ODZGRDUyOEM4OTY2QTVCN0Y="
    public_url: str = "http://127.0.0.1:5000"  # where the gateway sends the payer back and calls back
    database: str = "shop.db"
    order_prefix: str = "order-"  # e.g. one per environment, so order numbers never collide

    @classmethod
    def from_env(cls, environ=os.environ) -> "Config":
        names = {"payletter_url": "PAYLETTER_API_URL", "client_id": "PAYLETTER_CLIENT_ID",
                 "payment_key": "PAYLETTER_PAYMENT_KEY", "search_key": "PAYLETTER_SEARCH_KEY",
                 "public_url": "SHOP_PUBLIC_URL", "database": "SHOP_DATABASE", "order_prefix": "SHOP_ORDER_PREFIX"}
        return cls(**{field: environ[name] for field, name in names.items() if environ.get(name)})

    @property
    def gateway(self) -> Gateway:
        return Gateway(self.payletter_url, self.client_id, self.payment_key, self.search_key)


def create_app(config: Config | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SHOP"] = config or Config.from_env()
    app.extensions["orders"] = Orders(app.config["SHOP"].database)
    _routes(app)
    return app


def configure(app: Flask, **changes) -> None:
    """Change settings of a running shop (tests do: another order prefix)."""
    app.config["SHOP"] = replace(app.config["SHOP"], **changes)


def _config() -> Config:
    return current_app.config["SHOP"]


def _orders() -> Orders:
    return current_app.extensions["orders"]


PAGE = """<!doctype html><meta charset="utf-8"><title>Example shop</title>
<h1>{{ title }}</h1>{% if text %}<p data-testid="message">{{ text }}</p>{% endif %}
{% if products %}<form method="post" action="{{ url_for('checkout') }}">
  {% for key, (name, price) in products.items() %}
  <label><input type="radio" name="product" value="{{ key }}" {% if loop.first %}checked{% endif %}>
    {{ name }}: {{ "{:,}".format(price) }} KRW</label><br>{% endfor %}
  <select name="pgcode">{% for code, name in methods.items() %}<option value="{{ code }}">{{ name }}</option>{% endfor %}</select>
  <button>Pay</button></form>{% endif %}
"""


def _page(title: str, text: str = "", status: int = 200, products=None):
    return render_template_string(PAGE, title=title, text=text, products=products, methods=METHODS), status


def _routes(app: Flask) -> None:
    @app.get("/")
    def home():
        return _page("Example shop", products=PRODUCTS)

    @app.post("/checkout")
    def checkout():
        """Create the order, ask the gateway for a payment, send the buyer to its page."""
        product = request.form.get("product", "")
        pgcode = request.form.get("pgcode", "creditcard")
        if product not in PRODUCTS or pgcode not in METHODS:
            abort(400)
        config, (name, price) = _config(), PRODUCTS[product]
        order_no = f"{config.order_prefix}{secrets.token_hex(6)}"
        user_id = request.form.get("customer") or "guest"
        _orders().create(order_no, product, price, pgcode, user_id)
        try:
            payment = config.gateway.request_payment(
                pgcode=pgcode, user_id=user_id, amount=price, product_name=name, order_no=order_no,
                return_url=config.public_url + url_for("payment_return"),
                callback_url=config.public_url + url_for("payment_callback"),
                cancel_url=config.public_url + url_for("home"))
        except GatewayRefused as exc:
            _orders().set(order_no, status="failed", failure=str(exc))
            return _page("The payment could not start", exc.message, 502)
        _orders().set(order_no, token=str(payment["token"]))
        return redirect(payment["online_url"], 303)

    @app.post("/payment/return")
    def payment_return():
        """The buyer's browser comes back from the payment page with the result (a form POST).
        It passed through the buyer's hands: trust it only once its payhash checks out."""
        fields = request.form.to_dict()
        order = _orders().get(fields.get("order_no", ""))
        if order is None:
            return _page("Unknown order", status=404)
        if fields.get("code") != "0":
            _orders().set(order["order_no"], status="failed", failure=f"{fields.get('code')}: {fields.get('message')}")
            return _page("The payment failed", fields.get("message", ""))
        if "account_no" in fields and not fields.get("payhash"):  # a virtual account was issued
            _orders().set(order["order_no"], status="awaiting_deposit")
            return _page("Please deposit", f"{order['amount']:,} KRW to account {fields['account_no']} "
                                           f"(bank {fields.get('bank_code')}) by {fields.get('expire_date')}")
        problem = _check(fields, order)
        if problem:
            return _page("The payment could not be verified", problem, 400)
        _orders().settle(order["order_no"], fields["tid"], fields["pgcode"], int(fields["amount"]), "return")
        return _page("Thank you", f"Order {order['order_no']} is paid.")

    @app.post("/payment/callback")
    def payment_callback():
        """The gateway's server-to-server notification (JSON). Verify, record once, acknowledge.
        Anything but 200 with code 0 makes the gateway try again (every 5 minutes, 20 times)."""
        body = request.get_json(silent=True) or {}
        order = _orders().get(str(body.get("order_no", "")))
        problem = "unknown order" if order is None else _check(body, order)
        if problem:
            _orders().note(body.get("tid"), order and order["order_no"], False, problem)
            current_app.logger.warning("refused a callback for %s: %s", body.get("order_no"), problem)
            return jsonify(code=1, message=problem), 400
        first = _orders().settle(order["order_no"], body["tid"], body["pgcode"], int(body["amount"]), "callback")
        _orders().note(body["tid"], order["order_no"], True, "settled" if first else "already settled")
        return jsonify(ACK)

    @app.get("/orders/<order_no>")
    def order_view(order_no):
        order = _orders().get(order_no)
        return jsonify(order) if order else (jsonify(error="unknown order"), 404)

    # In a real shop this is a back-office action, behind a login.
    @app.post("/orders/<order_no>/cancel")
    def cancel(order_no):
        """Cancel the whole payment, or `amount` of it (a partial cancel)."""
        order = _orders().get(order_no)
        if order is None or order["payment"] is None:
            return jsonify(error="nothing paid to cancel"), 404
        payment = order["payment"]
        left = payment["amount"] - sum(c["amount"] for c in order["cancellations"])
        amount = int(request.form.get("amount") or left)
        gateway = _config().gateway
        call = gateway.cancel if amount == left else gateway.cancel_partial
        try:
            done = call(pgcode=payment["pgcode"], user_id=order["user_id"], tid=payment["tid"], amount=amount,
                        ip_addr=request.remote_addr or "127.0.0.1")
        except GatewayRefused as exc:
            return jsonify(error=exc.message, code=exc.code), 409
        _orders().add_cancellation(order_no, payment["tid"], done["amount"], done["cancel_date"])
        return jsonify(_orders().get(order_no))


def _check(fields: dict, order: dict) -> str:
    """Why a return POST or a callback cannot be trusted for `order`; empty when it can."""
    if not _config().gateway.genuine(fields):
        return "payhash does not match"
    if str(fields.get("amount")) != str(order["amount"]):
        return f"amount {fields.get('amount')} is not the order's {order['amount']}"
    if fields.get("user_id") != order["user_id"]:
        return "user_id is not the order's"
    return ""
