"""HTTP client for the 17TRACK API: one shared limiter in front of every call."""

from __future__ import annotations

from typing import Any

import requests

from lifecycle.providers.base import ProviderError
from lifecycle.providers.http import LimitedHttpClient


def _answer_lost(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False  # never connected: nothing was sent
    if isinstance(exc, requests.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return True
    # "Connection aborted" / reset after sending, as opposed to a refused or unresolvable host.
    return isinstance(exc, requests.ConnectionError) and "Connection aborted" in str(exc)


# Request-level codes that say "try again later" rather than "this request is wrong".
_TRANSIENT_CODES = frozenset({-18010003})


class SeventeenTrackClient(LimitedHttpClient):
    provider = "17track"

    def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        """POST to an endpoint; returns `data` of a code-0 envelope or raises ProviderError."""
        return self.call_envelope(endpoint, body).get("data") or {}

    def call_envelope(self, endpoint: str, body: Any) -> dict[str, Any]:
        """The whole code-0 envelope (gettracklist puts `page` beside `data`)."""
        try:
            response = self._limited("POST", endpoint, {"17token": self._api_key}, json=body)
        except requests.RequestException as exc:
            raise ProviderError(
                f"{endpoint}: {exc.__class__.__name__}: {exc}", transient=True, answer_lost=_answer_lost(exc)
            ) from exc
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
