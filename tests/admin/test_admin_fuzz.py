"""Fuzzing the shipments page and its CSV export: whatever a signed-in admin puts in a filter or a page
link (random text, huge numbers, dates at the calendar's edges, invalid UTF-8, forged cursors), the
answer is below 500, and a refusal says why on the page.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from lifecycle import create_app
from lifecycle.extensions import db
from tests.admin_support import add_shipments, create_admin
from tests.reliability_support.checks import Figures
from tests.reliability_support.fuzz import NASTY_TEXT, SCALARS

# Enough to meet every kind of odd value several times; a few seconds on each backend.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FILTERS = ["provider", "status", "tracking", "stale_days", "has_error", "registered_from", "registered_to",
           "q", "tag", "sort"]  # fmt: skip
CURSORS = ["after", "before"]

NUMBERS = hs.integers(-(2**70), 2**70).map(str) | hs.sampled_from(["800000", "99999999999", "36501", "-1"])
DATES = hs.dates().map(lambda day: day.isoformat())
EDGE_DATES = hs.sampled_from(["0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31", "2026-02-30"])
TEXT = NASTY_TEXT | hs.text(max_size=30) | NUMBERS | DATES | EDGE_DATES
CURSOR_VALUE = (
    SCALARS
    | hs.datetimes(timezones=hs.just(UTC)).map(datetime.isoformat)
    | hs.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59"])
)
CURSOR_ID = SCALARS | hs.sampled_from([True, False, 2**63, -(2**63) - 1, 10**30, 1e999])
FORGED_CURSORS = hs.builds(
    lambda value, row_id: base64.urlsafe_b64encode(json.dumps([value, row_id]).encode()).decode().rstrip("="),
    CURSOR_VALUE,
    CURSOR_ID,
) | hs.just(base64.urlsafe_b64encode(b"[" * 5_000).decode())


@hs.composite
def query(draw: hs.DrawFn) -> str:
    """A query string over the page's parameters; some values are raw bytes that are not UTF-8."""
    names = draw(hs.lists(hs.sampled_from(FILTERS + CURSORS), min_size=1, max_size=5))
    parts = []
    for name in names:
        if draw(hs.integers(0, 9)) == 0:
            value = quote_from_bytes(draw(hs.binary(max_size=8)), safe="")
        else:
            value = quote(
                draw(FORGED_CURSORS | TEXT if name in CURSORS else TEXT), safe="", errors="surrogatepass"
            )
        parts.append(f"{name}={value}")
    return "&".join(parts)


@pytest.fixture
def app(settings_factory: Any) -> Iterator[Any]:
    """The admin's service in a zone east of UTC, so midnight on 0001-01-01 there is before year 1 in UTC."""
    app = create_app(settings_factory(account_timezone="Asia/Tokyo"))
    create_admin(app)
    add_shipments(app, 3)
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/shipments?stale_days=800000",
        "/admin/shipments?stale_days=99999999999",
        "/admin/shipments?registered_to=9999-12-31",
        "/admin/shipments?registered_from=0001-01-01",
        "/admin/shipments.csv?stale_days=800000",
        "/admin/shipments.csv?registered_to=9999-12-31",
    ],
)
def test_out_of_range_filters_are_refused_with_a_reason(client, path):
    response = client.get(path)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[:300]
    assert "stale_days must be" in body or "must be a date from" in body, body[:300]


def test_fuzzed_filters_and_page_links_never_500(client):
    answers: Counter[int] = Counter()

    @FUZZ
    @given(query(), hs.booleans())
    def request(query_string: str, export: bool) -> None:
        response = client.get(
            "/admin/shipments.csv" if export else "/admin/shipments", query_string=query_string
        )
        body = response.get_data(as_text=True)  # the export streams: reading it runs the query
        answers[response.status_code] += 1
        assert response.status_code < 500, (query_string[:300], response.status_code, body[:300])
        if response.status_code >= 400:
            assert response.status_code == 400 and ("could not be read" in body or "must be" in body
                                                    or "not valid any more" in body), body[:300]  # fmt: skip

    request()
    sent = answers.total()
    ok = sum(n for status, n in answers.items() if status < 300)
    Figures("fuzz admin shipments", sent, sent, ok, 0, 0, {"answers": dict(sorted(answers.items()))}).show()
    assert sent > 0 and ok > 0
