"""The 17TRACK simulator over real HTTP: envelope, limits, per-item rules, quota, payloads, pushes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from flask import request

from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.providers.validation import parse_time
from simulators.seventeentrack import SimulatorServer, pushes
from tests.receiver import HttpReceiver, wait_until

KEY = "sim-test-key"
# Tests not about the rate limit or background progression: no 429s, no ticker, no NotFound paths.
FAST = {"rate_per_second": 1000, "step_seconds": None, "not_found_rate": 0.0}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(KEY, **FAST) as server:
        yield server


def post(sim: SimulatorServer, endpoint: str, body: Any = None, key: str = KEY) -> requests.Response:
    return requests.post(f"{sim.url}/{endpoint}", json=body, headers={"17token": key}, timeout=5)


def data(sim: SimulatorServer, endpoint: str, body: Any = None) -> dict[str, Any]:
    response = post(sim, endpoint, body)
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["code"] == 0, envelope
    return envelope["data"]


def codes(answer: dict[str, Any]) -> dict[str, int]:
    return {item["number"]: item["error"]["code"] for item in answer["rejected"]}


def quota(sim: SimulatorServer) -> dict[str, int]:
    return data(sim, "getquota", [])


class Receiver(HttpReceiver):
    """A webhook endpoint that checks the `sign` header the way the service does."""

    def __init__(self, status: int = 200) -> None:
        super().__init__("/hook")
        self.bodies: list[bytes] = []
        self.bad_signatures = 0
        self.status = status

    def _hook(self) -> tuple[str, int]:
        raw = request.get_data()
        if not st.signature_is_valid(raw, request.headers.get("sign"), KEY):
            self.bad_signatures += 1
            return "", 401
        self.bodies.append(raw)
        return "", self.status

    def events(self, number: str | None = None) -> list[st.Push]:
        parsed = [st.parse_push(body) for body in self.bodies]
        return [p for p in parsed if number is None or p.number == number]


@contextmanager
def pushing(status: int = 200, **options: Any) -> Iterator[tuple[Receiver, SimulatorServer]]:
    """A receiver, and a simulator pushing to it (FAST unless the options say otherwise)."""
    with Receiver(status) as receiver:
        with SimulatorServer(KEY, webhook_url=receiver.url, **{**FAST, **options}) as sim:
            yield receiver, sim


# --- envelope, auth, limits ---------------------------------------------------------------------


def test_wrong_key_is_401_with_the_error_envelope(sim):
    response = post(sim, "register", [{"number": "RR123456789CN"}], key="wrong")
    assert response.status_code == 401
    assert response.json() == {
        "code": -18010002,
        "data": {"errors": [{"code": -18010002, "message": "Invalid security key."}]},
    }


def test_endpoints_are_served_at_the_root_and_under_track_v2_2(sim):
    assert data(sim, "track/v2.2/register", [{"number": "RR123456789CN"}])["accepted"]
    assert data(sim, "getquota")["quota_used"] == 1
    assert [c["endpoint"] for c in sim.calls()] == ["register", "getquota"]


def test_more_than_40_items_refuse_the_whole_request(sim):
    numbers = [{"number": f"RR{i:09d}CN"} for i in range(41)]
    envelope = post(sim, "register", numbers).json()
    assert envelope["code"] == -18010014 and envelope["data"]["errors"][0]["code"] == -18010014
    assert len(data(sim, "register", numbers[:40])["accepted"]) == 40
    assert post(sim, "register", {"number": "RR1"}).json()["code"] == -18010013  # not an array


def test_the_4th_call_within_a_second_is_429_and_429s_take_no_slot():
    with SimulatorServer(KEY, step_seconds=None) as sim:
        first = post(sim, "getquota").status_code
        time.sleep(0.3)
        statuses = [first] + [post(sim, "getquota").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429, 429]
        time.sleep(max(0.0, sim.calls()[0]["at"] + 1.05 - time.time()))
        # The first call left the window; the refused ones never entered it: exactly one slot.
        assert [post(sim, "getquota").status_code for _ in range(2)] == [200, 429]
        assert [c["status"] for c in sim.calls()][-2:] == [200, 429]


def test_injected_failures_answer_the_next_calls_once_each(sim):
    sim.state.fail_next.extend([503, 500])
    assert [post(sim, "getquota").status_code for _ in range(3)] == [503, 500, 200]


# --- register and quota -------------------------------------------------------------------------


def test_register_accepts_detects_and_rejects_per_item(sim):
    sim.add_parcel("RR000000001CN", 3011)
    answer = data(
        sim,
        "register",
        [
            {"number": "RR123456789CN", "tag": "order-1"},
            {"number": "1Z999AA10123456784"},
            {"number": "9400110200881234567890"},
            {"number": "LP00123456789012"},
            {"number": "RR123456789CN", "carrier": 21051, "lang": "en"},
            {"number": "1234", "tag": "short"},
            {"number": "RR 123"},
            {"number": "RR000000001CN", "carrier": 3011},
            {"number": "ZZ123456789"},
        ],
    )
    assert [(a["number"], a["carrier"], a["origin"]) for a in answer["accepted"]] == [
        ("RR123456789CN", 3011, 1),
        ("1Z999AA10123456784", 100002, 1),
        ("9400110200881234567890", 21051, 1),
        ("LP00123456789012", 190271, 1),
        ("RR123456789CN", 21051, 2),  # same number, another carrier: another registration
    ]
    assert answer["accepted"][0] == {
        "origin": 1,
        "number": "RR123456789CN",
        "carrier": 3011,
        "email": None,
        "tag": "order-1",
        "lang": None,
    }
    assert codes(answer) == {
        "1234": -18010012,
        "RR 123": -18010012,
        "RR000000001CN": -18019901,
        "ZZ123456789": -18019903,
    }
    assert answer["rejected"][0]["error"]["message"] == "The format of '1234' is invalid."
    assert answer["rejected"][0]["tag"] == "short"


def test_quota_charges_registrations_and_translation_but_not_refusals(sim):
    data(sim, "register", [{"number": "RR000000001CN"}, {"number": "RR000000002CN", "lang": "en"}])
    data(sim, "register", [{"number": "RR000000001CN"}, {"number": "bad"}])  # both refused: free
    assert quota(sim) == {
        "quota_total": 10_000,
        "quota_used": 3,
        "quota_remain": 9_997,
        "today_used": 3,
        "max_track_daily": 10_000_000,
        "free_email_quota": 300,
        "free_email_quotaused": 0,
    }
    data(sim, "deletetrack", [{"number": "RR000000001CN"}])
    assert data(sim, "register", [{"number": "RR000000001CN"}])["accepted"]
    assert quota(sim)["quota_used"] == 4  # a deleted number registered again is charged again
    data(sim, "stoptrack", [{"number": "RR000000001CN"}])
    data(sim, "retrack", [{"number": "RR000000001CN"}])
    data(sim, "gettrackinfo", [{"number": "RR000000001CN"}])
    assert quota(sim)["quota_used"] == 4  # stop, retrack and reads are free


def test_quota_running_out_rejects_items_with_18019908():
    with SimulatorServer(KEY, quota_total=3, **FAST) as sim:
        answer = data(
            sim,
            "register",
            [
                {"number": "RR000000001CN", "lang": "en"},
                {"number": "RR000000002CN", "lang": "en"},
                {"number": "RR000000003CN"},
            ],
        )
        assert [a["number"] for a in answer["accepted"]] == ["RR000000001CN", "RR000000003CN"]
        assert codes(answer) == {"RR000000002CN": -18019908}  # needs 2, only 1 left
        assert quota(sim)["quota_remain"] == 0
        sim.state.quota_total = 4  # the operator buys more
        assert data(sim, "register", [{"number": "RR000000004CN"}])["accepted"]


def test_the_daily_limit_rejects_items_with_18019907():
    with SimulatorServer(KEY, daily_limit=2, **FAST) as sim:
        answer = data(sim, "register", [{"number": f"RR00000000{i}CN"} for i in range(3)])
        assert codes(answer) == {"RR000000002CN": -18019907}
        assert quota(sim)["today_used"] == 2 and quota(sim)["max_track_daily"] == 2


# --- stoptrack, retrack, deletetrack -------------------------------------------------------------


def test_stop_retrack_and_delete_rules(sim):
    sim.add_parcel("RR000000001CN", 3011)
    assert data(sim, "retrack", [{"number": "RR000000001CN"}])["rejected"][0]["error"]["code"] == -18019904
    assert data(sim, "stoptrack", [{"number": "RR000000001CN", "carrier": 3011}])["accepted"] == [
        {"number": "RR000000001CN", "carrier": 3011}
    ]
    assert sim.state.parcels["RR000000001CN"].tracking == "Stopped"
    assert codes(data(sim, "stoptrack", [{"number": "RR000000001CN"}])) == {"RR000000001CN": -18019906}
    assert data(sim, "retrack", [{"number": "RR000000001CN"}])["accepted"]
    data(sim, "stoptrack", [{"number": "RR000000001CN"}])
    assert codes(data(sim, "retrack", [{"number": "RR000000001CN"}])) == {"RR000000001CN": -18019905}
    assert data(sim, "deletetrack", [{"number": "RR000000001CN"}])["accepted"]
    for endpoint in ("stoptrack", "retrack", "deletetrack", "gettrackinfo"):
        assert codes(data(sim, endpoint, [{"number": "RR000000001CN"}])) == {"RR000000001CN": -18019902}


def test_a_wrong_carrier_is_not_the_registration(sim):
    sim.add_parcel("RR000000001CN", 3011)
    assert codes(data(sim, "stoptrack", [{"number": "RR000000001CN", "carrier": 21051}])) == {
        "RR000000001CN": -18019902
    }


# --- changecarrier, changeinfo -------------------------------------------------------------------


def change(sim: SimulatorServer, old: int, new: int, number: str = "RR000000001CN") -> dict[str, Any]:
    return data(sim, "changecarrier", [{"number": number, "carrier_old": old, "carrier_new": new}])


def test_changecarrier_rules(sim):
    sim.add_parcel("RR000000001CN", 3011)
    assert codes(change(sim, 3011, 21051)) == {"RR000000001CN": -18019808}  # no result yet
    sim.advance()
    assert codes(change(sim, 190271, 21051)) == {"RR000000001CN": -18019805}  # carrier_old wrong
    assert codes(change(sim, 3011, 3011)) == {"RR000000001CN": -18019803}
    carriers = [3011, 21051, 190271, 21051, 190271, 3011]
    for old, new in zip(carriers, carriers[1:], strict=False):
        assert change(sim, old, new)["accepted"][0]["carrier"] == new
    assert codes(change(sim, 3011, 21051)) == {"RR000000001CN": -18019807}  # the 6th change
    assert sim.state.parcels[("RR000000001CN", 3011)].carrier_changes == 5
    sim.add_parcel("RR000000002CN", 3011, tracking="Stopped")
    assert codes(change(sim, 3011, 21051, "RR000000002CN")) == {"RR000000002CN": -18019806}


def test_changeinfo_charges_a_first_lang_only(sim):
    data(sim, "register", [{"number": "RR000000001CN"}])
    data(sim, "changeinfo", [{"number": "RR000000001CN", "lang": "en", "tag": "a"}])
    assert quota(sim)["quota_used"] == 2
    nested = {"number": "RR000000001CN", "carrier": 3011, "items": {"lang": "de", "tag": "b"}}
    assert data(sim, "changeinfo", [nested])["accepted"][0]["lang"] == "de"
    assert quota(sim)["quota_used"] == 2  # switching language is free
    assert data(sim, "gettrackinfo", [{"number": "RR000000001CN"}])["accepted"][0]["tag"] == "b"
    assert codes(data(sim, "changeinfo", [{"number": "RR000000001CN"}])) == {"RR000000001CN": -18019811}


# --- gettrackinfo, gettracklist ------------------------------------------------------------------


def test_gettrackinfo_is_a_push_shaped_item_the_service_can_parse(sim):
    data(sim, "register", [{"number": "RR123456789CN", "tag": "order-7"}])
    sim.advance(steps=3)
    item = data(sim, "gettrackinfo", [{"number": "RR123456789CN"}])["accepted"][0]
    assert set(item) == {"number", "carrier", "param", "tag", "track_info"}
    info = item["track_info"]
    events = info["tracking"]["providers"][0]["events"]
    assert [e["stage"] for e in events] == ["Departure", "PickedUp", "InfoReceived"]  # newest first
    assert [m["key_stage"] for m in info["milestone"]][:3] == ["InfoReceived", "PickedUp", "Departure"]
    assert len(info["milestone"]) == 9 and info["milestone"][3]["time_utc"] is None
    assert info["latest_event"] == events[0]
    assert info["latest_event"]["time_utc"].endswith("Z") and info["latest_event"]["time_iso"].endswith(
        "+08:00"
    )
    assert {"days_after_order", "days_of_transit", "estimated_delivery_date"} <= set(info["time_metrics"])
    parsed = st.parse_push(pushes.encode({"event": "TRACKING_UPDATED", "data": item}))
    assert (parsed.status, parsed.sub_status, parsed.tag) == ("in_transit", "InTransit_Departure", "order-7")
    assert parsed.event_time == parse_time(events[0]["time_utc"], ValueError)


def test_gettracklist_pages_by_40_and_filters(sim):
    numbers = [f"RR{i:09d}CN" for i in range(45)]
    data(sim, "register", [{"number": n} for n in numbers[:40]])
    data(sim, "register", [{"number": n} for n in numbers[40:]])
    data(sim, "stoptrack", [{"number": numbers[0]}])
    first = post(sim, "gettracklist", {"page_no": 1}).json()
    assert first["page"] == {"data_total": 45, "page_total": 2, "page_no": 1, "page_size": 40}
    assert len(first["data"]["accepted"]) == 40
    second = post(sim, "gettracklist", {"page_no": 2}).json()
    assert [i["number"] for i in second["data"]["accepted"]] == numbers[40:]
    entry = first["data"]["accepted"][0]
    assert {
        "number",
        "carrier",
        "tracking_status",
        "package_status",
        "register_time",
        "tag",
        "lang",
        "is_retracked",
        "carrier_change_count",
        "latest_event_time",
    } <= set(entry)
    assert (entry["tracking_status"], entry["package_status"]) == ("Stopped", "NotFound")
    chosen = post(
        sim, "gettracklist", {"number": f"{numbers[0]},{numbers[1]}", "tracking_status": "Tracking"}
    )
    assert [i["number"] for i in chosen.json()["data"]["accepted"]] == [numbers[1]]
    assert post(sim, "gettracklist", [{"page_no": 1}]).json()["code"] == -18010013


# --- progression and pushes ----------------------------------------------------------------------


def test_progression_pushes_signed_updates_with_duplicates():
    with pushing(duplicate_rate=1.0, exception_rate=0.0, auto_stop_steps=1) as (receiver, sim):
        sim.add_parcel("RR123456789CN", 3011)
        sim.advance(steps=8)
        assert sim.wait_for_pushes()
        assert receiver.bad_signatures == 0
        unique = list(dict.fromkeys(receiver.bodies))  # first arrivals, in order
        assert all(receiver.bodies.count(body) == 2 for body in unique)  # every push delivered twice
        events = [st.parse_push(body) for body in unique]
        updates = [e for e in events if e.event == "TRACKING_UPDATED"]
        assert updates[0].status == "info_received" and updates[-1].status == "delivered"
        times = [e.event_time for e in updates]
        assert times == sorted(times) and len(set(times)) == len(times)  # strictly increasing
        assert events[-1].event == "TRACKING_STOPPED"
        assert sim.state.parcels["RR123456789CN"].tracking == "Stopped"
        log = sim.pushes()
        assert len(log) == 2 * len(unique) and all(p["status"] == 200 for p in log)
        assert sum(p["duplicate"] for p in log) == len(unique)


def test_background_steps_push_until_stoptrack_silences_the_parcel():
    with pushing(step_seconds=0.05) as (receiver, sim):
        data(sim, "register", [{"number": "RR123456789CN"}])
        wait_until(lambda: len(receiver.bodies) >= 2)
        data(sim, "stoptrack", [{"number": "RR123456789CN"}])
        sim.wait_for_pushes()
        seen = len(receiver.bodies)
        time.sleep(0.2)  # four more steps: a stopped parcel neither moves nor pushes
        assert len(receiver.bodies) == seen


def test_reordering_delivers_an_older_push_after_a_newer_one():
    with pushing(reorder_rate=1.0, exception_rate=0.0, auto_stop_steps=None) as (receiver, sim):
        sim.add_parcel("RR123456789CN", 3011)
        sim.advance(steps=2)
        assert sim.wait_for_pushes()
        statuses = [e.status for e in receiver.events()]
        assert statuses == ["in_transit", "info_received"]
        assert [p["reordered"] for p in sim.pushes()] == [False, True]


def test_failed_pushes_are_recorded_and_retried():
    with pushing(status=500, retry_seconds=(0.05,)) as (_receiver, sim):
        sim.add_parcel("RR123456789CN", 3011)
        sim.advance()
        wait_until(lambda: len(sim.pushes()) == 2)
        assert [(p["attempt"], p["status"]) for p in sim.pushes()] == [(1, 500), (2, 500)]
        listed = post(sim, "gettracklist", {}).json()["data"]["accepted"][0]
        assert (listed["push_status"], listed["push_status_code"]) == ("Failure", 500)


def test_push_endpoint_replays_current_data(sim):
    sim.add_parcel("RR123456789CN", 3011)
    envelope = post(sim, "push", [{"number": "RR123456789CN"}]).json()
    assert envelope["code"] == -18010204
    with Receiver() as receiver:
        sim.set_webhook(receiver.url)
        answer = data(sim, "push", [{"number": "RR123456789CN"}, {"number": "RR000000000CN"}])
        assert answer["accepted"] == [{"number": "RR123456789CN", "carrier": 3011}]
        assert codes(answer) == {"RR000000000CN": -18019902}
        assert [e.status for e in receiver.events()] == ["not_found"]


# --- control API and compatibility ---------------------------------------------------------------


def test_control_api_seeds_advances_and_reports(sim):
    requests.post(f"{sim.url}/_sim/parcels", json={"number": "RR1", "carrier": 3011}, timeout=5)
    assert requests.post(f"{sim.url}/_sim/advance", json={"steps": 2}, timeout=5).json() == {"pushes": 2}
    parcels = requests.get(f"{sim.url}/_sim/parcels", timeout=5).json()["parcels"]
    assert [(p["number"], p["step"], p["sub_status"]) for p in parcels] == [("RR1", 2, "InTransit_PickedUp")]
    post(sim, "stoptrack", [{"number": "RR1"}])
    calls = requests.get(f"{sim.url}/_sim/calls", timeout=5).json()["calls"]
    assert [(c["endpoint"], c["items"], c["status"]) for c in calls] == [("stoptrack", 1, 200)]
    del sim.state.parcels["RR1"]
    assert "RR1" not in sim.state.parcels and len(sim.state.parcels) == 0


def test_module_push_signs_like_17track():
    with Receiver() as receiver:
        payload = pushes.tracking_stopped("RR123456789CN", 3011)
        from simulators.seventeentrack import push

        assert push(receiver.url, KEY, payload).status_code == 200
        assert json.loads(receiver.bodies[0]) == payload and receiver.bad_signatures == 0
