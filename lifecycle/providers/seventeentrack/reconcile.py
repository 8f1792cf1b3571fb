"""Compare 17TRACK's list of numbers (gettracklist) with ours, and find silent shipments.

Orphans (tracked there, unknown here) spend quota nobody watches; numbers only here were never
registered or were purged by 17TRACK (90 days after stopping); state mismatches mean lost pushes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.providers.seventeentrack.client import SeventeenTrackClient
from lifecycle.providers.seventeentrack.commands import queue
from lifecycle.providers.seventeentrack.kinds import registration_key
from lifecycle.shipments.models import Shipment

PROVIDER = "17track"
# What our tracking state should look like at 17TRACK.
_EXPECTED = {"tracking": "Tracking", "stopping": "Tracking", "stopped": "Stopped"}


@dataclass
class TrackListPage:
    """One page of gettracklist: (number, carrier) → tracking_status, and where the list ends."""

    numbers: dict[tuple[str, int], str]
    page_total: int
    data_total: int


def tracklist_page(client: SeventeenTrackClient, page_no: int, order_by: str | None = None) -> TrackListPage:
    body: dict[str, Any] = {"page_no": page_no} | ({"order_by": order_by} if order_by else {})
    envelope = client.call_envelope("gettracklist", body)
    items = (envelope.get("data") or {}).get("accepted") or []
    page = envelope.get("page") or {}
    return TrackListPage(
        {(str(i["number"]), int(i.get("carrier") or 0)): str(i.get("tracking_status")) for i in items},
        int(page.get("page_total") or 0),
        int(page.get("data_total") or 0),
    )


def provider_list(client: SeventeenTrackClient, max_pages: int = 100_000) -> dict[tuple[str, int], str]:
    """Every (number, carrier) 17TRACK tracks for this account, with its tracking_status."""
    numbers: dict[tuple[str, int], str] = {}
    page_no = 1
    while page_no <= max_pages:
        page = tracklist_page(client, page_no)
        numbers |= page.numbers
        if page_no >= page.page_total:
            break
        page_no += 1
    return numbers


def reconcile(session_factory: Callable[[], Session], client: SeventeenTrackClient) -> dict[str, Any]:
    theirs = provider_list(client)
    with session_factory() as session:
        stmt = select(Shipment).where(Shipment.provider == PROVIDER, Shipment.tracking.in_(list(_EXPECTED)))
        ours = {(s.number, s.carrier): s.tracking for s in session.scalars(stmt)}
    only_there = sorted(set(theirs) - set(ours))
    only_here = sorted(set(ours) - set(theirs))
    mismatched = [
        {"number": n, "carrier": c, "here": ours[(n, c)], "at_17track": theirs[(n, c)]}
        for (n, c) in sorted(set(ours) & set(theirs))
        if _EXPECTED[ours[(n, c)]] != theirs[(n, c)]
    ]
    return {
        "provider_count": len(theirs),
        "local_count": len(ours),
        "only_at_provider": [
            {"number": n, "carrier": c, "tracking_status": theirs[(n, c)]} for n, c in only_there
        ],
        "only_here": [{"number": n, "carrier": c, "tracking": ours[(n, c)]} for n, c in only_here],
        "state_mismatch": mismatched,
    }


def queue_stale_syncs(session: Session, silent_hours: float, limit: int = 400) -> int:
    """Queue a free gettrackinfo for tracked shipments with no provider data for `silent_hours`.

    17TRACK pushes every 3–12 h (24 h after delivery or an exception), so a longer silence means a
    push was lost. One sync per shipment per silence window: the key carries the window.
    """
    now = utcnow()
    cutoff = now - timedelta(hours=silent_hours)
    stmt = (
        select(Shipment)
        .where(
            Shipment.provider == PROVIDER,
            Shipment.tracking == "tracking",
            or_(
                Shipment.last_seen_at < cutoff,
                Shipment.last_seen_at.is_(None) & (Shipment.registered_at < cutoff),
            ),
        )
        .order_by(Shipment.last_seen_at)
        .limit(limit)
    )
    window = int(now.timestamp() // (silent_hours * 3600))
    return sum(
        queue(session, "gettrackinfo", shipment, f"{registration_key(shipment)}:stale:{window}", {})
        for shipment in session.scalars(stmt)
    )
