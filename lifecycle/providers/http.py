"""What every provider's HTTP client shares: one requests session, the shared limiter, call metrics.

Each adapter's client keeps its own endpoints, headers and answer handling; this holds only the
plumbing, so a third provider's client does not copy it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, ClassVar

import requests

from lifecycle.metrics import observe_call
from lifecycle.ratelimit import Limiter


class LimitedHttpClient:
    # The name in metrics and in the limiter key ("17track", "cargoai").
    provider: ClassVar[str]

    def __init__(self, base_url: str, api_key: str, limiter: Limiter, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._limiter = limiter
        # How long one call can take at most (senders reclaim a dead sender's calls after it).
        self.timeout = timeout
        self._http = requests.Session()
        # One window per account: two deployments with different keys do not share a limit.
        self.limiter_key = f"{self.provider}:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]

    def free(self) -> tuple[int, float]:
        """Calls that could go out at once now, and seconds until one could (the shared limiter's)."""
        return self._limiter.free(self.limiter_key)

    def _limited(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> requests.Response:
        """One call inside a limiter slot, timed into the call metrics whatever happens.

        The slot is held until the answer is back (see lifecycle.ratelimit), so a slow answer
        cannot let a fourth call into the same second. requests' exceptions pass through.
        """
        started, status = time.perf_counter(), None
        try:
            with self._limiter.slot(self.limiter_key, self.timeout + 1):
                response = self._http.request(
                    method, f"{self._base_url}/{path}", headers=headers, timeout=self.timeout, **kwargs
                )
            status = response.status_code
            return response
        finally:
            observe_call(self.provider, path, time.perf_counter() - started, status)
