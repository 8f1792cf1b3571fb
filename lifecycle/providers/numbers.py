"""One normal form for shipment numbers, applied at every edge (registration, import, pushes, queries).

Numbers are stored in this form, so an exact or prefix match finds a shipment however its number
was typed or pushed: 17TRACK numbers trimmed and upper-cased, AWBs as `PPP-SSSSSSSC`.
"""

from __future__ import annotations

from lifecycle.providers import awb


def normalise_17track(raw: str) -> str:
    """17TRACK numbers are letters, digits and hyphens; case carries no meaning."""
    return (raw or "").strip().upper()


def normalise(provider: str | None, raw: str) -> str:
    """The stored form of `raw` for `provider`; an AWB-shaped number in its hyphenated form."""
    if provider == "cargoai" or (provider is None and awb.looks_like_awb(raw)):
        try:
            return awb.normalise(raw)
        except ValueError:
            pass
    return normalise_17track(raw)


def normalise_prefix(raw: str) -> str:
    """A search prefix in the same form (trimmed, upper-cased)."""
    return normalise_17track(raw)
