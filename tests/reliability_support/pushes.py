"""Signed 17TRACK pushes for the reliability tests: each number's timeline, the order they are
posted in, and a poster that keeps every answer.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.conftest import API_KEY

CARRIER = 3011
# Each number's pushes as main/sub status, by number index % 5: three of five end delivered.
_START = ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp"]
SEQUENCES = [_START + ["OutForDelivery/OutForDelivery_Other", "Delivered/Delivered_Other"]] * 3 + [
    _START + ["InTransit/InTransit_Departure", "OutForDelivery/OutForDelivery_Other"],
    _START + ["InTransit/InTransit_Departure", "InTransit/InTransit_Arrival"],
]
STEPS = 4


@dataclass(frozen=True)
class Push:
    number: str
    event_time: datetime  # naive UTC, as the database stores it
    status: str
    body: bytes

    @property
    def key(self) -> tuple[str, datetime]:
        return self.number, self.event_time


@dataclass
class Plan:
    """Pushes for some numbers, 4 each (rising event times), and what each number must end as."""

    pushes: list[Push]
    final: dict[str, tuple[str, datetime]]

    @property
    def delivered(self) -> set[str]:
        return {number for number, (status, _) in self.final.items() if status == "delivered"}


def plan_pushes(prefix: str, count: int, order: str = "rounds", seed: int = 7) -> Plan:
    """`count` signed pushes over count/4 numbers. `rounds`: every number's 1st push, then every
    2nd, ..., shuffled within a round; `shuffled`: all of them in random order."""
    rng, base = random.Random(seed), datetime(2026, 3, 1)
    numbers = [f"{prefix}{j:07d}" for j in range(count // STEPS)]
    rounds: list[list[Push]] = [[] for _ in range(STEPS)]
    final: dict[str, tuple[str, datetime]] = {}
    for j, number in enumerate(numbers):
        for step in range(STEPS):
            main, sub = SEQUENCES[j % 5][step].split("/")
            when = base + timedelta(seconds=j, hours=step)
            body = pushes.encode(
                pushes.tracking_updated(number, CARRIER, main, sub, when.replace(tzinfo=UTC))
            )
            status = st.map_status(main, sub)[0] or ""
            rounds[step].append(Push(number, when, status, body))
            final[number] = (status, when)
    for round_ in rounds:
        rng.shuffle(round_)
    ordered = [push for round_ in rounds for push in round_]
    if order == "shuffled":
        rng.shuffle(ordered)
    return Plan(ordered, final)


class Poster:
    """Posts signed pushes concurrently, as 17TRACK's delivery does; remembers every answer."""

    def __init__(self, base_url: str, threads: int = 16, timeout: float = 30.0) -> None:
        self.url = f"{base_url}/webhooks/17track"
        self.threads, self.timeout = threads, timeout
        self.answers: list[tuple[Push, int | str, float, float]] = []  # push, status, sent, answered
        self._local = threading.local()

    def post(self, push: Push) -> int | str:
        return self.post_for_id(push)[0]

    def _session(self) -> requests.Session:
        """One kept-alive connection per posting thread, as a provider's delivery workers hold."""
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def post_for_id(self, push: Push) -> tuple[int | str, int | None]:
        """The answer's status (or the client error's name) and, once stored, the inbox id."""
        started, inbox_id = time.monotonic(), None
        headers = {"sign": st.sign(push.body, API_KEY), "Content-Type": "application/json"}
        try:
            response = self._session().post(self.url, data=push.body, headers=headers, timeout=self.timeout)
            status: int | str = response.status_code
            if status == 200:
                inbox_id = response.json()["inbox_id"]
        except requests.RequestException as exc:
            status = exc.__class__.__name__
        self.answers.append((push, status, started, time.monotonic()))
        return status, inbox_id

    def post_all(self, items: list[Push]) -> list[int | str]:
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(self.post, items))

    def acknowledged(self) -> set[tuple[str, datetime]]:
        return {push.key for push, status, _, _ in self.answers if status == 200}
