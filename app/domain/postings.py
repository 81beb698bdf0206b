"""Ledger semantics: a posting (what to write), an entry (what was written) and the invariants a
posting must keep on a customer's balances. The database side is app/ledger.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from app.errors import InvariantViolation


@dataclass(frozen=True)
class Entry:
    """A ledger entry as posted: the row's values (the entry is immutable, so a plain record)."""

    id: int
    shop_id: int
    customer_id: int
    order_ref: str | None
    award_id: int | None
    redemption_id: int | None
    kind: str
    coins_delta: int
    pending_delta: int
    shortfall_delta: int
    reason: str
    explanation: str
    source: str
    idempotency_key: str
    created_at: datetime


@dataclass(frozen=True)
class Posting:
    """One entry to write. Deltas are signed; at least one is non-zero."""

    kind: str
    reason: str
    explanation: str
    source: str
    key: str
    coins_delta: int = 0
    pending_delta: int = 0
    shortfall_delta: int = 0
    order_ref: str | None = None
    award_id: int | None = None
    redemption_id: int | None = None


class Balances(NamedTuple):
    """A customer's cached balances, in coins."""

    available: int
    pending: int
    shortfall: int


def after(before: Balances, posting: Posting, *, who: str) -> Balances:
    """The balances once `posting` is applied. A posting moves something, and never takes pending
    or shortfall coins below zero (available may go negative: the shop's shortfall policy)."""
    if not (posting.coins_delta or posting.pending_delta or posting.shortfall_delta):
        raise InvariantViolation(f"posting {posting.key} moves nothing")
    moved = Balances(
        before.available + posting.coins_delta,
        before.pending + posting.pending_delta,
        before.shortfall + posting.shortfall_delta,
    )
    if moved.pending < 0 or moved.shortfall < 0:
        raise InvariantViolation(f"{who}: pending {moved.pending}, shortfall {moved.shortfall} after {posting.key}")
    return moved
