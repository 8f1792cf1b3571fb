"""Parcels moving along their scripted paths, one event per step, and the pushes that produces.

`advance_all` changes state only (under the lock) and returns snapshots of what changed; `advance`
builds the pushes from them and hands them to the pusher after the lock is released, and `tick`
(the server's ticker) calls it every `step_seconds` in the background.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.seventeentrack import pushes, scripts, trackinfo
from simulators.seventeentrack.state import TRACKING, Parcel, SimState, utcnow

if TYPE_CHECKING:
    from simulators.seventeentrack.delivery import Pusher


@dataclass(frozen=True)
class Outgoing:
    """One push as 17TRACK would send it: the body is fixed when the change happens."""

    number: str
    carrier: int
    epoch: int
    event: str
    body: bytes
    sub_status: str | None
    event_time: str | None
    more_coming: bool  # a later push for the same parcel will follow (so this one may be overtaken)

    @property
    def key(self) -> tuple[str, int]:
        return self.number, self.carrier


def outgoing(parcel: Parcel, payload: dict[str, Any], more_coming: bool = False) -> Outgoing:
    latest = (payload["data"].get("track_info") or {}).get("latest_event") or {}
    step = parcel.latest_step or scripts.NOT_FOUND
    sub_status = step.sub_status if payload["event"] == pushes.EVENT_UPDATED else None
    return Outgoing(
        parcel.number,
        parcel.carrier,
        parcel.epoch,
        payload["event"],
        pushes.encode(payload),
        sub_status,
        latest.get("time_utc"),
        more_coming,
    )


def _next_event_time(state: SimState, parcel: Parcel) -> datetime:
    index = len(parcel.event_times)
    key = f"{state.options.seed}:{parcel.number}:{parcel.carrier}"
    when = scripts.event_time(parcel.start, index, state.options.event_hours, key)
    if parcel.event_times and when <= parcel.event_times[-1]:
        when = parcel.event_times[-1] + timedelta(seconds=1)  # strictly increasing, whatever the spacing
    return when


@dataclass(frozen=True)
class Change:
    """A parcel's new state, copied under the lock so its push can be built after releasing it."""

    parcel: Parcel
    event: str
    more_coming: bool = False

    @classmethod
    def of(cls, parcel: Parcel, event: str, more_coming: bool = False) -> Change:
        snapshot = replace(parcel, event_times=list(parcel.event_times), info=dict(parcel.info))
        return cls(snapshot, event, more_coming)

    @classmethod
    def uncopied(cls, parcel: Parcel, event: str, more_coming: bool = False) -> Change:
        """For counting only (no webhook: nothing will be built from it)."""
        return cls(parcel, event, more_coming)

    def outgoing(self, now: datetime) -> Outgoing:
        if self.event == pushes.EVENT_STOPPED:
            return outgoing(self.parcel, trackinfo.stopped_payload(self.parcel))
        return outgoing(self.parcel, trackinfo.updated_payload(self.parcel, now), self.more_coming)


def advance_parcel(state: SimState, parcel: Parcel, now: datetime, snapshot: bool = True) -> Change | None:
    """One carrier query: the next scripted event, or the automatic stop once it has gone quiet."""
    change = Change.of if snapshot else Change.uncopied
    first_query = not parcel.queried
    parcel.queried, parcel.track_time = True, now
    auto_stop = state.options.auto_stop_steps
    if len(parcel.event_times) < len(parcel.steps):
        parcel.event_times.append(_next_event_time(state, parcel))
        parcel.idle_steps = 0
        more = len(parcel.event_times) < len(parcel.steps) or auto_stop is not None
        return change(parcel, pushes.EVENT_UPDATED, more)
    if first_query:  # a path with no events: the first NotFound answer is still pushed once
        return change(parcel, pushes.EVENT_UPDATED)
    parcel.idle_steps += 1
    if parcel.finished and auto_stop is not None and parcel.idle_steps >= auto_stop:
        # 17TRACK stops a delivered parcel on its own after a quiet spell, and says so.
        parcel.stop("Expired", now)
        return change(parcel, pushes.EVENT_STOPPED)
    return None


def advance_all(
    state: SimState, now: datetime, numbers: set[str] | None = None, snapshot: bool = True
) -> list[Change]:
    """One step for every tracked parcel (or those numbers); call with the lock held."""
    changes = []
    for parcel in state.parcels.values():
        if parcel.tracking != TRACKING or (numbers is not None and parcel.number not in numbers):
            continue
        change = advance_parcel(state, parcel, now, snapshot)
        if change is not None:
            changes.append(change)
    return changes


def advance(state: SimState, pusher: Pusher, steps: int = 1, numbers: set[str] | None = None) -> int:
    """Advance `steps` times now; returns the pushes produced (sent only if a webhook is set)."""
    produced = 0
    for _ in range(steps):
        now = utcnow()
        with state.lock:
            webhook_set = state.webhook_url is not None
            changes = advance_all(state, now, numbers, snapshot=webhook_set)
        if webhook_set:  # payloads are built from the snapshots, without holding the lock
            pusher.submit([change.outgoing(now) for change in changes])
        produced += len(changes)
    return produced


def tick(state: SimState, pusher: Pusher) -> None:
    """The background step, every `step_seconds`: advance every parcel, but only while a webhook
    URL is set."""
    with state.lock:
        webhook_set = state.webhook_url is not None
    if webhook_set:
        advance(state, pusher)
