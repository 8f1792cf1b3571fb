"""Sending claimed deliveries over HTTP, a few at a time, within a time budget."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session

from lifecycle.metrics import count_deliveries
from lifecycle.outbound import claims, signing
from lifecycle.outbound.claims import Job, Outcome, RetryPolicy

BATCH_SIZE = 20
PARALLEL = 8
EXCERPT_CHARS = 500


@dataclass(frozen=True)
class SendOptions:
    timeout_seconds: float
    allow_private: bool
    lease_seconds: float
    policy: RetryPolicy


def send_due(
    session_factory: Callable[[], Session], options: SendOptions, max_seconds: float
) -> dict[str, int]:
    """Claim, send and settle due deliveries until none is due or `max_seconds` have passed.

    The HTTP calls run outside any transaction, so a slow receiver holds no lock and no connection.
    `more` in the answer says time ran out with deliveries still due.
    """
    report = {"delivered": 0, "retrying": 0, "given_up": 0, "disabled": 0, "released": 0, "more": 0}
    with session_factory() as session, session.begin():
        report["released"] = claims.release_abandoned(session, options.lease_seconds)
    deadline = time.monotonic() + max_seconds
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="outbound") as pool:
        while time.monotonic() < deadline:
            with session_factory() as session, session.begin():
                jobs = claims.claim(session, BATCH_SIZE)
            if not jobs:
                return report
            outcomes = list(pool.map(lambda job: post(job, options), jobs))
            with session_factory() as session, session.begin():
                counts = claims.settle(session, list(zip(jobs, outcomes, strict=True)), options.policy)
            count_deliveries(counts)  # once committed: a settle that rolled back counted nothing
            for key, value in counts.items():
                report[key] += value
    report["more"] = 1
    return report


def post(job: Job, options: SendOptions) -> Outcome:
    """One signed POST; any 2xx is a success, anything else (or no answer) a failure."""
    body = json.dumps(job.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = signing.headers(job.secret, job.message_id, int(time.time()), body)
    started = time.perf_counter()
    try:
        if not options.allow_private:
            refuse_private(job.url)
        response = requests.post(job.url, data=body, headers=headers, timeout=options.timeout_seconds,
                                 allow_redirects=False)  # fmt: skip
    except (requests.RequestException, ValueError, OSError) as exc:
        return Outcome(False, None, _ms(started), f"{exc.__class__.__name__}: {exc}"[:EXCERPT_CHARS])
    return Outcome(
        200 <= response.status_code < 300, response.status_code, _ms(started), response.text[:EXCERPT_CHARS]
    )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def refuse_private(url: str) -> None:
    """Raise ValueError if the URL's host is (or resolves to) a loopback, private or reserved address."""
    host = urlsplit(url).hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    for *_rest, sockaddr in socket.getaddrinfo(host, None):
        address = ipaddress.ip_address(sockaddr[0])
        if not address.is_global:
            raise ValueError(
                f"{host} resolves to non-public address {address} (OUTBOUND_ALLOW_PRIVATE=false)"
            )
