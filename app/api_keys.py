"""Per-shop keys for the JSON API: made, found, listed and revoked. Only a key's SHA-256 is kept.

A key is `cbk_` and 43 random URL-safe characters (256 bits), so a plain SHA-256 is enough to
store it: there is nothing to guess, and a lookup by hash never compares secrets in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session, col, select

from app.errors import InvalidInput, NotFound
from app.models import API_KEY_SCOPES, ApiKey, Shop, utcnow

KEY_PREFIX = "cbk_"
PREFIX_CHARS = 12  # what a listing shows: "cbk_" and the first 8 random characters
MAX_NAME_CHARS = 100
MAX_KEY_CHARS = 200  # anything longer presented as a key is not one of ours


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class NewKey:
    row: ApiKey
    key: str  # shown once; never stored


def create(session: Session, shop: Shop, *, name: str = "", scope: str = "read") -> NewKey:
    if scope not in API_KEY_SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(API_KEY_SCOPES)}, not '{scope}'", field="scope")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInput(f"a key's name is at most {MAX_NAME_CHARS} printable characters", field="name")
    if shop.uninstalled_at is not None:
        raise InvalidInput(f"shop {shop.domain} has uninstalled Clawback", field="shop")
    assert shop.id is not None
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(shop_id=shop.id, name=name, prefix=key[:PREFIX_CHARS], key_hash=key_hash(key), scope=scope)
    session.add(row)
    session.flush()
    return NewKey(row, key)


def find(session: Session, key: str) -> ApiKey | None:
    """The live key row for a presented key, or None (unknown, malformed or revoked)."""
    if not looks_like_key(key) or len(key) > MAX_KEY_CHARS:
        return None
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def listing(session: Session, shop: Shop) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).where(ApiKey.shop_id == shop.id).order_by(col(ApiKey.id))))


def revoke(session: Session, shop: Shop, key_id: int) -> ApiKey:
    """Revoke one of the shop's keys (at once, for every request after this commits). Revoking a
    revoked key changes nothing."""
    row = session.exec(select(ApiKey).where(ApiKey.shop_id == shop.id, ApiKey.id == key_id)).first()
    if row is None:
        raise NotFound(f"shop {shop.domain} has no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    return row
