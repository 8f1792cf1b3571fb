"""The endpoints that change registrations: register, stoptrack, retrack, deletetrack,
changecarrier, changeinfo (reference/17track.md §2.1, §2.3-2.5, §5).

Each handler takes one request item, with `SimState.lock` held by the caller, and returns the
accepted entry or raises `codes.ItemError`; `each_item` turns that into the accepted/rejected lists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulators.seventeentrack import carriers, codes
from simulators.seventeentrack.codes import ItemError
from simulators.seventeentrack.state import STOPPED, TRACKING, Parcel, SimState

MAX_CARRIER_CHANGES = 5
# Metadata changeinfo may set; `lang` is the one that costs quota.
CHANGEABLE = ("tag", "param", "lang", "order_no", "order_time", "email", "remark")
_INFO_FIELDS = ("order_no", "order_time", "email", "remark")

Handler = Callable[[SimState, dict[str, Any], datetime], "dict[str, Any] | list[dict[str, Any]]"]


def each_item(
    state: SimState, items: list[dict[str, Any]], handler: Handler, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for item in items:
        try:
            answer = handler(state, item, now)
        except ItemError as error:
            rejected.append(codes.rejected(item, error))
            continue
        accepted.extend(answer if isinstance(answer, list) else [answer])
    return accepted, rejected


def number_of(item: dict[str, Any]) -> str:
    number = item.get("number")
    if not isinstance(number, str) or not number:
        raise ItemError(codes.MISSING_DATA, "number")
    return number


def carrier_in(item: dict[str, Any], name: str = "carrier") -> int | None:
    """The item's carrier; absent, null and 0 all mean "not given" (auto-detect / any)."""
    value = item.get(name)
    return None if value in (None, 0) else carriers.valid_carrier(value)


def find_all(state: SimState, item: dict[str, Any]) -> list[Parcel]:
    """The registrations an item names: the number's, or the one under the given carrier."""
    number = number_of(item)
    found = state.parcels.matches(number, carrier_in(item))
    if not found:
        raise ItemError(codes.NOT_REGISTERED, number)
    return found


def find_one(state: SimState, item: dict[str, Any]) -> Parcel:
    """The registration a change names: a bare number must name exactly one (-18019810)."""
    found = find_all(state, item)
    if len(found) > 1:
        raise ItemError(codes.NOT_UNIQUE, found[0].number)
    return found[0]


def _carrier_for_registration(state: SimState, item: dict[str, Any], number: str) -> tuple[int, int]:
    """(carrier, origin): 2 when the given carrier is taken as verified, 1 when detected."""
    carrier = carrier_in(item)
    if carrier is not None:
        return carrier, 2
    if item.get("auto_detection") is False:
        raise ItemError(codes.MISSING_DATA, "carrier")
    options = state.options
    return carriers.detect(number, options.undetectable_numbers, options.undetectable_prefixes), 1


def register(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    number = number_of(item)
    if not carriers.NUMBER_FORMAT.fullmatch(number):
        raise ItemError(codes.BAD_FORMAT, number)
    carrier, origin = _carrier_for_registration(state, item, number)
    final_carrier = carrier_in(item, "final_carrier") or 0
    if final_carrier and not carriers.carrier_of(carrier).postal:
        raise ItemError(codes.FINAL_CARRIER_NOT_POSTAL)
    if state.parcels.matches(number, carrier):
        raise ItemError(codes.ALREADY_REGISTERED, number)
    lang = item.get("lang") or None
    # One unit per (number, carrier), one more for translation; refused items cost nothing.
    state.quota.charge(1 + (lang is not None), now)
    parcel = state.new_parcel(number, carrier, now)
    parcel.origin, parcel.final_carrier, parcel.lang = origin, final_carrier, lang
    parcel.tag, parcel.param = item.get("tag"), item.get("param")
    parcel.info = {name: item[name] for name in _INFO_FIELDS if name in item}
    state.parcels.add(parcel)
    return {
        "origin": origin,
        "number": number,
        "carrier": carrier,
        "email": item.get("email"),
        "tag": parcel.tag,
        "lang": lang,
    }


def stoptrack(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    parcel = find_one(state, item)
    if parcel.tracking != TRACKING:
        raise ItemError(codes.STOP_NOT_TRACKING)
    parcel.stop("ByRequest", now)
    state.obsolete_queued_pushes(parcel)  # a stopped number gets no more pushes
    return {"number": parcel.number, "carrier": parcel.carrier}


def retrack(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    parcel = find_one(state, item)
    if parcel.tracking != STOPPED:
        raise ItemError(codes.RETRACK_NOT_STOPPED)
    if parcel.retracked:
        raise ItemError(codes.RETRACK_TWICE)
    parcel.tracking, parcel.retracked, parcel.idle_steps = TRACKING, True, 0
    parcel.stop_reason = parcel.stop_time = None
    state.obsolete_queued_pushes(parcel)
    return {"number": parcel.number, "carrier": parcel.carrier}


def deletetrack(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    parcel = find_one(state, item)
    state.parcels.remove(parcel)
    return {"number": parcel.number, "carrier": parcel.carrier}


def _registration_to_change(state: SimState, item: dict[str, Any], number: str) -> Parcel:
    carrier_old = carrier_in(item, "carrier_old")
    found = state.parcels.matches(number, carrier_old)
    if not found:
        raise ItemError(codes.CARRIER_OLD_WRONG, carrier_old or 0, number)
    if len(found) > 1:
        raise ItemError(codes.MULTIPLE_CARRIERS, number)
    final_old = item.get("final_carrier_old")
    if final_old not in (None, 0) and final_old != found[0].final_carrier:
        raise ItemError(codes.CARRIER_OLD_WRONG, carrier_old or 0, number)
    return found[0]


def _new_carriers(item: dict[str, Any], parcel: Parcel) -> tuple[int, int]:
    """(carrier, final_carrier) after the change; unchanged parts keep their current value."""
    new, final_new = item.get("carrier_new"), item.get("final_carrier_new")
    if new in (None, 0) and final_new in (None, 0):
        raise ItemError(codes.NO_NEW_CARRIER)
    try:
        carrier = parcel.carrier if new in (None, 0) else carriers.valid_carrier(new)
        final_carrier = parcel.final_carrier if final_new in (None, 0) else carriers.valid_carrier(final_new)
    except ItemError:
        raise ItemError(codes.BAD_CARRIER_NEW, new if new else final_new) from None
    return carrier, final_carrier


def changecarrier(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    number = number_of(item)
    parcel = _registration_to_change(state, item, number)
    carrier, final_carrier = _new_carriers(item, parcel)
    if parcel.tracking == STOPPED:
        raise ItemError(codes.CHANGE_STOPPED)
    if (carrier, final_carrier) == (parcel.carrier, parcel.final_carrier):
        raise ItemError(codes.SAME_CARRIER)
    if parcel.carrier_changes >= MAX_CARRIER_CHANGES:
        raise ItemError(codes.CHANGE_LIMIT)
    if not parcel.event_times:  # "first result" = at least one event
        raise ItemError(codes.NO_RESULT_YET)
    if carrier != parcel.carrier and state.parcels.matches(number, carrier):
        raise ItemError(codes.DUPLICATE_REGISTRATION, number, carrier)
    carrier_old, final_old = parcel.carrier, parcel.final_carrier
    state.parcels.rekey(parcel, carrier)
    parcel.final_carrier = final_carrier
    parcel.carrier_changes += 1  # the first five are free: no quota
    state.obsolete_queued_pushes(parcel)
    return {
        "number": number,
        "carrier": carrier,
        "carrier_old": carrier_old,
        "carrier_new": carrier,
        "final_carrier_old": final_old,
        "final_carrier_new": final_carrier,
    }


def _changes_in(item: dict[str, Any]) -> dict[str, Any]:
    # Both shapes seen in clients (reference §2.5): flat fields, or nested under "items".
    source = item["items"] if isinstance(item.get("items"), dict) else item
    changes = {name: source[name] for name in CHANGEABLE if name in source}
    if not changes:
        raise ItemError(codes.NOTHING_TO_CHANGE)
    return changes


def changeinfo(state: SimState, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    parcel = find_one(state, item)
    changes = _changes_in(item)
    lang = changes.get("lang") or None
    if lang is not None and parcel.lang is None:
        state.quota.charge(1, now)  # translation is paid once per number; switching language is free
    if "lang" in changes:
        parcel.lang = lang
    if "tag" in changes:
        parcel.tag = changes["tag"]
    if "param" in changes:
        parcel.param = changes["param"]
    parcel.info.update({name: changes[name] for name in _INFO_FIELDS if name in changes})
    return {"number": parcel.number, "carrier": parcel.carrier, "tag": parcel.tag, "lang": parcel.lang}
