"""The carrier's name, as 17TRACK's pushes give it, in the shipment JSON and on the admin pages."""

from __future__ import annotations

from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.shipments import queries
from simulators.seventeentrack import pushes
from tests.helpers import at, post_push, shipment


def _drain(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return inbox.drain(db.new_session, batch_size=10)


def test_a_push_names_the_carrier_and_the_json_shows_it(app, client):
    post_push(
        client, pushes.tracking_updated("RR1", 3011, "InTransit", None, at(1), carrier_name="China Post")
    )
    _drain(app)
    with app.app_context():
        item = queries.shipment_json(shipment("RR1"))
    assert (item["carrier"], item["carrier_name"]) == (3011, "China Post")


@pytest.mark.parametrize(
    "tracking",
    [None, "x", [], {"providers": "x"}, {"providers": [{"provider": {"name": 5}}]},
     {"providers": [{"provider": {"name": "\ud800"}}]}, {"providers": [{}]}],
)  # fmt: skip
def test_a_strange_providers_shape_costs_the_name_never_the_push(app, client, tracking):
    payload = pushes.tracking_updated("RR2", 3011, "InTransit", None, at(1))
    payload["data"]["track_info"]["tracking"] = tracking
    post_push(client, payload)
    assert _drain(app).outcomes == {"applied": 1}
    with app.app_context():
        assert shipment("RR2").carrier_name is None and shipment("RR2").status == "in_transit"


def test_the_admin_pages_show_the_carrier_name(app, client):
    from tests.admin_support import create_admin, sign_in

    post_push(
        client, pushes.tracking_updated("RR3", 3011, "InTransit", None, at(1), carrier_name="China <Post>")
    )
    _drain(app)
    create_admin(app)
    sign_in(client)
    listing = client.get("/admin/shipments").get_data(as_text=True)
    assert "China &lt;Post&gt; <small>3011</small>" in listing
    page = client.get("/admin/shipments/17track/RR3").get_data(as_text=True)
    assert "China &lt;Post&gt; (3011)" in page


HOURS = count(1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tracking=json_values | st.builds(lambda n: {"providers": [{"provider": {"name": n}}]}, names))
def test_any_tracking_value_is_applied_and_the_name_kept_within_its_column(app, client, tracking):
    # A newer event each time, so each example is applied rather than dropped as a duplicate.
    payload = pushes.tracking_updated("RR4", 3011, "InTransit", None, at(next(HOURS)))
    payload["data"]["track_info"]["tracking"] = tracking
    assert post_push(client, payload).status_code == 200
    outcomes = _drain(app).outcomes
    assert outcomes == {"applied": 1}, outcomes
    with app.app_context():
        name = shipment("RR4").carrier_name
    assert name is None or (0 < len(name) <= 64 and "\x00" not in name)
