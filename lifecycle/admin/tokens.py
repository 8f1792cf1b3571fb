"""API tokens as the admin manages them (creation itself is `lifecycle.api.tokens.create_token`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.api.tokens import ApiToken


def all_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def revoke(session: Session, token_id: int) -> str | None:
    """Delete the token; its holder gets 401 from the next request on. Returns its name."""
    token = session.get(ApiToken, token_id)
    if token is None:
        return None
    session.delete(token)
    return token.name
