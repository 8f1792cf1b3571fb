"""The read endpoints: gettrackinfo, gettracklist, getquota (reference/17track.md §2.2, §2.6, §2.7).

Reading costs no quota. All functions run with `SimState.lock` held by the caller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simulators.seventeentrack import carriers, codes, registry, scripts, trackinfo
from simulators.seventeentrack.codes import RequestError
from simulators.seventeentrack.state import Parcel, SimState

PAGE_SIZE = 40
MAX_LIST_NUMBERS = 200
_ORDERS = {
    "RegisterTimeAsc": (lambda p: p.register_time.timestamp(), False),
    "RegisterTimeDesc": (lambda p: p.register_time.timestamp(), True),
    "TrackTimeAsc": (lambda p: p.track_time.timestamp() if p.track_time else 0.0, False),
    "TrackTimeDesc": (lambda p: p.track_time.timestamp() if p.track_time else 0.0, True),
    "PushTimeAsc": (lambda p: p.push_time.timestamp() if p.push_time else 0.0, False),
    "PushTimeDesc": (lambda p: p.push_time.timestamp() if p.push_time else 0.0, True),
}


def gettrackinfo(state: SimState, item: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Every registration of the number (or the one named by its carrier)."""
    return [trackinfo.tracked_item(parcel, now) for parcel in registry.find_all(state, item)]


def _first_time(parcel: Parcel, step: scripts.Step) -> datetime | None:
    pairs = zip(parcel.steps, parcel.event_times, strict=False)
    return next((when for s, when in pairs if s is step), None)


def _event_fields(parcel: Parcel, now: datetime) -> dict[str, Any]:
    latest = trackinfo.events(parcel)[:1]
    metrics = trackinfo.time_metrics(parcel, now)
    return {
        "latest_event_time": latest[0]["time_iso"] if latest else None,
        "latest_event_info": latest[0]["description"] if latest else None,
        **{name: value for name, value in metrics.items() if name.startswith("days_")},
        "delievery_time": trackinfo.utc_text(_first_time(parcel, scripts.DELIVERED)),
        "pickup_time": trackinfo.utc_text(_first_time(parcel, scripts.PICKED_UP)) or "",
    }


def list_item(parcel: Parcel, now: datetime) -> dict[str, Any]:
    """One `gettracklist` entry, with the fields of the doc example (its typo `delievery_time` too)."""
    info = parcel.info
    return {
        "number": parcel.number,
        "param": parcel.param,
        "param_type": "None",
        "data_origin": "Api",
        "carrier": parcel.carrier,
        "shipping_country": carriers.carrier_of(parcel.carrier).country,
        "final_carrier": parcel.final_carrier,
        "recipient_country": parcel.destination,
        "register_time": trackinfo.utc_text(parcel.register_time),
        "tracking_status": parcel.tracking,
        "package_status": (parcel.latest_step or scripts.NOT_FOUND).status,
        "track_time": trackinfo.utc_text(parcel.track_time),
        "push_time": trackinfo.utc_text(parcel.push_time),
        "push_status": parcel.push_status,
        "push_status_code": parcel.push_status_code,
        "stop_track_time": trackinfo.utc_text(parcel.stop_time),
        "stop_track_reason": parcel.stop_reason,
        "is_retracked": parcel.retracked,
        "carrier_change_count": parcel.carrier_changes,
        "tag": parcel.tag,
        "email": info.get("email") or "",
        "order_no": info.get("order_no"),
        "order_time": info.get("order_time"),
        "lang": parcel.lang or "",
        "remark": info.get("remark"),
        **_event_fields(parcel, now),
    }


def _time_filter(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value in (None, ""):
        return None
    parsed = _iso_time(value)
    if parsed is None:
        raise RequestError(codes.BAD_FIELD_VALUE, value, name)
    return parsed


def _iso_time(value: Any) -> datetime | None:
    """An ISO-8601 time as aware UTC (no offset means UTC); None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 shifted out of range
        return None


def _filters(body: dict[str, Any]) -> list[Any]:
    """Predicates for the filters gettracklist takes (reference §2.6); unknown ones are ignored."""
    predicates: list[Any] = []
    numbers = [n.strip() for n in str(body.get("number") or "").split(",") if n.strip()]
    if len(numbers) > MAX_LIST_NUMBERS:
        raise RequestError(codes.BAD_FIELD_VALUE, body["number"], "number")
    if numbers:
        predicates.append(lambda p, wanted=frozenset(numbers): p.number in wanted)
    if body.get("carrier"):
        predicates.append(lambda p, c=body["carrier"]: p.carrier == c)
    if body.get("tracking_status"):
        predicates.append(lambda p, s=body["tracking_status"]: p.tracking == s)
    if body.get("package_status"):
        wanted_status = body["package_status"]
        predicates.append(lambda p: (p.latest_step or scripts.NOT_FOUND).status == wanted_status)
    since, until = _time_filter(body, "register_time_from"), _time_filter(body, "register_time_to")
    if since:
        predicates.append(lambda p: p.register_time >= since)
    if until:
        predicates.append(lambda p: p.register_time <= until)
    return predicates


def _page_no(body: dict[str, Any]) -> int:
    page_no = body.get("page_no", 1)
    if isinstance(page_no, bool) or not isinstance(page_no, int) or page_no < 1:
        raise RequestError(codes.BAD_FIELD_VALUE, page_no, "page_no")
    return page_no


def gettracklist(state: SimState, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The whole response: a page of 40 and, unlike every other endpoint, a top-level `page`."""
    predicates = _filters(body)
    page_no = _page_no(body)
    order = body.get("order_by") or "RegisterTimeAsc"
    if order not in _ORDERS:
        raise RequestError(codes.BAD_FIELD_VALUE, order, "order_by")
    sort_key, descending = _ORDERS[order]
    matching = [p for p in state.parcels.values() if all(test(p) for test in predicates)]
    matching.sort(key=sort_key, reverse=descending)
    page = matching[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    total = len(matching)
    return {
        "page": {
            "data_total": total,
            "page_total": -(-total // PAGE_SIZE),
            "page_no": page_no,
            "page_size": PAGE_SIZE,
        },
        "code": 0,
        "data": {"accepted": [list_item(p, now) for p in page], "rejected": []},
    }


def getquota(state: SimState, now: datetime) -> dict[str, Any]:
    return {"code": 0, "data": state.quota.as_json(now)}
