"""A parcel's `track_info`, shaped like the v2.2 sample in reference/17track.md §3.3.

The same item answers `gettrackinfo` and is the `data` of a TRACKING_UPDATED push (§3.2).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from simulators.seventeentrack import carriers, pushes, scripts
from simulators.seventeentrack.state import Parcel

MILESTONES = (
    "InfoReceived",
    "PickedUp",
    "Departure",
    "Arrival",
    "AvailableForPickup",
    "OutForDelivery",
    "Delivered",
    "Returning",
    "Returned",
)


def utc_text(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _signed_hash(text: str) -> int:
    # 17TRACK's hashes are signed 32-bit ints; a CRC of the content changes exactly when it does.
    value = zlib.crc32(text.encode())
    return value - 2**32 if value >= 2**31 else value


def _address(country: str | None, city: str | None = None) -> dict[str, Any]:
    return {
        "country": country,
        "state": None,
        "city": city,
        "street": None,
        "postal_code": None,
        "coordinates": {"longitude": None, "latitude": None},
    }


def _country_code(parcel: Parcel, step: scripts.Step) -> str:
    return carriers.carrier_of(parcel.carrier).country if step.at_origin else parcel.destination


def _event(parcel: Parcel, step: scripts.Step, when: datetime) -> dict[str, Any]:
    code = _country_code(parcel, step)
    country = carriers.COUNTRIES.get(code, carriers.COUNTRIES["CN"])
    local = when.astimezone(timezone(timedelta(hours=country.utc_offset_hours)))
    return {
        "time_iso": local.isoformat(),  # the carrier-local offset, as 17TRACK reports it
        "time_utc": utc_text(when),
        "description": step.description,
        "location": f"{country.city}, {country.name}",
        "stage": step.stage,
        "address": _address(code, country.city),
    }


def events(parcel: Parcel) -> list[dict[str, Any]]:
    """The provider's events, newest first."""
    pairs = zip(parcel.steps, parcel.event_times, strict=False)
    return [_event(parcel, step, when) for step, when in pairs][::-1]


def _milestones(parcel: Parcel, newest_first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reached: dict[str, dict[str, Any]] = {}
    for event in reversed(newest_first):  # the first time each stage was reached
        if event["stage"] and event["stage"] not in reached:
            reached[event["stage"]] = event
    return [
        {
            "key_stage": stage,
            "time_iso": reached.get(stage, {}).get("time_iso"),
            "time_utc": reached.get(stage, {}).get("time_utc"),
        }
        for stage in MILESTONES
    ]


def time_metrics(parcel: Parcel, now: datetime) -> dict[str, Any]:
    times = parcel.event_times
    delivered = parcel.latest_step is scripts.DELIVERED
    first, last = (times[0], times[-1]) if times else (None, None)
    picked = next((t for s, t in zip(parcel.steps, times, strict=False) if s is scripts.PICKED_UP), first)
    transit = (last - picked).days if last and picked else 0
    return {
        "days_after_order": (last - first).days if first and last else 0,
        "days_of_transit": transit,
        "days_of_transit_done": transit if delivered else 0,
        # Simulated event times may lie ahead of the wall clock: never report negative days.
        "days_after_last_update": max(0, (now - last).days) if last else None,
        "estimated_delivery_date": {"source": None, "from": None, "to": None},
    }


def _provider(parcel: Parcel, newest_first: list[dict[str, Any]]) -> dict[str, Any]:
    carrier = carriers.carrier_of(parcel.carrier)
    return {
        "provider": {
            "key": carrier.key,
            "name": carrier.name,
            "alias": carrier.name,
            "tel": None,
            "homepage": carrier.homepage,
            "country": carrier.country,
        },
        "service_type": None,
        "latest_sync_status": "Success",
        "latest_sync_time": utc_text(parcel.track_time),
        "events_hash": _signed_hash(repr([(e["time_utc"], e["description"]) for e in newest_first])),
        "events": newest_first,
    }


def _misc_info() -> dict[str, Any]:
    return {
        "risk_factor": 0,
        "service_type": None,
        "weight_raw": None,
        "weight_kg": None,
        "pieces": None,
        "dimensions": None,
        "customer_number": None,
        "reference_number": None,
        "local_number": None,
        "local_provider": None,
        "local_key": 0,
    }


def track_info(parcel: Parcel, now: datetime) -> dict[str, Any]:
    newest_first = events(parcel)
    step = parcel.latest_step or scripts.NOT_FOUND
    return {
        "shipping_info": {
            "shipper_address": _address(carriers.carrier_of(parcel.carrier).country),
            "recipient_address": _address(parcel.destination),
        },
        "latest_status": {"status": step.status, "sub_status": step.sub_status, "sub_status_descr": None},
        "latest_event": newest_first[0] if newest_first else None,
        "time_metrics": time_metrics(parcel, now),
        "milestone": _milestones(parcel, newest_first),
        "misc_info": _misc_info(),
        "tracking": {
            "providers_hash": _signed_hash(str(parcel.carrier)),
            "providers": [_provider(parcel, newest_first)],
        },
    }


def tracked_item(parcel: Parcel, now: datetime) -> dict[str, Any]:
    """A `gettrackinfo` accepted item; also the `data` of a TRACKING_UPDATED push."""
    return {
        "number": parcel.number,
        "carrier": parcel.carrier,
        "param": parcel.param,
        "tag": parcel.tag,
        "track_info": track_info(parcel, now),
    }


def updated_payload(parcel: Parcel, now: datetime) -> dict[str, Any]:
    return {"event": pushes.EVENT_UPDATED, "data": tracked_item(parcel, now)}


def stopped_payload(parcel: Parcel) -> dict[str, Any]:
    return pushes.tracking_stopped(parcel.number, parcel.carrier, parcel.tag)
