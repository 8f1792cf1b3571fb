"""What the webhook fuzz tests share (tests/test_fuzz_webhooks.py in-process on both backends,
tests/test_fuzz_embedded.py against `manage.py run`): hypothesis strategies that generate and mutate
17TRACK pushes and CargoAi callbacks, genuine payloads to post around them, validly signed, and the
figures each run prints and asserts.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from hypothesis import strategies as hs

from lifecycle.providers.cargoai import webhook as cargoai
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.helpers import at
from tests.reliability_support.checks import Figures

NASTY_TEXT = hs.sampled_from(
    ["", " ", "\ud800", "a\udfffb", "\x00", "é" * 3, "💥", "' OR 1=1 --", "../../etc", "\\", '"', "null"]
)
SCALARS = (
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(2**70), max_value=2**70)
    | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(max_size=30)
    | NASTY_TEXT
    | hs.just("x" * 70_000)
    | hs.just(10**4000)
)
JSON = hs.recursive(
    SCALARS,
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Bodies JSON cannot hold, or barely: nesting past any recursion limit, a 5,000-digit number, bad UTF-8.
RAW_BODIES = [
    b"[" * 50_000 + b"]" * 50_000, b'{"event":"TRACKING_UPDATED","data":' + b"1" * 5000 + b"}",
    b'{"awb":"\xff\xfe"}', b"{", b"", b"null",
]  # fmt: skip

PUSH = pushes.tracking_updated("FZ0000001", 3011, "Delivered", "Delivered_Other", at(2), tag="t")
CALLBACK = {
    "awb": "000-12345675",
    "oldEvents": [{"code": "BKD", "flight": {"number": "AF1"}, "eventLocation": "CDG"}],
    "events": [{"code": "DLV", "eventDate": "2026-11-02T10:00:00+01:00", "eventLocation": "JFK"}],
    "newEvents": [{"code": "DLV", "eventDate": "2026-11-02T10:00:00+01:00", "flightNumber": "AF2"}],
}


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path inside a payload, so a mutation can hit any field the parser reads."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@hs.composite
def mutated(draw: hs.DrawFn, template: dict[str, Any]) -> bytes:
    """A genuine payload with 1-3 fields deleted or replaced, or raw bytes JSON cannot hold."""
    if draw(hs.integers(0, 9)) == 0:
        return draw(hs.sampled_from(RAW_BODIES))
    payload = json.loads(json.dumps(template))
    for _ in range(draw(hs.integers(1, 3))):
        paths = _paths(payload)
        if not paths:
            break
        path = draw(hs.sampled_from(paths))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(hs.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return json.dumps(payload).encode()


_serials = itertools.count(1_000_000)


def genuine(provider: str) -> tuple[str, bytes]:
    """A fresh number and a valid payload moving it in transit: one event, one history row."""
    serial = next(_serials)
    if provider == "17track":
        number = f"GA{serial}CN"
        return number, pushes.encode(pushes.tracking_updated(number, 3011, "InTransit", None, at(1)))
    awb = f"000-{serial:07d}{serial % 7}"
    event = {"code": "DEP", "eventDate": "2026-11-01T10:00:00+01:00", "eventLocation": "CDG"}
    return awb, json.dumps({"awb": awb, "events": [event]}).encode()


def signed(provider: str, body: bytes, key: str) -> dict[str, str]:
    """The header that makes `body` validly signed for `provider` with `key`."""
    if provider == "17track":
        return {"sign": st.sign(body, key)}
    return {"cargoai-api-key": cargoai.hmac_signature(body, key)}


def readable(error: str | None) -> bool:
    """Whether a person can read a failed row's error: short, no traceback, storable as UTF-8."""
    if not error or len(error) > 500 or "Traceback" in error:
        return False
    try:
        error.encode("utf-8")  # a lone surrogate cannot be stored or shown
    except UnicodeEncodeError:
        return False
    return True


def fuzz_figures(
    name: str, sent: int, acknowledged: int, genuine_numbers: list[str], history: Counter[str], **extra: Any
) -> Figures:
    """Sent / acknowledged / applied / doubled / lost, for the genuine events around the fuzz.

    `history` is how many history rows each genuine number has: exactly 1 when its one event was
    applied once; 0 is a loss, more a double. `extra` (answers, failed rows, ...) is shown too.
    """
    applied = sum(1 for number in genuine_numbers if history[number] >= 1)
    doubled = sum(history[number] - 1 for number in genuine_numbers if history[number] > 1)
    lost = sum(1 for number in genuine_numbers if history[number] == 0)
    extra = {"genuine": len(genuine_numbers), **extra}
    return Figures(name, sent, acknowledged, applied, doubled, lost, extra).show()
