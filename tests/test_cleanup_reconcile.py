"""Daily reconcile: gettracklist and getquota compared with ours; the result kept, alerts raised once."""

from __future__ import annotations

from typing import Any

import time_machine
from pydantic import SecretStr

from lifecycle import runtime
from tests.cleanup_helpers import NOW, add_shipment, alerts, run, runs


class FakeSeventeenTrack:
    """gettracklist in pages of two, and getquota, as 17TRACK answers them."""

    def __init__(self, numbers: dict[tuple[str, int], str], quota_used: int = 0) -> None:
        self.numbers, self.quota_used = numbers, quota_used

    def call_envelope(self, endpoint: str, body: Any) -> dict[str, Any]:
        assert endpoint == "gettracklist"
        items = sorted(self.numbers.items())
        start = (body["page_no"] - 1) * 2
        page = [{"number": n, "carrier": c, "tracking_status": s} for (n, c), s in items[start : start + 2]]
        return {"code": 0, "data": {"accepted": page}, "page": {"page_total": (len(items) + 1) // 2}}

    def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        assert endpoint == "getquota"
        return {"quota_total": 100, "quota_used": self.quota_used, "quota_remain": 100 - self.quota_used}


def reconcile(app, fake: FakeSeventeenTrack, **settings: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    collaborators = {"client17": lambda: fake, "account17": lambda: runtime.account("17track")}
    with time_machine.travel(NOW, tick=False):
        return run(app, "reconcile", collaborators=collaborators, **settings)


def test_list_gaps_are_counted_stored_and_alerted_once(app):
    with app.app_context():
        add_shipment("SAME")
        add_shipment("ONLY-HERE")
        add_shipment("MISMATCH", status="delivered", tracking="stopped")
        add_shipment("STOPPED-LONG-AGO", tracking="deleted")
    fake = FakeSeventeenTrack({("SAME", 3011): "Tracking", ("MISMATCH", 3011): "Tracking",
                               ("ORPHAN", 190): "Tracking"})  # fmt: skip
    counts = reconcile(app, fake, cleanup_batch_size=2)
    assert (counts["provider_count"], counts["local_count"]) == (3, 3)
    assert (counts["only_at_provider"], counts["only_here"], counts["state_mismatch"]) == (1, 1, 1)
    assert counts["only_at_provider_examples"] == [{"number": "ORPHAN", "carrier": 190, "status": "Tracking"}]
    assert counts["state_mismatch_examples"][0]["at_17track"] == "Tracking"
    assert runs("reconcile")[-1].counts["only_here"] == 1
    reconcile(app, fake)
    (alert,) = alerts("reconcile")
    assert "1 only at 17TRACK, 1 only here, 1 in another state" in alert.message


def test_quota_drift_alerts_once_resolves_and_alerts_again_when_it_comes_back(app):
    fake = FakeSeventeenTrack({}, quota_used=0)
    assert reconcile(app, fake)["drift"] == {"ours": 0, "theirs": 0, "difference": 0}
    assert alerts() == []
    fake.quota_used = 3
    first = reconcile(app, fake)
    second = reconcile(app, fake)
    assert first["drift"]["difference"] == 3 and first["alerts_raised"] == 1
    assert second.get("alerts_raised", 0) == 0 and len(alerts()) == 1
    fake.quota_used = 0
    assert reconcile(app, fake)["alerts_resolved"] == 1
    fake.quota_used = 2
    reconcile(app, fake)
    history = alerts()
    assert len(history) == 2 and history[0].resolved_at is not None and history[1].resolved_at is None
    assert "17TRACK counts 2 units, our ledger 0 (+2)" in history[1].message


def test_a_dry_run_compares_but_records_no_alert_and_no_snapshot(app):
    from lifecycle.extensions import db
    from lifecycle.operations.models import ServiceState

    fake = FakeSeventeenTrack({("ORPHAN", 190): "Tracking"}, quota_used=5)
    with time_machine.travel(NOW, tick=False):
        collaborators = {"client17": lambda: fake, "account17": lambda: runtime.account("17track")}
        counts = run(app, "reconcile", dry_run=True, collaborators=collaborators)
    assert counts["only_at_provider"] == 1 and counts["drift"]["difference"] == 5
    assert alerts() == []
    with db.new_session() as session:
        assert session.get(ServiceState, "getquota:17track") is None


def test_without_an_api_key_the_job_says_so(app):
    counts = reconcile(app, FakeSeventeenTrack({}), seventeentrack_api_key=SecretStr(""))
    assert counts == {"skipped": "no 17TRACK API key"}


class SlowSeventeenTrack(FakeSeventeenTrack):
    """Each gettracklist page takes `seconds` on the job's clock (3 requests/s, a large account)."""

    def __init__(self, numbers: dict[tuple[str, int], str], seconds: float) -> None:
        super().__init__(numbers)
        self.now, self.seconds, self.pages = 0.0, seconds, []

    def clock(self) -> float:
        return self.now

    def call_envelope(self, endpoint: str, body: Any) -> dict[str, Any]:
        self.now += self.seconds
        self.pages.append(body["page_no"])
        return super().call_envelope(endpoint, body)


def test_a_list_longer_than_the_time_budget_stops_early_and_the_next_run_continues(app):
    numbers = {(f"RR{i}", 3011): "Tracking" for i in range(9)} | {("ORPHAN", 190): "Tracking"}
    with app.app_context():
        for i in range(9):
            add_shipment(f"RR{i}", status="delivered" if i == 4 else "in_transit")
        add_shipment("ONLY-HERE")
    fake = SlowSeventeenTrack(numbers, seconds=4.0)  # 5 pages of 2; 10 s allowed per run
    collaborators = {"client17": lambda: fake, "account17": lambda: None}

    def reconcile_run() -> dict[str, Any]:
        with time_machine.travel(NOW, tick=False):
            return run(
                app, "reconcile", collaborators=collaborators, clock=fake.clock, cleanup_max_seconds=10
            )

    first = reconcile_run()
    assert fake.pages == [1, 2, 3] and first["more"] is True
    assert "continues from page 4" in first["stopped_early"] and first["list_pass"]["provider_count"] == 6
    assert "only_here" not in first and alerts() == []  # half a list cannot tell what is missing
    assert runs("reconcile")[-1].error is None
    second = reconcile_run()
    assert fake.pages == [1, 2, 3, 4, 5] and "stopped_early" not in second and "list_pass" not in second
    assert (second["provider_count"], second["local_count"], second["list_pass_runs"]) == (10, 10, 2)
    assert (second["only_at_provider"], second["only_here"], second["state_mismatch"]) == (1, 1, 0)
    (alert,) = alerts("reconcile")
    assert "1 only at 17TRACK, 1 only here, 0 in another state" in alert.message
    third = reconcile_run()  # a new pass from page 1
    assert fake.pages[5:8] == [1, 2, 3] and third["list_pass"]["runs"] == 1
