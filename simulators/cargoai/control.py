"""The CargoAi simulator's control API under /_sim/ (no auth), for tests and manual runs.

- GET  /_sim/calls[?endpoint=subscribe]   every API call: at, endpoint, awb, status, billable
- GET  /_sim/billable                     {"subscriptions": n, "pull_calls": n}
- GET  /_sim/subscriptions[?awb=…]        every subscription, active or ended, with its expiry
- GET  /_sim/callbacks[?awb=…]            every callback attempt and the HTTP status it got
- GET  /_sim/tracking?awb=…               the AWB's tracking object and route kind (404: unknown)
- GET  /_sim/clock                        the simulated clock
- POST /_sim/advance                      {"steps"?: 1, "awbs"?: [...]}: advance now, call back
- POST /_sim/fail_next                    {"statuses": [500, "timeout", "reset"]}: next calls' faults
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from simulators.cargoai.delivery import Pusher, advance
from simulators.cargoai.state import CargoAiState
from simulators.shared.common import add_common_control_routes, add_log_route


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


def add_control_routes(app: Flask, state: CargoAiState, pusher: Pusher) -> None:
    add_common_control_routes(app, state, _body)
    _add_inspection_routes(app, state)

    @app.post("/_sim/advance")
    def sim_advance():  # type: ignore[no-untyped-def]
        body = _body()
        awbs = set(body["awbs"]) if body.get("awbs") else None
        queued = advance(state, pusher, int(body.get("steps", 1)), awbs)
        with state.lock:
            return jsonify(callbacks=queued, clock=state.clock.isoformat())


def _add_inspection_routes(app: Flask, state: CargoAiState) -> None:
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

    add_log_route(app, state, "callbacks", "awb", lambda: state.callbacks)

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
