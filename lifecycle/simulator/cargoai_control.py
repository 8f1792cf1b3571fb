"""The CargoAi simulator's control API under /_sim/ (no auth), for tests and manual runs.

- GET  /_sim/calls[?endpoint=subscribe]   every API call: at, endpoint, awb, status, billable
- GET  /_sim/billable                     {"subscriptions": n, "pull_calls": n}
- GET  /_sim/subscriptions[?awb=…]        every subscription, active or ended, with its expiry
- GET  /_sim/callbacks[?awb=…]            every callback attempt and the HTTP status it got
- GET  /_sim/tracking?awb=…               the AWB's tracking object and route kind (404: unknown)
- GET  /_sim/clock                        the simulated clock
- POST /_sim/advance                      {"steps"?: 1, "awbs"?: [...]}: advance now, call back
- POST /_sim/fail_next                    {"statuses": [500, 503]}: the next API calls answer so
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from lifecycle.simulator.cargoai_delivery import Pusher, advance
from lifecycle.simulator.cargoai_state import CargoAiState


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


def add_control_routes(app: Flask, state: CargoAiState, pusher: Pusher) -> None:
    _add_inspection_routes(app, state)

    @app.post("/_sim/advance")
    def sim_advance():  # type: ignore[no-untyped-def]
        body = _body()
        awbs = set(body["awbs"]) if body.get("awbs") else None
        queued = advance(state, pusher, int(body.get("steps", 1)), awbs)
        with state.lock:
            return jsonify(callbacks=queued, clock=state.clock.isoformat())

    @app.post("/_sim/fail_next")
    def sim_fail_next():  # type: ignore[no-untyped-def]
        with state.lock:
            state.fail_next.extend(int(s) for s in _body().get("statuses", []))
            return jsonify(fail_next=list(state.fail_next))


def _add_inspection_routes(app: Flask, state: CargoAiState) -> None:
    @app.get("/_sim/calls")
    def sim_calls():  # type: ignore[no-untyped-def]
        endpoint = request.args.get("endpoint")
        with state.lock:
            return jsonify(calls=[c for c in state.calls if endpoint in (None, c["endpoint"])])

    @app.get("/_sim/billable")
    def sim_billable():  # type: ignore[no-untyped-def]
        with state.lock:
            return jsonify(state.billable())

    @app.get("/_sim/subscriptions")
    def sim_subscriptions():  # type: ignore[no-untyped-def]
        awb = request.args.get("awb")
        with state.lock:
            subs = [s.summary() for s in state.subscriptions if awb in (None, s.awb)]
            return jsonify(subscriptions=subs)

    @app.get("/_sim/callbacks")
    def sim_callbacks():  # type: ignore[no-untyped-def]
        awb = request.args.get("awb")
        with state.lock:
            return jsonify(callbacks=[c for c in state.callbacks if awb in (None, c["awb"])])

    @app.get("/_sim/tracking")
    def sim_tracking():  # type: ignore[no-untyped-def]
        with state.lock:
            shipment = state.shipments.get(request.args.get("awb", ""))
            if shipment is None:
                return jsonify(error="unknown awb"), 404
            return jsonify(tracking=shipment.tracking(), kind=shipment.kind, finished=shipment.finished)

    @app.get("/_sim/clock")
    def sim_clock():  # type: ignore[no-untyped-def]
        with state.lock:
            return jsonify(clock=state.clock.isoformat())
