"""What `run` tells a newcomer at start, before anything is sent to a real provider."""

from __future__ import annotations

import re

from config.settings import Settings

REAL_17TRACK_URL = "https://api.17track.net"
REAL_CARGOAI_URL = "https://api.cargoai.co"
# Keys copied from documentation, `.env.example` or a simulator's command line rather than from
# the provider's dashboard (the README's own `demo-key`, `<your 17token>`, `…`): provider keys are
# plain letters and digits, never a word like these nor template punctuation.
_PLACEHOLDER = re.compile(
    r"[<>{}\s…]|\.\.\.|your|change.?me|placeholder|example|sample|x{4,}"
    r"|^(demo|sim|test|dummy|fake)|(^|[-_.])(key|token)$",
    re.I,
)


def looks_like_placeholder(key: str) -> bool:
    return bool(_PLACEHOLDER.search(key))


def provider_warnings(settings: Settings) -> list[str]:
    """One line per configuration that would make the service fail or call a provider in vain."""
    warnings = []
    key17 = settings.seventeentrack_api_key.get_secret_value()
    if not key17:
        warnings.append(
            "SEVENTEENTRACK_API_KEY is not set: 17TRACK pushes are answered 503 and registrations cannot "
            "be sent. Put your key in .env and restart, or try everything against the simulator first "
            "with `manage.py simulate` (no 17TRACK account needed)."
        )
    elif looks_like_placeholder(key17) and settings.seventeentrack_api_url.startswith(REAL_17TRACK_URL):
        warnings.append(
            f"SEVENTEENTRACK_API_KEY looks like a placeholder, and SEVENTEENTRACK_API_URL is the real "
            f"17TRACK ({settings.seventeentrack_api_url}), which will refuse it. Set your real key, or point "
            "SEVENTEENTRACK_API_URL at a simulator (`python -m simulators`)."
        )
    cargo_key = settings.cargoai_api_key.get_secret_value()
    if (
        cargo_key
        and looks_like_placeholder(cargo_key)
        and settings.cargoai_api_url.startswith(REAL_CARGOAI_URL)
    ):
        warnings.append(
            "CARGOAI_API_KEY looks like a placeholder, and CARGOAI_API_URL is the real CargoAi API. "
            "Set your real key, or leave it empty to keep AWBs off."
        )
    if settings.secret_key.get_secret_value() == "dev-only-change-me" and settings.public_base_url.startswith(
        "https://"
    ):
        warnings.append(
            "SECRET_KEY is the development default while PUBLIC_BASE_URL is public: set SECRET_KEY"
        )
    return warnings
