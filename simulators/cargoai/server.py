"""A CargoAi Track & Trace simulator over real HTTP (reference/awb.md §1).

Point the service at it with CARGOAI_API_URL. It serves `POST /track/subscribe`,
`POST /track/unsubscribe` and the pull `GET /track?awb=PPP-SSSSSSSC`, at the root and under
`/solutions` (the direct API's base path), with `x-api-key` auth. AWBs move through the CargoAi
event codes on a simulated clock (direct, interline with TFD/RCT, rebooked with a second BKD,
optional FOH); subscriptions last 3 simulated weeks and get authenticated callbacks (HMAC, Bearer,
Basic or none) with optional delays and duplicates. Every call, what CargoAi would bill, and every
callback attempt are logged.

Decisions where the docs are silent: only the hyphenated `PPP-SSSSSSSC` form is accepted unless
`accept_unhyphenated`; a pull of an AWB never seen before answers 200 with a fresh route (the
real API tracks any AWB); bad input on the pull answers 400 "invalid body" like the POSTs; no
rate limit (none is documented) and no callback retries; a subscription stays active after DLV
until it expires or is unsubscribed; there is no callback at subscribe time, the next step sends
the subscription everything it has not been sent yet (so a new one gets the whole history).

Modules: `state` (options, subscriptions, clock), `paths` (routes, event objects), `delivery`
(callbacks, advancing), `control` (the /_sim/ API); `simulators.shared` holds the server wrapper,
ticker, delivery queue and control routes it shares with the 17TRACK simulator.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from flask import Flask, g, jsonify, request

from simulators.cargoai.control import add_control_routes
from simulators.cargoai.delivery import Pusher, advance, sign_callback
from simulators.cargoai.paths import AWB_PATTERN, awb_check_digit_ok
from simulators.cargoai.state import CargoAiOptions, CargoAiState
from simulators.shared import faults
from simulators.shared.common import BackgroundServer

__all__ = ["CargoAiOptions", "CargoAiSimulatorServer", "CargoAiState", "awb_check_digit_ok", "sign_callback"]

API_PREFIXES = ("", "/solutions")
SUBSCRIBED = "successfully subscribed"
LIMITED = " - This airline is not fully supported, so updates may be limited."
NO_SUBSCRIPTION = "No active subscription found for the given AWB/target"
MAX_EMAILS = 5
URL_PATTERN = re.compile(r"https?://\S+")
AIRLINE_CODE = re.compile(r"[A-Z0-9]{2}")


class InvalidBody(Exception):
    def __init__(self, error: str = "invalid body") -> None:
        super().__init__(error)
        self.error = error


def _awb(value: Any, options: CargoAiOptions) -> str:
    if isinstance(value, str) and options.accept_unhyphenated and re.fullmatch(r"\d{11}", value):
        value = f"{value[:3]}-{value[3:]}"
    if not isinstance(value, str) or not AWB_PATTERN.fullmatch(value) or not awb_check_digit_ok(value):
        raise InvalidBody()
    return value


def _url(body: dict[str, Any], error: str = "invalid body") -> str | None:
    url = body.get("url")
    if url is not None and not (isinstance(url, str) and URL_PATTERN.fullmatch(url)):
        raise InvalidBody(error)
    return url


def _emails(body: dict[str, Any]) -> list[str]:
    emails = body.get("emails") or []
    if isinstance(body.get("email"), str):  # unsubscribe's single "email", "to be deprecated"
        emails = [*emails, body["email"]] if isinstance(emails, list) else emails
    if not isinstance(emails, list) or len(emails) > MAX_EMAILS:
        raise InvalidBody()
    if not all(isinstance(e, str) and "@" in e for e in emails):
        raise InvalidBody()
    return emails


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidBody()
    return body


def _gate(state: CargoAiState):  # type: ignore[no-untyped-def]
    """Log the call, wait out the injected latency, then injected faults, then auth."""
    body = request.get_json(force=True, silent=True) if request.method == "POST" else None
    awb = body.get("awb") if isinstance(body, dict) else request.args.get("awb")
    g.call = {
        "at": time.time(),
        "endpoint": request.path.rsplit("/", 1)[-1],
        "awb": awb if isinstance(awb, str) else None,
        "status": None,
        "billable": False,
    }
    if state.options.latency_seconds:
        time.sleep(state.options.latency_seconds)  # never under the lock
    with state.lock:
        state.calls.append(g.call)
        fault = state.fail_next.pop(0) if state.fail_next else None
    if isinstance(fault, int):
        error = "internal server error" if fault == 500 else "injected fault"
        return jsonify(status=fault, error=error), fault
    if fault is not None and faults.hold_or_drop(fault, request, state.options.timeout_fault_seconds):
        return "", 500  # written to nowhere: the connection is gone
    if not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), state.api_key.encode()):
        return jsonify(status=401, error="unauthorized"), 401
    return None


def _api_views(state: CargoAiState) -> dict[str, tuple[str, Any]]:
    options = state.options

    def subscribe():  # type: ignore[no-untyped-def]
        body = _json_body()
        awb, url, emails = _awb(body.get("awb"), options), _url(body), _emails(body)
        code = body.get("airlineCode")
        if code is not None and not (isinstance(code, str) and AIRLINE_CODE.fullmatch(code)):
            raise InvalidBody()
        if url is None and not emails:
            raise InvalidBody()  # "you can specify an API URL … or emails addresses …, or both"
        with state.lock:
            state.subscribe(awb, url, emails, code)
        limited = awb[:3] in options.limited_prefixes
        return jsonify(status=200, message=SUBSCRIBED + (LIMITED if limited else ""))

    def unsubscribe():  # type: ignore[no-untyped-def]
        body = _json_body()
        awb, url, emails = _awb(body.get("awb"), options), _url(body, "invalid url format"), _emails(body)
        with state.lock:
            touched = state.unsubscribe(awb, url, emails)
        if not touched:
            return jsonify(status=404, error=NO_SUBSCRIPTION), 404
        return jsonify(status=200, message="successfully unsubscribed")

    def track():  # type: ignore[no-untyped-def]
        awb = _awb(request.args.get("awb"), options)
        with state.lock:
            return jsonify(state.shipment(awb).tracking())

    return {
        "track/subscribe": ("POST", subscribe),
        "track/unsubscribe": ("POST", unsubscribe),
        "track": ("GET", track),
    }


def create_simulator(state: CargoAiState, pusher: Pusher) -> Flask:
    app = Flask("simcargoai")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep CargoAi's field order

    @app.before_request
    def gate():  # type: ignore[no-untyped-def]
        return _gate(state) if (request.endpoint or "").startswith("api:") else None

    @app.after_request
    def log_status(response):  # type: ignore[no-untyped-def]
        if "call" in g:
            with state.lock:  # readers copy the call log under the lock
                g.call["status"] = response.status_code
                # CargoAi bills each subscription made (repeats too) and each pull answered.
                g.call["billable"] = response.status_code == 200 and g.call["endpoint"] != "unsubscribe"
        return response

    @app.errorhandler(InvalidBody)
    def invalid(error: InvalidBody):  # type: ignore[no-untyped-def]
        return jsonify(status=400, error=error.error), 400

    for prefix in API_PREFIXES:
        for path, (method, view) in _api_views(state).items():
            app.add_url_rule(f"{prefix}/{path}", f"api:{prefix}/{path}", view, methods=[method])
    add_control_routes(app, state, pusher)
    return app


class CargoAiSimulatorServer(BackgroundServer):
    """The simulator on a real port, in background threads; use it as a context manager.

    Options are the fields of `CargoAiOptions` (step_seconds, step_hours, interline_rate,
    rebook_rate, foh_rate, callback_auth, bearer_token, basic_user, basic_password,
    duplicate_rate, delay_seconds, latency_seconds, limited_prefixes, ...).
    """

    pusher: Pusher

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.state = CargoAiState(api_key, CargoAiOptions(**options))
        pusher = Pusher(self.state)
        tick = partial(advance, self.state, pusher)  # every shipment, each step_seconds of wall time
        app = create_simulator(self.state, pusher)
        super().__init__(app, pusher, tick, self.state.options.step_seconds, host, port, "simcargoai")

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(c) for c in self.state.calls if endpoint in (None, c["endpoint"])]

    def subscriptions(self, awb: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [s.summary() for s in self.state.subscriptions if awb in (None, s.awb)]

    def callbacks(self, awb: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(c) for c in self.state.callbacks if awb in (None, c["awb"])]

    def billable(self) -> dict[str, int]:
        with self.state.lock:
            return self.state.billable()

    def events(self, awb: str) -> list[dict[str, Any]]:
        """The AWB's events so far; [] for an AWB nobody has subscribed to or pulled."""
        with self.state.lock:
            shipment = self.state.shipments.get(awb)
            return list(shipment.events) if shipment else []

    def advance(self, steps: int = 1, awbs: Iterable[str] | None = None) -> int:
        """Move the simulated clock `steps` times now (only those AWBs' shipments move, the clock
        and subscription expiry always do); returns the callbacks queued."""
        return advance(self.state, self.pusher, steps, None if awbs is None else set(awbs))

    def fail_next(self, *statuses: int | str) -> None:
        """The next API calls get these faults, one each (HTTP statuses, "timeout", "reset")."""
        with self.state.lock:
            self.state.fail_next.extend(faults.parse(status) for status in statuses)

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        """Wait until no callback is queued (delays included) or in flight; False on timeout."""
        return self.pusher.wait_idle(timeout)
