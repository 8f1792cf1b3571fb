"""The admin page for outbound endpoints: add (secret shown once), disable/enable, replay, remove."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.outbound.models import Delivery, Endpoint
from tests.admin_support import csrf
from tests.helpers import in_transit, post_push


def _post(client, path: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(
        path, data={"csrf_token": csrf(client, "/admin/endpoints"), **data}, follow_redirects=True
    )


def _deliveries(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


def test_add_shows_the_secret_once_then_switch_replay_and_remove(app, client):
    page = _post(client, "/admin/endpoints", url="http://127.0.0.1:9/hook", events="delivered, in_transit")
    html = page.get_data(as_text=True)
    secret = re.search(r'id="new-secret">(whsec_[^<]+)<', html)
    assert secret and "delivered, in_transit" in html
    with app.app_context(), db.new_session() as session:
        endpoint = session.scalars(select(Endpoint)).one()
        assert (endpoint.secret, endpoint.events) == (secret.group(1), ["delivered", "in_transit"])
    assert secret.group(1) not in client.get("/admin/endpoints").get_data(as_text=True)

    disabled = _post(client, f"/admin/endpoints/{endpoint.id}/disable").get_data(as_text=True)
    assert "disabled: disabled by an operator" in disabled
    refused = _post(client, f"/admin/endpoints/{endpoint.id}/replay", hours="24").get_data(as_text=True)
    assert "is disabled" in refused
    _post(client, f"/admin/endpoints/{endpoint.id}/enable")

    post_push(client, in_transit("RR1"))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
    assert _deliveries(app) == 1
    replayed = _post(client, f"/admin/endpoints/{endpoint.id}/replay", hours="24").get_data(as_text=True)
    assert "1 event(s) of the last 24 hours queued again" in replayed and _deliveries(app) == 2
    bad = _post(client, f"/admin/endpoints/{endpoint.id}/replay", hours="soon").get_data(as_text=True)
    assert "hours must be a number" in bad

    removed = _post(client, f"/admin/endpoints/{endpoint.id}/remove").get_data(as_text=True)
    assert f"Endpoint {endpoint.id} removed" in removed and _deliveries(app) == 0


def test_a_bad_url_or_event_is_refused_with_the_reason(client):
    html = _post(client, "/admin/endpoints", url="ftp://example.com/x").get_data(as_text=True)
    assert "Not added: not an http(s) URL" in html
    html = _post(client, "/admin/endpoints", url="http://127.0.0.1:9/x", events="teleported").get_data(
        as_text=True
    )
    assert "Not added: unknown event types teleported" in html


def test_actions_need_the_csrf_token(client):
    assert client.post("/admin/endpoints/1/disable").status_code == 400


texts = st.text(max_size=300)  # lone surrogates included: a browser can send anything


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=texts, events=texts, hours=texts)
def test_any_form_input_gets_a_page_never_a_500(client, url, events, hours):
    added = _post(client, "/admin/endpoints", url=url, events=events)
    assert added.status_code in (200, 400), added.status_code
    replayed = _post(client, "/admin/endpoints/1/replay", hours=hours)
    assert replayed.status_code in (200, 400), replayed.status_code
