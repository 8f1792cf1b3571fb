"""The JSON API (token auth): list and read shipments, register numbers, lifecycle commands."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, jsonify, request
from sqlalchemy import select

from lifecycle import runtime
from lifecycle.api.tokens import authenticate
from lifecycle.extensions import db
from lifecycle.providers import registry
from lifecycle.providers.numbers import normalise
from lifecycle.providers.seventeentrack import commands
from lifecycle.shipments import queries
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.registration import register
from lifecycle.web import api_input

bp = Blueprint("api", __name__, url_prefix="/api")
PAGE_SIZE = 100


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        with db.new_session() as session, session.begin():
            if not token or authenticate(session, token) is None:
                abort(401, "a valid 'Authorization: Bearer <token>' is required (manage.py create-token)")
        return view(*args, **kwargs)

    return wrapped


@bp.get("/shipments")
@token_required
def list_shipments():  # type: ignore[no-untyped-def]
    args = request.args
    limit = api_input.int_arg(args, "limit", PAGE_SIZE, 1, api_input.MAX_PAGE) or PAGE_SIZE
    with db.new_session() as session:
        rows = queries.list_shipments(
            session,
            provider=api_input.text_arg(args.get("provider"), "provider"),
            status=api_input.text_arg(args.get("status"), "status"),
            tracking=api_input.text_arg(args.get("tracking"), "tracking"),
            prefix=api_input.text_arg(args.get("q"), "q"),
            stale_days=api_input.stale_days(args),
            after_id=api_input.after_id(args.get("cursor")),
            limit=limit,
        )
        items = [queries.shipment_json(s) for s in rows]
    next_cursor = api_input.encode_cursor(rows[-1].id) if rows and len(rows) == limit else None
    return jsonify(shipments=items, next_cursor=next_cursor)


@bp.get("/shipments/<provider>/<number>")
@token_required
def show_shipment(provider: str, number: str):  # type: ignore[no-untyped-def]
    api_input.text_arg(provider, "provider")
    number = normalise(provider, api_input.text_arg(number, "number") or "")
    stmt = select(Shipment).where(Shipment.provider == provider, Shipment.number == number)
    carrier = api_input.int_arg(request.args, "carrier", None, 0, api_input.MAX_CARRIER)
    if carrier:
        stmt = stmt.where(Shipment.carrier == carrier)
    with db.new_session() as session:
        found = list(session.scalars(stmt))
        if not found:
            abort(404, f"no {provider} shipment {number}")
        result = [
            {
                **queries.shipment_json(s),
                "transitions": [queries.transition_json(t) for t in queries.history(session, s.id)],
                "operations": queries.operations(session, s.id),
                "ledger": queries.ledger_entries(session, s.id),
            }
            for s in found
        ]
    return jsonify(shipment=result[0], others=result[1:])


@bp.post("/shipments")
@token_required
def register_shipments():  # type: ignore[no-untyped-def]
    body = api_input.json_body()
    if not isinstance(body, dict):
        abort(400, "JSON object expected")
    requested = api_input.registrations(body)  # 400 for wrong types, the provider's included
    provider = body.get("provider")
    if provider is not None and registry.find(provider) is None:
        known = " or ".join(registry.names())
        abort(422, f"provider {provider[:40]!r} is not supported ({known})")
    with db.new_session() as session, session.begin():
        outcomes = register(session, requested, runtime.settings())
    if any(o.ok for o in outcomes):
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return jsonify(results=[o.as_json() for o in outcomes]), 202


_ACTIONS: dict[str, Callable[..., Any]] = {
    "stop": lambda s, n, c, b: commands.stop(s, n, c),
    "retrack": lambda s, n, c, b: commands.retrack(s, n, c),
    "sync": lambda s, n, c, b: commands.sync(s, n, c),
    # `to` as in the CLI's `change-carrier --to`; `carrier_new` (17TRACK's own name) keeps working.
    "change-carrier": lambda s, n, c, b: commands.change_carrier(
        s, n, int(b.get("to", b.get("carrier_new"))), c
    ),
    "changeinfo": lambda s, n, c, b: commands.change_info(
        s, n, tag=b.get("tag"), lang=b.get("lang"), carrier=c
    ),
    "delete": lambda s, n, c, b: commands.delete(s, n, c) if b.get("confirm") is True else _refuse_delete(),
}


def _refuse_delete() -> Any:
    raise commands.CommandRefused(f'{commands.DELETE_WARNING}; send {{"confirm": true}} to delete')


@bp.post("/shipments/<provider>/<number>/<action>")
@token_required
def lifecycle_action(provider: str, number: str, action: str):  # type: ignore[no-untyped-def]
    if provider != "17track":
        abort(404, f"no lifecycle commands for provider {provider!r} yet")
    if action not in _ACTIONS:
        abort(404, f"unknown action {action!r}; one of {', '.join(_ACTIONS)}")
    api_input.text_arg(number, "number")
    body = api_input.action_body()
    if action == "change-carrier" and body.get("to", body.get("carrier_new")) is None:
        abort(400, 'give the new carrier: {"to": 21051}')
    try:
        with db.new_session() as session, session.begin():
            outcome = _ACTIONS[action](session, number, body.get("carrier"), body)
    except (commands.CommandRefused, ValueError, KeyError) as exc:
        return jsonify(error="refused", message=str(exc)), 409
    runtime.signal(runtime.FLUSH_OPERATIONS)
    return jsonify(outcome.as_json()), 202


@bp.get("/quota")
@token_required
def quota():  # type: ignore[no-untyped-def]
    """The accountant's report, as `manage.py quota --json`."""
    from lifecycle.accounting.reports import quota_report
    from lifecycle.db import utcnow

    period = api_input.period(request.args)
    with db.read_session() as session:
        return jsonify(quota_report(session, runtime.accounts_in_force(), utcnow(), period))
