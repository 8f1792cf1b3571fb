"""One normal form for shipment numbers, applied at every edge (registration, import, pushes, queries).

Numbers are stored in their provider's form (the adapter's `normalise`), so an exact or prefix
match finds a shipment however its number was typed or pushed.
"""

from __future__ import annotations

from lifecycle.providers import registry


def normalise(provider: str | None, raw: str) -> str:
    """The stored form of `raw` for `provider` (or for the provider that would claim the number)."""
    return registry.normalise(provider, raw)


def normalise_prefix(raw: str) -> str:
    """A search prefix: trimmed and upper-cased, the part every provider's form shares."""
    return (raw or "").strip().upper()
