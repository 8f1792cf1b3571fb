"""The CargoAi simulator over real HTTP: auth, validation, billing, pull, progression, callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from flask import request

from simulators.cargoai import CargoAiSimulatorServer, awb_check_digit_ok, sign_callback
from tests.receiver import HttpReceiver, wait_until

KEY = "cargoai-test-key"
AWB, OTHER = "000-12345675", "176-12345675"
# No ticker, plain direct routes unless a test asks for variations.
FAST = {"step_seconds": None, "interline_rate": 0.0, "rebook_rate": 0.0, "foh_rate": 0.0}
DIRECT = ["BKD", "RCS", "MAN", "DEP", "ARR", "RCF", "NFD", "DLV"]
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


@pytest.fixture
def sim() -> Iterator[CargoAiSimulatorServer]:
    with CargoAiSimulatorServer(KEY, **FAST) as server:
        yield server


def subscribe(sim: CargoAiSimulatorServer, body: Any, key: str = KEY, path: str = "track/subscribe"):
    return requests.post(f"{sim.url}/{path}", json=body, headers={"x-api-key": key}, timeout=5)


def unsubscribe(sim: CargoAiSimulatorServer, body: Any) -> requests.Response:
    return subscribe(sim, body, path="track/unsubscribe")


def pull(sim: CargoAiSimulatorServer, awb: str, key: str = KEY) -> requests.Response:
    return requests.get(f"{sim.url}/track", params={"awb": awb}, headers={"x-api-key": key}, timeout=5)


def codes(events: list[dict[str, Any]]) -> list[str]:
    return [event["code"] for event in events]


class Receiver(HttpReceiver):
    """A callback endpoint that keeps every raw body with its headers."""

    def __init__(self) -> None:
        super().__init__("/cb")
        self.received: list[tuple[bytes, dict[str, str]]] = []

    def _hook(self) -> tuple[str, int]:
        self.received.append((request.get_data(), dict(request.headers)))
        return "", 200

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.received]


@contextmanager
def calling_back(**options: Any) -> Iterator[tuple[Receiver, CargoAiSimulatorServer]]:
    with Receiver() as receiver, CargoAiSimulatorServer(KEY, **{**FAST, **options}) as sim:
        yield receiver, sim


# --- auth, validation, billing --------------------------------------------------------------------


def test_a_missing_or_wrong_key_is_401_and_not_billed(sim):
    for key in ("", "wrong"):
        response = subscribe(sim, {"awb": AWB, "url": "https://x.example/cb"}, key=key)
        assert (response.status_code, response.json()) == (401, {"status": 401, "error": "unauthorized"})
    assert pull(sim, AWB, key="wrong").status_code == 401
    assert [c["status"] for c in sim.calls()] == [401, 401, 401]
    assert sim.billable() == {"subscriptions": 0, "pull_calls": 0} and sim.subscriptions() == []


@pytest.mark.parametrize(
    "body",
    [
        {"awb": AWB},  # neither url nor emails
        {"awb": AWB, "emails": []},
        {"awb": AWB, "emails": [f"u{i}@x.example" for i in range(6)]},  # more than five
        {"awb": AWB, "url": "not a url"},
        {"awb": "000-12345676", "url": "https://x.example/cb"},  # check digit: 1234567 % 7 == 5
        {"awb": "020-12345678", "url": "https://x.example/cb"},  # ends in 8: never valid
        {"awb": "000-01234567", "url": "https://x.example/cb"},  # CargoAi's own doc example
        {"awb": "00012345675", "url": "https://x.example/cb"},  # no hyphen
        {"awb": "000-1234567", "url": "https://x.example/cb"},
        {"awb": AWB, "url": "https://x.example/cb", "airlineCode": "lufthansa"},
        ["not", "an", "object"],
    ],
)
def test_invalid_subscriptions_are_400_invalid_body(sim, body):
    response = subscribe(sim, body)
    assert (response.status_code, response.json()) == (400, {"status": 400, "error": "invalid body"})
    assert sim.billable()["subscriptions"] == 0


def test_subscribe_by_url_emails_or_both_under_either_base_path(sim):
    ok = {"status": 200, "message": "successfully subscribed"}
    assert subscribe(sim, {"awb": AWB, "url": "https://x.example/cb"}).json() == ok
    emails = {"awb": OTHER, "emails": ["ops@x.example"]}
    assert subscribe(sim, emails, path="solutions/track/subscribe").json() == ok
    both = {"awb": "020-17363006", "url": "https://x.example/cb", "emails": ["a@x.example"]}
    assert subscribe(sim, both | {"airlineCode": "LH"}).json() == ok
    assert [s["awb"] for s in sim.subscriptions() if s["active"]] == [AWB, OTHER, "020-17363006"]


def test_unhyphenated_awbs_only_when_enabled_and_limited_airlines_get_the_variant_message():
    with CargoAiSimulatorServer(KEY, accept_unhyphenated=True, limited_prefixes={"176"}, **FAST) as sim:
        assert subscribe(sim, {"awb": "00012345675", "url": "https://x.example/cb"}).status_code == 200
        assert sim.subscriptions()[0]["awb"] == AWB  # stored in the canonical form
        message = subscribe(sim, {"awb": OTHER, "url": "https://x.example/cb"}).json()["message"]
        assert message.startswith("successfully subscribed - This airline is not fully supported")


def test_check_digit_helper_matches_the_reference_vectors():
    valid = ["000-11223343", "000-99999970", "020-17363006", "057-06399886", "17612345675"]
    invalid = ["000-01234567", "020-12345678", "176-98765432", "000-1234567", "ABC-12345675"]
    assert all(awb_check_digit_ok(awb) for awb in valid)
    assert not any(awb_check_digit_ok(awb) for awb in invalid)


def test_every_subscription_is_billed_even_a_repeat_which_renews_it(sim):
    body = {"awb": AWB, "url": "https://x.example/cb"}
    assert subscribe(sim, body).status_code == 200
    first = sim.subscriptions()[0]["expires"]
    sim.advance()
    assert subscribe(sim, body).status_code == 200
    assert sim.billable() == {"subscriptions": 2, "pull_calls": 0}
    [sub] = sim.subscriptions()
    assert sub["refreshes"] == 1 and sub["expires"] > first
    assert [c["billable"] for c in sim.calls("subscribe")] == [True, True]


def test_unsubscribe_is_200_then_404_and_never_billed(sim):
    subscribe(sim, {"awb": AWB, "url": "https://x.example/cb"})
    response = unsubscribe(sim, {"awb": AWB, "url": "https://x.example/cb"})
    assert response.json() == {"status": 200, "message": "successfully unsubscribed"}
    again = unsubscribe(sim, {"awb": AWB, "url": "https://x.example/cb"})
    expected = {"status": 404, "error": "No active subscription found for the given AWB/target"}
    assert (again.status_code, again.json()) == (404, expected)
    assert unsubscribe(sim, {"awb": "000-12345676"}).status_code == 400
    assert sim.subscriptions()[0]["ended"] == "unsubscribed"
    assert sim.billable()["subscriptions"] == 1


def test_unsubscribing_one_target_keeps_the_others(sim):
    subscribe(sim, {"awb": AWB, "url": "https://x.example/cb", "emails": ["a@x.example", "b@x.example"]})
    assert unsubscribe(sim, {"awb": AWB, "email": "a@x.example"}).status_code == 200
    assert unsubscribe(sim, {"awb": AWB, "url": "https://x.example/cb"}).status_code == 200
    [sub] = sim.subscriptions()
    assert (sub["active"], sub["url"], sub["emails"]) == (True, None, ["b@x.example"])
    assert unsubscribe(sim, {"awb": AWB}).status_code == 200  # no target named: all of them
    assert not sim.subscriptions()[0]["active"]


# --- pull and progression -------------------------------------------------------------------------


def test_pull_returns_the_progressing_tracking_object_and_each_call_is_billed(sim):
    first = pull(sim, AWB).json()  # never subscribed: the real API tracks any AWB too
    assert set(first) == {"awb", "origin", "destination", "weight", "pieces", "events"}
    assert first["awb"] == AWB and codes(first["events"]) == ["BKD"]
    sim.advance(3)
    assert codes(pull(sim, AWB).json()["events"]) == DIRECT[:4]
    sim.advance(10)
    final = pull(sim, AWB).json()
    assert codes(final["events"]) == DIRECT
    assert sim.billable() == {"subscriptions": 0, "pull_calls": 3}
    assert isinstance(final["weight"], str) and isinstance(final["pieces"], str)
    for event in final["events"][1:]:
        assert LOCAL_TIME.fullmatch(event["eventDate"]) and event["isPlanned"] is False
        assert isinstance(event["weight"], str) and isinstance(event["pieces"], str)
    departed = final["events"][3]["flight"]
    assert departed["origin"] == final["origin"] and LOCAL_TIME.fullmatch(departed["actualDeparture"])
    assert pull(sim, "000-12345676").status_code == 400


def test_injected_faults_come_first_then_normal_answers():
    with CargoAiSimulatorServer(KEY, latency_seconds=0.1, **FAST) as sim:
        sim.fail_next(500)
        requests.post(f"{sim.url}/_sim/fail_next", json={"statuses": [503]}, timeout=5)
        started = time.monotonic()
        statuses = [pull(sim, AWB).status_code for _ in range(3)]
        assert statuses == [500, 503, 200] and time.monotonic() - started >= 0.3
        assert sim.billable()["pull_calls"] == 1


def test_interline_and_rebooked_routes():
    every_variation = {"interline_rate": 1.0, "rebook_rate": 1.0, "foh_rate": 1.0}
    with CargoAiSimulatorServer(KEY, step_seconds=None, **every_variation) as sim:
        pull(sim, AWB)
        sim.advance(20)
        events = sim.events(AWB)
    assert codes(events) == ["BKD", "FOH", "RCS", "BKD", *DIRECT[2:6], "TFD", "RCT", *DIRECT[2:]]
    first, rebooked = (e["flight"] for e in events if e["code"] == "BKD")
    assert first["number"] != rebooked["number"]  # the second BKD changed the flight
    legs = {e["flight"]["number"] for e in events if e["code"] == "DEP"}
    assert rebooked["number"] in legs and len({number[:2] for number in legs}) == 2  # two carriers


# --- callbacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "options", "check"),
    [
        ("hmac", {}, lambda body, h: hmac.compare_digest(h["Cargoai-Api-Key"], expected_hmac(body))),
        ("bearer", {"bearer_token": "tok"}, lambda body, h: h["Authorization"] == "Bearer tok"),
        ("basic", {"basic_user": "u", "basic_password": "p"}, lambda body, h: basic(h) == "u:p"),
        ("none", {}, lambda body, h: "Authorization" not in h and "Cargoai-Api-Key" not in h),
    ],
)
def test_callbacks_carry_old_new_and_all_events_with_the_configured_auth(auth, options, check):
    with calling_back(callback_auth=auth, **options) as (receiver, sim):
        subscribe(sim, {"awb": AWB, "url": receiver.url})
        sim.advance(2)
        assert sim.wait_for_callbacks()
        assert all(check(body, headers) for body, headers in receiver.received)
        first, second = receiver.payloads()
        assert (codes(first["oldEvents"]), codes(first["newEvents"])) == ([], ["BKD", "RCS"])
        assert (codes(second["oldEvents"]), codes(second["newEvents"])) == (["BKD", "RCS"], ["MAN"])
        assert codes(second["events"]) == DIRECT[:3] and second["awb"] == AWB
        logged = [(c["status"], c["new_events"], c["auth"]) for c in sim.callbacks(AWB)]
        assert logged == [(200, ["BKD", "RCS"], auth), (200, ["MAN"], auth)]


def expected_hmac(body: bytes) -> str:
    digest = hmac.new(KEY.encode(), body, hashlib.sha256).digest()
    assert sign_callback(body, KEY) == base64.b64encode(digest).decode()
    return base64.b64encode(digest).decode()


def basic(headers: dict[str, str]) -> str:
    scheme, value = headers["Authorization"].split(" ")
    return base64.b64decode(value).decode() if scheme == "Basic" else ""


def test_duplicate_rate_one_posts_every_callback_twice():
    with calling_back(duplicate_rate=1.0) as (receiver, sim):
        subscribe(sim, {"awb": AWB, "url": receiver.url})
        sim.advance(2)
        assert sim.wait_for_callbacks()
        bodies = [body for body, _ in receiver.received]
        assert len(bodies) == 4 and len(set(bodies)) == 2
        assert sorted(c["duplicate"] for c in sim.callbacks()) == [False, False, True, True]


def test_no_callbacks_after_unsubscribe_not_even_queued_ones():
    with calling_back(delay_seconds=0.3) as (receiver, sim):
        subscribe(sim, {"awb": AWB, "url": receiver.url})
        assert sim.advance() == 1  # queued, delayed
        unsubscribe(sim, {"awb": AWB, "url": receiver.url})
        assert sim.advance(3) == 0
        assert sim.wait_for_callbacks()
        assert receiver.received == [] and sim.callbacks() == []


def test_subscriptions_expire_after_three_simulated_weeks():
    with calling_back(step_hours=24 * 7) as (receiver, sim):  # one simulated week per step
        subscribe(sim, {"awb": AWB, "url": receiver.url})
        assert [sim.advance() for _ in range(4)] == [1, 1, 0, 0]
        assert sim.wait_for_callbacks() and len(receiver.received) == 2
        assert sim.subscriptions()[0]["ended"] == "expired"
        assert codes(sim.events(AWB)) == DIRECT[:5]  # the shipment moved on regardless
        subscribe(sim, {"awb": AWB, "url": receiver.url})  # a new (billed) subscription
        sim.advance()
        assert sim.wait_for_callbacks()
        assert codes(receiver.payloads()[-1]["newEvents"]) == DIRECT[:6]  # all new to it
        assert sim.billable()["subscriptions"] == 2


def test_the_ticker_advances_in_the_background_and_the_control_api_reports():
    with calling_back(step_seconds=0.05) as (receiver, sim):
        subscribe(sim, {"awb": AWB, "url": receiver.url})
        wait_until(lambda: "DLV" in codes(sim.events(AWB)))
        wait_until(lambda: sim.callbacks() and codes(receiver.payloads()[-1]["events"]) == DIRECT)
        billable = requests.get(f"{sim.url}/_sim/billable", timeout=5).json()
        assert billable == {"subscriptions": 1, "pull_calls": 0}
        clock = requests.get(f"{sim.url}/_sim/clock", timeout=5).json()["clock"]
        tracking = requests.get(f"{sim.url}/_sim/tracking", params={"awb": AWB}, timeout=5).json()
        assert tracking["finished"] and tracking["kind"] == "direct"
        subs = requests.get(f"{sim.url}/_sim/subscriptions", params={"awb": AWB}, timeout=5).json()
        assert subs["subscriptions"][0]["sent"] == len(DIRECT)
        advanced = requests.post(f"{sim.url}/_sim/advance", json={"steps": 2}, timeout=5).json()
        assert advanced["callbacks"] == 0 and advanced["clock"] > clock
