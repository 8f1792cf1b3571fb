"""The routes a simulated air shipment follows and the CargoAi event objects it produces.

A shipment's route (airports, carriers, flights, whether it is interline, rebooked or has FOH) is
drawn once from a generator seeded by (seed, AWB), so a run is reproducible whatever order AWBs
arrive in. Events are revealed one per step; each is a frozen dict built at reveal time, so a
later rebooking or departure never rewrites an event already published (awb.md §1.4).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# IATA code -> (fixed UTC offset in hours, "lon,lat" as CargoAi writes coordinates). Offsets
# ignore daylight saving: the simulator only needs every eventDate to carry *a* local offset.
AIRPORTS: dict[str, tuple[float, str]] = {
    "FRA": (1, "8.5706,50.0333"),
    "CDG": (1, "2.5479,49.0097"),
    "LUX": (1, "6.2044,49.6233"),
    "DXB": (4, "55.3644,25.2528"),
    "DOH": (3, "51.6081,25.2731"),
    "SIN": (8, "103.9940,1.3502"),
    "TPE": (8, "121.2330,25.0777"),
    "HKG": (8, "113.9150,22.3080"),
    "NRT": (9, "140.3860,35.7647"),
    "JFK": (-5, "-73.7789,40.6398"),
    "ORD": (-6, "-87.9048,41.9786"),
    "LAX": (-8, "-118.4080,33.9425"),
}
# AWB prefix (airline accounting code) -> IATA carrier code; "000" is CargoAi's mock airline.
CARRIERS = {"000": "CV", "020": "LH", "057": "AF", "131": "JL", "157": "QR", "160": "CX", "172": "CV"}
CARRIERS |= {"176": "EK", "618": "SQ"}
UNKNOWN_CARRIER = "XX"
AWB_PATTERN = re.compile(r"\d{3}-\d{8}")


def awb_check_digit_ok(awb: str) -> bool:
    """IATA rule (awb.md §2.1): the 7-digit serial mod 7 is the last digit; the prefix is unprotected."""
    digits = re.sub(r"[\s-]", "", awb)
    return re.fullmatch(r"\d{11}", digits) is not None and int(digits[3:10]) % 7 == int(digits[10])


@dataclass(frozen=True)
class Mix:
    """Shares of shipments whose route has these variations."""

    interline: float
    rebook: float
    foh: float
    undated_bkd: float


@dataclass
class Leg:
    number: str
    origin: str
    destination: str
    scheduled_departure: datetime
    scheduled_arrival: datetime
    actual_departure: datetime | None = None
    actual_arrival: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        flight = {
            "number": self.number,
            "origin": self.origin,
            "destination": self.destination,
            "originCoord": AIRPORTS[self.origin][1],
            "destinationCoord": AIRPORTS[self.destination][1],
            "date": local(self.scheduled_departure, self.origin)[:10],
            "scheduledDeparture": local(self.scheduled_departure, self.origin),
            "scheduledArrival": local(self.scheduled_arrival, self.destination),
        }
        if self.actual_departure:
            flight["actualDeparture"] = local(self.actual_departure, self.origin)
        if self.actual_arrival:
            flight["actualArrival"] = local(self.actual_arrival, self.destination)
        return flight


@dataclass(frozen=True)
class Step:
    code: str
    leg: int  # which flight leg the event belongs to
    at_arrival: bool = False  # reported at the leg's destination rather than its origin
    rebook: bool = False  # this BKD moves the leg onto its replacement flight


# Only these events carry the flight they concern; FOH, RCS, TFD, RCT, NFD and DLV are ground events.
FLIGHT_CODES = frozenset({"BKD", "MAN", "DEP", "ARR", "RCF"})


@dataclass
class Shipment:
    awb: str
    origin: str
    destination: str
    weight: str  # CargoAi sends numbers as strings
    pieces: str
    legs: list[Leg]
    steps: list[Step]
    replacement: Leg | None = None  # the flight a rebooking BKD moves the first leg onto
    undated_bkd: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return len(self.events) >= len(self.steps)

    @property
    def kind(self) -> str:
        interline = len(self.legs) > 1
        rebooked = any(step.rebook for step in self.steps)
        return "+".join(["interline" if interline else "direct"] + ["rebooked"] * rebooked)

    def tracking(self) -> dict[str, Any]:
        """The pull answer (`GET /track?awb=`): the shipment and every event known so far."""
        head = {"awb": self.awb, "origin": self.origin, "destination": self.destination}
        return {**head, "weight": self.weight, "pieces": self.pieces, "events": list(self.events)}

    def reveal(self, clock: datetime) -> dict[str, Any] | None:
        """The next event of the route, stamped with the simulated clock; None when finished."""
        if self.finished:
            return None
        step = self.steps[len(self.events)]
        leg = self.legs[step.leg]
        if step.rebook and self.replacement is not None:
            leg = self.legs[step.leg] = self.replacement
        if step.code == "DEP":
            leg.actual_departure = clock
        elif step.code == "ARR":
            leg.actual_arrival = clock
        event = self._event(step, leg, clock)
        self.events.append(event)
        return event

    def _event(self, step: Step, leg: Leg, clock: datetime) -> dict[str, Any]:
        place = leg.destination if step.at_arrival else leg.origin
        event: dict[str, Any] = {"code": step.code}
        if not (step.code == "BKD" and self.undated_bkd):  # a BKD may come with flight data only
            event["eventDate"] = local(clock, place)
        event |= {"eventLocation": place, "eventLocationCoord": AIRPORTS[place][1]}
        if step.code in FLIGHT_CODES:
            event |= {"flight": leg.as_json(), "flightNumber": leg.number}
        return event | {"weight": self.weight, "pieces": self.pieces, "isPlanned": False}


def local(moment: datetime, airport: str) -> str:
    """ISO-8601 in the airport's local offset, as CargoAi writes every timestamp."""
    offset = timezone(timedelta(hours=AIRPORTS[airport][0]))
    return moment.astimezone(offset).isoformat(timespec="seconds")


def _steps(interline: bool, rebook: bool, foh: bool) -> list[Step]:
    """BKD [FOH] RCS [BKD] MAN DEP ARR RCF [TFD RCT MAN DEP ARR RCF] NFD DLV (awb.md §1.6 codes)."""
    head = [Step("BKD", 0)] + [Step("FOH", 0)] * foh + [Step("RCS", 0)]
    head += [Step("BKD", 0, rebook=True)] * rebook
    first_leg = [Step("MAN", 0), Step("DEP", 0), Step("ARR", 0, True), Step("RCF", 0, True)]
    transfer = [Step("TFD", 0, True), Step("RCT", 1), Step("MAN", 1), Step("DEP", 1)]
    transfer += [Step("ARR", 1, True), Step("RCF", 1, True)]
    last = 1 if interline else 0
    tail = [Step("NFD", last, True), Step("DLV", last, True)]
    return head + first_leg + (transfer if interline else []) + tail


def _leg(rng: random.Random, carrier: str, origin: str, destination: str, departs: datetime) -> Leg:
    number, hours = f"{carrier}{rng.randint(100, 9899)}", rng.randint(2, 13)
    return Leg(number, origin, destination, departs, departs + timedelta(hours=hours))


def new_shipment(awb: str, seed: int, mix: Mix, clock: datetime, step: timedelta) -> Shipment:
    """A shipment whose route is drawn from (seed, AWB); its BKD is revealed at once."""
    rng = random.Random(f"{seed}:{awb}")
    interline, rebook = rng.random() < mix.interline, rng.random() < mix.rebook
    foh, undated = rng.random() < mix.foh, rng.random() < mix.undated_bkd
    steps = _steps(interline, rebook, foh)
    origin, transfer, destination = rng.sample(sorted(AIRPORTS), 3)
    carrier = CARRIERS.get(awb[:3], UNKNOWN_CARRIER)
    # Flights are scheduled for when the route will reach their DEP step, if nothing is skipped.
    deps = [i for i, s in enumerate(steps) if s.code == "DEP"]
    first_to = transfer if interline else destination
    legs = [_leg(rng, carrier, origin, first_to, clock + step * deps[0])]
    if interline:
        second = rng.choice(sorted(set(CARRIERS.values()) - {carrier}))
        legs.append(_leg(rng, second, transfer, destination, clock + step * deps[1]))
    replacement = None
    if rebook:  # the first booking was for an earlier flight the shipment will miss
        replacement, legs[0] = legs[0], _leg(rng, carrier, origin, first_to, clock + step * (deps[0] - 2))
    pieces = rng.randint(1, 40)
    weight = f"{pieces * rng.uniform(4, 60):.1f}"
    shipment = Shipment(awb, origin, destination, weight, str(pieces), legs, steps, replacement, undated)
    shipment.reveal(clock)
    return shipment
