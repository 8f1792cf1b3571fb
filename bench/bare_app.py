"""The baseline for bench/webhook_ack.py: Flask doing nothing but reading the body and answering."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/17track")
def webhook():  # type: ignore[no-untyped-def]
    request.get_data(cache=False)  # read the body, as the real endpoint must
    return jsonify(ok=True), 200


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify(status="ok"), 200
