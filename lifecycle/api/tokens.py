"""API tokens for the JSON API (`manage.py create-token`). Only a hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lifecycle.db import Base, BigId, UTCDateTime, utcnow

PREFIX = "lcm_"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Create a token and return it; it cannot be shown again."""
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_sha256=_digest(token)))
    return token


def authenticate(session: Session, token: str) -> ApiToken | None:
    if not token.startswith(PREFIX):
        return None
    found = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == _digest(token))).first()
    if found is not None:
        found.last_used_at = utcnow()
    return found
