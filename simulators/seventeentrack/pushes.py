"""Build 17TRACK push bodies shaped like reference/17track.md §3.3 (simulator, tests, benches)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

EVENT_UPDATED = "TRACKING_UPDATED"
EVENT_STOPPED = "TRACKING_STOPPED"

# Main status → the milestone stage 17TRACK reports for it.
_STAGE = {
    "InfoReceived": "InfoReceived",
    "InTransit": "PickedUp",
    "AvailableForPickup": "AvailableForPickup",
    "OutForDelivery": "OutForDelivery",
    "Delivered": "Delivered",
}


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tracking_updated(
    number: str,
    carrier: int,
    status: str,
    sub_status: str | None,
    when: datetime,
    description: str = "",
    tag: str | None = None,
    carrier_name: str | None = None,
) -> dict[str, Any]:
    provider: dict[str, Any] = {"key": carrier, **({"name": carrier_name} if carrier_name else {})}
    event = {
        "time_iso": when.isoformat(),
        "time_utc": _utc(when),
        "description": description or f"{status} {sub_status or ''}".strip(),
        "location": None,
        "stage": _STAGE.get(status),
    }
    return {
        "event": EVENT_UPDATED,
        "data": {
            "number": number,
            "carrier": carrier,
            "param": None,
            "tag": tag,
            "track_info": {
                "latest_status": {"status": status, "sub_status": sub_status, "sub_status_descr": None},
                "latest_event": event,
                "tracking": {"providers": [{"provider": provider, "events": [event]}]},
            },
        },
    }


def tracking_stopped(number: str, carrier: int, tag: str | None = None) -> dict[str, Any]:
    return {
        "event": EVENT_STOPPED,
        "data": {"number": number, "carrier": carrier, "param": None, "tag": tag},
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
