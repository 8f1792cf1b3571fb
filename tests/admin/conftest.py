"""The admin console's tests share a service with one admin and a client signed in as that admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lifecycle import create_app
from lifecycle.extensions import db
from tests.admin_support import create_admin, sign_in


@pytest.fixture
def app(settings_factory: Any) -> Iterator[Any]:
    """The service with one admin (tests.admin_support.EMAIL / PASSWORD)."""
    app = create_app(settings_factory())
    create_admin(app)
    yield app
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.fixture
def client(app: Any) -> Any:
    """A test client signed in as that admin (test_admin_auth.py starts from a signed-out one)."""
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client
