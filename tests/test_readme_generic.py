"""The README's generic-webhook example, run as written (bash, openssl, curl) against a running
service, then `manage.py shipments` as a user would type it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.providers.generic import config
from tests.helpers import serving

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Your own systems and carriers: the generic webhook"


def readme_example() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split(SECTION, 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def served(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GENERIC_WEBHOOK_SECRET", "s3cret")
    monkeypatch.delenv("GENERIC_STATUS_MAP", raising=False)
    config.current.cache_clear()
    with serving(app) as url:
        yield url
    config.current.cache_clear()


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="needs openssl and curl")
def test_the_readme_example_stores_a_push_and_the_shipment_ends_delivered_and_stopped(app, settings, served):
    script = readme_example().replace("http://127.0.0.1:8000", served)
    answer = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(answer.stdout)["status"] == "stored"
    with app.app_context():
        assert inbox.drain(db.new_session, 100).outcomes == {"applied": 1}
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": str(settings.var_dir)}
    listed = subprocess.run(
        [sys.executable, "manage.py", "shipments", "--number", "ORDER-1001", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    [shipment] = json.loads(listed.stdout)["shipments"]
    assert (shipment["provider"], shipment["status"], shipment["tracking"]) == (
        "generic",
        "delivered",
        "stopped",
    )
