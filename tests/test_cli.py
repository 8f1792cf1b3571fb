"""`manage.py shipments` and `inbox`: the read side operators and scripts use."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lifecycle.cli import cli
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from tests.helpers import delivered, in_transit, post_push


@pytest.fixture
def two_shipments(app, client):  # type: ignore[no-untyped-def]
    post_push(client, in_transit("RR1"))
    post_push(client, delivered("RR2"))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)


def test_shipments_json_has_the_design_shape(two_shipments, run_cli):
    items = json.loads(run_cli("shipments", "--json"))["shipments"]
    assert [s["number"] for s in items] == ["RR1", "RR2"]
    second = items[1]
    assert {"provider", "number", "carrier", "status", "sub_status", "tracking", "last_event_at",
            "registered_at", "stopped_at"} <= second.keys()  # fmt: skip
    assert (second["provider"], second["carrier"], second["status"]) == ("17track", 3011, "delivered")
    assert second["tracking"] == "stopping" and second["last_event_at"] == "2026-11-03T08:00:00Z"


def test_shipments_filters(two_shipments, run_cli):
    by_status = json.loads(run_cli("shipments", "--json", "--status", "delivered"))["shipments"]
    assert [s["number"] for s in by_status] == ["RR2"]
    by_tracking = json.loads(run_cli("shipments", "--json", "--tracking", "tracking"))["shipments"]
    assert [s["number"] for s in by_tracking] == ["RR1"]
    one = json.loads(run_cli("shipments", "--json", "--number", "RR1", "--history"))["shipments"]
    assert [t["to"] for t in one[0]["transitions"]] == ["in_transit"]


def test_shipments_table_lists_each_shipment(two_shipments, run_cli):
    output = run_cli("shipments")
    assert "RR1" in output and "in_transit" in output and "delivered" in output


def test_inbox_reports_failed_rows_and_requeues_them(app, client, run_cli):
    from sqlalchemy import insert

    from lifecycle.inbox.models import InboxEvent

    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(insert(InboxEvent).values(provider="17track", body=b"{"))
    with app.app_context():
        inbox.drain(db.new_session, batch_size=10)
    report = json.loads(run_cli("inbox", "--json"))
    assert report["counts"] == {"failed": 1}
    assert "malformed JSON" in report["failed"][0]["error"]
    assert json.loads(run_cli("inbox", "--json", "--requeue-failed"))["requeued"] == 1


def test_register_command_queues_and_refuses_with_reasons(run_cli, app):

    result = CliRunner().invoke(cli, ["register", "RR123456789CN", "bad#1", "--carrier", "3011", "--json"])
    assert result.exit_code == 1  # one number was refused
    results = json.loads(result.output)["results"]
    assert [r["queued"] for r in results] == [True, False]
    listed = json.loads(run_cli("shipments", "--json"))["shipments"]
    assert [(s["number"], s["tracking"], s["carrier"]) for s in listed] == [
        ("RR123456789CN", "pending", 3011)
    ]


def test_import_command_streams_a_file_and_reports_bad_lines(run_cli, tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("number,carrier,lang,tag\nRR000000001CN,3011,,a\nnope,3011,,b\nRR000000002CN,,,c\n")
    report = json.loads(run_cli("import", str(path), "--json"))
    assert (report["rows"], report["queued"], report["refused"]) == (3, 2, 1)
    assert report["problems"][0]["line"] == 3


def test_delete_needs_yes_and_says_why(run_cli, two_shipments):

    refused = CliRunner().invoke(cli, ["delete", "RR1"])
    assert refused.exit_code == 1 and "charged again" in refused.output
    assert "queued: deletetrack" in run_cli("delete", "RR1", "--yes")
    assert "deletetrack" in run_cli("operations")
