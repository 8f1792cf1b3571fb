"""HTTP client for CargoAi's Track & Trace API (reference/awb.md §1.2-1.3), behind a shared limiter."""

from __future__ import annotations

from typing import Any

import requests

from lifecycle.providers.base import ProviderError
from lifecycle.providers.http import LimitedHttpClient


class CargoAiClient(LimitedHttpClient):
    provider = "cargoai"

    def subscribe(self, awb: str, url: str, emails: list[str], airline_code: str | None) -> tuple[int, dict]:
        body: dict[str, Any] = {"awb": awb, "url": url}
        if emails:
            body["emails"] = emails[:5]
        if airline_code:
            body["airlineCode"] = airline_code
        return self._request("POST", "track/subscribe", json=body)

    def unsubscribe(self, awb: str, url: str) -> tuple[int, dict]:
        return self._request("POST", "track/unsubscribe", json={"awb": awb, "url": url})

    def track(self, awb: str) -> tuple[int, dict]:
        return self._request("GET", "track", params={"awb": awb})

    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict]:
        """(HTTP status, JSON body) for answers about the item; ProviderError for the retryable rest."""
        try:
            response = self._limited(method, path, {"x-api-key": self._api_key}, **kwargs)
        except requests.RequestException as exc:
            raise ProviderError(f"{path}: {exc.__class__.__name__}: {exc}", transient=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(f"{path}: HTTP {response.status_code}", transient=True)
        if response.status_code in (401, 403):
            raise ProviderError(
                f"{path}: HTTP {response.status_code} (check CARGOAI_API_KEY)", transient=False
            )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text[:200]}
