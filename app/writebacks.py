"""Write-backs: intents to tell the platform something, carried out later, retried on their own.

The ledger transaction records the intent (a `writebacks` row under a UNIQUE key); a job carries
it out. A failed call never blocks or repeats the ledger change: it only moves `next_attempt_at`
(exponential backoff, or the platform's own "retry after"), and after MAX_ATTEMPTS the row is
`failed`: the dead-letter list an operator reads with `clawback writebacks --failed`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from app import ledger
from app.db import Database
from app.domain.postings import Posting
from app.errors import GiveUp, RetryLater
from app.models import Shop, Writeback, utcnow

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
BASE_DELAY_S = 30.0
MAX_DELAY_S = 6 * 3600.0


Executor = Callable[[Session, Shop, Writeback], str]


def intend(session: Session, shop_id: int, kind: str, key: str, payload: dict[str, object]) -> None:
    """Record an intent once: a second intent with the same key is the same intent."""
    exists = session.exec(
        select(Writeback.id).where(Writeback.shop_id == shop_id, Writeback.idempotency_key == key)
    ).first()
    if exists is None:
        session.add(Writeback(shop_id=shop_id, kind=kind, idempotency_key=key, payload=payload))


def backoff_s(attempts: int) -> float:
    return float(min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(attempts - 1, 0)))


def due_ids(db: Database, now: datetime | None = None, limit: int = 100) -> list[int]:
    with db.session() as session:
        query = (
            select(Writeback.id)
            .where(Writeback.status == "pending", col(Writeback.next_attempt_at) <= (now or utcnow()))
            .order_by(col(Writeback.next_attempt_at))
            .limit(limit)
        )
        return [int(i) for i in session.exec(query) if i is not None]


def run_one(db: Database, writeback_id: int, execute: Executor, now: datetime | None = None) -> str:
    """Carry out one intent; return its status afterwards. Safe to call twice (done stays done)."""
    now = now or utcnow()
    with db.session() as session:
        row = session.exec(select(Writeback).where(Writeback.id == writeback_id).with_for_update()).first()
        if row is None or row.status != "pending":
            return row.status if row else "missing"
        shop = session.get(Shop, row.shop_id)
        assert shop is not None
        row.attempts += 1
        try:
            with session.begin_nested():
                note = execute(session, shop, row)
        except RetryLater as exc:
            row.next_attempt_at = now + timedelta(seconds=exc.retry_after_s)
            row.last_error = f"retry later: {exc}"
        except GiveUp as exc:
            row.status, row.last_error = "failed", f"gave up: {exc}"
        except Exception as exc:  # any other failure: back off, then dead-letter
            log.warning("write-back %s failed: %s", row.id, exc)
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
            else:
                row.next_attempt_at = now + timedelta(seconds=backoff_s(row.attempts))
        else:
            row.status = "skipped" if note.startswith("skipped") else "done"
            row.last_error, row.done_at = None if row.status == "done" else note, now
        finally:
            for work in session.info.pop(_KEEP, []):
                work(session)
        session.add(row)
        return row.status


_KEEP = "clawback.writebacks.keep"


def keep_whatever_happens(session: Session, work: Callable[[Session], None]) -> None:
    """From inside an executor: do `work` after the attempt, even when the attempt is rolled back
    (a renewed token must be kept even if the mutation it was renewed for is throttled)."""
    session.info.setdefault(_KEEP, []).append(work)


def run_due(db: Database, execute: Executor, now: datetime | None = None, limit: int = 100) -> Counter[str]:
    return Counter(run_one(db, wid, execute, now) for wid in due_ids(db, now, limit))


def replay_failed(session: Session, now: datetime | None = None) -> int:
    """Put dead-lettered write-backs back in the queue (after the cause is fixed)."""
    rows = session.exec(select(Writeback).where(Writeback.status == "failed")).all()
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, now or utcnow()
        session.add(row)
    return len(rows)


def record_platform_shortfall(
    session: Session, shop: Shop, customer_ref: str, coins: int, explanation: str, key: str
) -> None:
    """The platform could not take back `coins` (already spent there): record the shortfall."""
    assert shop.id is not None and coins > 0
    customer = ledger.lock_customer(session, shop.id, customer_ref)
    ledger.post(session, customer, Posting("adjust", "platform_shortfall", explanation, source="writeback",
                                           key=key, shortfall_delta=coins))  # fmt: skip
