"""17TRACK's number form: letters, digits and hyphens, 5 to 50 (reference/17track.md §1)."""

from __future__ import annotations

import re

NUMBER_PATTERN = re.compile(r"^[A-Za-z0-9-]{5,50}$")


def normalise(raw: str) -> str:
    """Trimmed and upper-cased: case carries no meaning in a 17TRACK number."""
    return (raw or "").strip().upper()
