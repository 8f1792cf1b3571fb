"""Carriers, countries and the simulator's deterministic carrier auto-detection (reference §6).

The real detection is a black box (">80 %" right). Here it is a fixed set of rules on the number
so tests can predict the answer; numbers the caller declares undetectable are refused instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulators.seventeentrack import codes


@dataclass(frozen=True)
class Carrier:
    key: int
    name: str
    country: str
    homepage: str
    postal: bool = False


CARRIERS = {
    carrier.key: carrier
    for carrier in (
        Carrier(3011, "China Post", "CN", "https://www.ems.com.cn", postal=True),
        Carrier(21051, "USPS", "US", "https://www.usps.com", postal=True),
        Carrier(100001, "DHL Express", "DE", "https://www.dhl.com"),
        Carrier(100002, "UPS", "US", "https://www.ups.com"),
        Carrier(100003, "FedEx", "US", "https://www.fedex.com"),
        Carrier(7041, "DHL Paket", "DE", "https://www.dhl.de"),
        Carrier(2151, "Correios", "BR", "https://www.correios.com.br", postal=True),
        Carrier(190012, "YanWen", "CN", "https://www.yw56.com.cn"),
        Carrier(190271, "Cainiao", "CN", "https://global.cainiao.com"),
        Carrier(1151, "Australia Post", "AU", "https://auspost.com.au", postal=True),
        Carrier(11031, "Royal Mail", "GB", "https://www.royalmail.com", postal=True),
    )
}

CHINA_POST, USPS, DHL_EXPRESS, UPS, FEDEX, CAINIAO = 3011, 21051, 100001, 100002, 100003, 190271


@dataclass(frozen=True)
class Country:
    name: str
    city: str
    utc_offset_hours: int


COUNTRIES = {
    "CN": Country("China", "Shenzhen", 8),
    "US": Country("United States", "Chicago", -5),
    "DE": Country("Germany", "Hamburg", 1),
    "GB": Country("United Kingdom", "London", 0),
    "FR": Country("France", "Paris", 1),
    "BR": Country("Brazil", "Sao Paulo", -3),
    "AU": Country("Australia", "Sydney", 10),
}
DESTINATIONS = ("US", "DE", "GB", "FR", "BR", "AU")

NUMBER_FORMAT = re.compile(r"[A-Za-z0-9-]{5,50}")
# UPU S10: two letters, nine digits, the country of origin.
_S10 = re.compile(r"[A-Z]{2}\d{9}([A-Z]{2})")
_S10_CARRIERS = {"CN": CHINA_POST, "US": USPS, "BR": 2151, "AU": 1151, "GB": 11031}


def carrier_of(key: int) -> Carrier:
    """A known carrier, or a plausible stand-in for a key this table does not list."""
    return CARRIERS.get(key) or Carrier(key, f"Carrier {key}", "CN", "https://www.17track.net")


def valid_carrier(value: object) -> int:
    """A carrier key from a request item; anything but a positive int is -18019910."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise codes.ItemError(codes.BAD_CARRIER, value)
    return value


def detect(number: str, undetectable_numbers: frozenset[str], undetectable_prefixes: tuple[str, ...]) -> int:
    """The carrier register picks when none is given; -18019903 for the declared undetectable."""
    upper = number.upper()
    if number in undetectable_numbers or upper.startswith(tuple(p.upper() for p in undetectable_prefixes)):
        raise codes.ItemError(codes.UNDETECTABLE, number)
    s10 = _S10.fullmatch(upper)
    if s10 and s10.group(1) in _S10_CARRIERS:
        return _S10_CARRIERS[s10.group(1)]
    if upper.endswith("CN"):
        return CHINA_POST
    if upper.startswith("1Z"):
        return UPS
    if number.isdigit():
        by_length = {22: USPS, 20: USPS, 12: FEDEX, 15: FEDEX, 10: DHL_EXPRESS}
        if len(number) in by_length:
            return by_length[len(number)]
    return CAINIAO
