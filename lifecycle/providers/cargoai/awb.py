"""Air waybill numbers: `PPP-SSSSSSSC`, the check digit is the 7-digit serial mod 7 (awb.md §2.1)."""

from __future__ import annotations

import re

_SHAPE = re.compile(r"^\s*([0-9]{3})[-\s]?([0-9]{7})([0-9])\s*$")


def looks_like_awb(raw: str) -> bool:
    """11 digits, hyphenated after the prefix or not: what routes a number to CargoAi."""
    return bool(_SHAPE.match(raw or ""))


def normalise(raw: str) -> str:
    """The AWB as `PPP-SSSSSSSC`, or ValueError saying exactly what is wrong."""
    match = _SHAPE.match(raw or "")
    if not match:
        raise ValueError(f"{raw!r} is not an air waybill: expected PPP-SSSSSSSC (11 digits)")
    prefix, serial, check = match.groups()
    expected = int(serial) % 7
    if int(check) != expected:
        reason = (
            "check digits are 0-6, so it can never be valid" if int(check) > 6 else f"it should be {expected}"
        )
        raise ValueError(
            f"{prefix}-{serial}{check}: check digit {check} does not match serial {serial} mod 7 ({reason})"
        )
    return f"{prefix}-{serial}{check}"


def airline_prefix(awb: str) -> int:
    """The IATA airline accounting prefix (kept as the shipment's carrier)."""
    return int(normalise(awb)[:3])
