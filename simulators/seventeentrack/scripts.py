"""The scripted paths a simulated parcel follows, one event per step (reference §4 vocabulary).

A parcel's path is chosen once, from a random generator seeded by (seed, number, carrier), so a
run is reproducible whatever order numbers are registered in.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Step:
    status: str
    sub_status: str
    stage: str | None  # the milestone vocabulary; None for steps that are no milestone
    description: str
    at_origin: bool  # which country's clock and place the event is reported in


INFO = Step("InfoReceived", "InfoReceived", "InfoReceived", "Shipment information received.", True)
PICKED_UP = Step("InTransit", "InTransit_PickedUp", "PickedUp", "Picked up by the carrier.", True)
DEPARTED = Step("InTransit", "InTransit_Departure", "Departure", "Departed from the country of origin.", True)
ARRIVED = Step("InTransit", "InTransit_Arrival", "Arrival", "Arrived in the destination country.", False)
CUSTOMS = Step("InTransit", "InTransit_CustomsProcessing", None, "Customs clearance in progress.", False)
OUT = Step("OutForDelivery", "OutForDelivery_Other", "OutForDelivery", "Out for delivery.", False)
DELIVERED = Step("Delivered", "Delivered_Other", "Delivered", "Delivered to the recipient.", False)
NOBODY = Step("DeliveryFailure", "DeliveryFailure_NoBody", None, "Delivery attempted, nobody at home.", False)
PICKUP = Step(
    "AvailableForPickup", "AvailableForPickup_Other", "AvailableForPickup", "Available at the outlet.", False
)
RETURNING = Step("Exception", "Exception_Returning", "Returning", "Refused, returning to sender.", False)
RETURNED = Step("Exception", "Exception_Returned", "Returned", "Returned to the sender.", True)

_HEAD = (INFO, PICKED_UP, DEPARTED, ARRIVED)
SCRIPTS: dict[str, tuple[Step, ...]] = {
    "delivered": (*_HEAD, OUT, DELIVERED),
    "delivered_customs": (*_HEAD, CUSTOMS, OUT, DELIVERED),
    "failed_then_pickup": (*_HEAD, OUT, NOBODY, PICKUP, DELIVERED),
    "failed_then_pickup_customs": (*_HEAD, CUSTOMS, OUT, NOBODY, PICKUP, DELIVERED),
    "returned": (*_HEAD, CUSTOMS, RETURNING, RETURNED),
    "not_found": (),  # the carrier never answers: NotFound for as long as it is tracked
}
# A parcel whose path ends here has nothing more to say; tracking stops on its own later.
FINAL_STEPS = (DELIVERED, RETURNED)
NOT_FOUND = Step("NotFound", "NotFound_Other", None, "", True)


@dataclass(frozen=True)
class Mix:
    """How often each kind of path is chosen (the simulator's options)."""

    not_found_rate: float = 0.05
    exception_rate: float = 0.1
    customs_rate: float = 0.5


def parcel_random(seed: int, number: str, carrier: int) -> random.Random:
    return random.Random(f"{seed}:{number}:{carrier}")


def choose_script(rng: random.Random, mix: Mix) -> str:
    if rng.random() < mix.not_found_rate:
        return "not_found"
    customs = rng.random() < mix.customs_rate
    if rng.random() < mix.exception_rate:
        if rng.random() < 0.5:
            return "returned"
        return "failed_then_pickup_customs" if customs else "failed_then_pickup"
    return "delivered_customs" if customs else "delivered"


def event_time(start: datetime, index: int, spacing_hours: float, parcel_key: str) -> datetime:
    """Step `index`'s time on the simulated clock, with a reproducible jitter.

    Step k falls in [k, k + 1/2) spacings after the start, so times do not go backwards; the
    caller still enforces "strictly after the previous event" for tiny spacings.
    """
    # A CRC as the random source: reproducible, and cheap enough to step 40,000 parcels at once.
    fraction = zlib.crc32(f"{parcel_key}:{index}".encode()) / 2**32
    jitter = fraction * spacing_hours / 2
    return (start + timedelta(hours=index * spacing_hours + jitter)).replace(microsecond=0)
