"""The bare-Flask baseline: a JSON POST answered with a small JSON, served the same way as
the emulator, so the emulator's figures can be read as ratios of what Flask alone costs."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1.0/payments/request")
def payments_request():
    body = request.get_json()
    token = 1_000_000_000_000_000 + len(body)
    return jsonify(token=token, online_url=f"{request.host_url}pgsvc/hub.asp?location=online&token={token}",
                   mobile_url=f"{request.host_url}pgsvc/hub.asp?location=mobile&token={token}")


@app.get("/_emulator/health")
def health():
    return jsonify(status="ok")
