"""HTTP client for the 17TRACK API: one shared limiter in front of every call."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import requests

from lifecycle.metrics import observe_call
from lifecycle.providers.base import ProviderError
from lifecycle.ratelimit import Limiter


def _answer_lost(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False  # never connected: nothing was sent
    if isinstance(exc, requests.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return True
    # "Connection aborted" / reset after sending, as opposed to a refused or unresolvable host.
    return isinstance(exc, requests.ConnectionError) and "Connection aborted" in str(exc)


# Request-level codes that say "try again later" rather than "this request is wrong".
_TRANSIENT_CODES = frozenset({-18010003})


class SeventeenTrackClient:
    def __init__(self, base_url: str, api_key: str, limiter: Limiter, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._limiter = limiter
        self._timeout = timeout
        # How long one call can take at most (senders reclaim a dead sender's calls after it).
        self.timeout = timeout
        self._http = requests.Session()
        # One window per account: two deployments with different keys do not share a limit.
        self.limiter_key = "17track:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]

    def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        """POST to an endpoint; returns `data` of a code-0 envelope or raises ProviderError."""
        return self.call_envelope(endpoint, body).get("data") or {}

    def call_envelope(self, endpoint: str, body: Any) -> dict[str, Any]:
        """The whole code-0 envelope (gettracklist puts `page` beside `data`)."""
        started, status = time.perf_counter(), None
        try:
            # The slot is held until the answer is back: see lifecycle.ratelimit.
            with self._limiter.slot(self.limiter_key, self._timeout + 1):
                response = self._http.post(
                    f"{self._base_url}/{endpoint}",
                    json=body,
                    headers={"17token": self._api_key},
                    timeout=self._timeout,
                )
            status = response.status_code
        except requests.RequestException as exc:
            raise ProviderError(
                f"{endpoint}: {exc.__class__.__name__}: {exc}", transient=True, answer_lost=_answer_lost(exc)
            ) from exc
        finally:
            observe_call("17track", endpoint, time.perf_counter() - started, status)
        return _unwrap(endpoint, response)


def _unwrap(endpoint: str, response: requests.Response) -> dict[str, Any]:
    status = response.status_code
    if status == 429 or status >= 500:
        raise ProviderError(f"{endpoint}: HTTP {status}", transient=True)
    if status != 200:
        raise ProviderError(f"{endpoint}: HTTP {status} {response.text[:200]}", transient=False)
    try:
        envelope = response.json()
    except ValueError as exc:
        raise ProviderError(f"{endpoint}: response is not JSON", transient=True) from exc
    code = envelope.get("code")
    if code != 0:
        errors = (envelope.get("data") or {}).get("errors") or [{}]
        message = errors[0].get("message") or f"code {code}"
        raise ProviderError(f"{endpoint}: {code} {message}", transient=code in _TRANSIENT_CODES, code=code)
    return envelope
