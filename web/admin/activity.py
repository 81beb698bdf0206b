"""The Activity page: coins going back and corrections, newest first, filtered by kind and dates,
a page at a time or whole as CSV."""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from flask import Response, request, stream_with_context
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select

from app.errors import InvalidInput
from app.history import customer_refs, order_names
from app.models import ENTRY_KINDS, LedgerEntry, as_utc
from web.admin._common import KIND_LABELS, PAGE, bp, message, parse_before, render
from web.extensions import get_session, services
from web.session import current_shop, signed_in

CSV_CHUNK = 1000
ACTIVITY_KINDS = ("revert", "redeem_refund", "void", "adjust")  # coins going back, and corrections


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...]
    start: date | None
    end: date | None
    before: int | None

    def query(self) -> dict[str, Any]:
        """As URL parameters (without `before`), for links and the CSV export."""
        out: dict[str, Any] = {}
        if self.kinds != ACTIVITY_KINDS:
            out["kind"] = list(self.kinds)
        if self.start:
            out["from"] = self.start.isoformat()
        if self.end:
            out["to"] = self.end.isoformat()
        return out


def _day(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{raw[:20]}' is not a date (YYYY-MM-DD)", field=name) from None


def _filters() -> Filters:
    kinds = tuple(dict.fromkeys(request.args.getlist("kind"))) or ACTIVITY_KINDS
    unknown = [k for k in kinds if k not in ENTRY_KINDS]
    if unknown:
        raise InvalidInput(f"unknown kind '{unknown[0][:20]}'", field="kind")
    start, end = _day("from"), _day("to")
    if start and end and end < start:
        raise InvalidInput("'to' is before 'from'", field="to")
    return Filters(tuple(k for k in ENTRY_KINDS if k in kinds), start, end, parse_before(request.args))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _kind_stream(session: Session, shop_id: int, kind: str, filters: Filters, chunk: int) -> Iterator[LedgerEntry]:
    """One kind's entries, newest first, fetched `chunk` at a time by keyset on id."""
    before = filters.before
    while True:
        query = select(LedgerEntry).where(LedgerEntry.shop_id == shop_id, LedgerEntry.kind == kind)
        if before is not None:
            query = query.where(col(LedgerEntry.id) < before)
        if filters.start is not None:
            query = query.where(col(LedgerEntry.created_at) >= _midnight(filters.start))
        if filters.end is not None:
            query = query.where(col(LedgerEntry.created_at) < _midnight(filters.end) + timedelta(days=1))
        rows = list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(chunk)))
        yield from rows
        if len(rows) < chunk:
            return
        before = rows[-1].id


def activity_stream(session: Session, shop_id: int, filters: Filters, chunk: int) -> Iterator[LedgerEntry]:
    """Newest first, keyset on id: one index range scan per kind on (shop_id, kind, id), merged.

    Each kind's scan walks ix_ledger_shop_kind_id backwards from `before` and reads only what is
    taken, so a page costs the same on the millionth entry as on the first (no OFFSET, no sort of
    the shop's whole history). Dates narrow the scan; the days are whole UTC days, `to` included.
    """
    streams = [_kind_stream(session, shop_id, kind, filters, chunk) for kind in filters.kinds]
    return heapq.merge(*streams, key=lambda e: -(e.id or 0))


def activity_entries(session: Session, shop_id: int, filters: Filters, limit: int) -> list[LedgerEntry]:
    return list(islice(activity_stream(session, shop_id, filters, limit), limit))


@bp.get("/activity")
@signed_in
def activity() -> ResponseReturnValue:
    shop = current_shop()
    assert shop.id is not None
    try:
        filters = _filters()
    except InvalidInput as exc:
        empty = Filters(ACTIVITY_KINDS, None, None, None)
        return render("activity.html", 400, entries=[], customers={}, orders={}, filters=empty, older=None,
                      error=message(exc), kinds=ENTRY_KINDS, kind_labels=KIND_LABELS, page="activity")  # fmt: skip
    session = get_session()
    rows = activity_entries(session, shop.id, filters, PAGE + 1)
    entries, more = rows[:PAGE], len(rows) > PAGE
    customers, orders = customer_refs(session, shop.id, entries), order_names(session, shop.id, entries)
    older = entries[-1].id if more and entries else None
    return render("activity.html", entries=entries, customers=customers, orders=orders, filters=filters,
                  older=older, error=None, kinds=ENTRY_KINDS, kind_labels=KIND_LABELS, page="activity")  # fmt: skip


CSV_HEADER = ("entry", "created_at", "kind", "order", "order_id", "customer", "coins", "held", "shortfall", "reason",
              "explanation")  # fmt: skip


def _cell(value: str) -> str:
    """Text a spreadsheet would run as a formula is quoted (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/activity.csv")
@signed_in
def activity_csv() -> ResponseReturnValue:
    shop = current_shop()
    shop_id = shop.id
    assert shop_id is not None
    try:
        filters = _filters()
    except InvalidInput as exc:
        return Response(message(exc) + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"})
    engine = services().db.engine

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate(0)
            return text

        writer.writerow(CSV_HEADER)
        yield flush()
        with Session(engine) as session:
            stream = activity_stream(session, shop_id, filters, CSV_CHUNK)
            while chunk := list(islice(stream, CSV_CHUNK)):
                customers, orders = customer_refs(session, shop_id, chunk), order_names(session, shop_id, chunk)
                for e in chunk:
                    ref = e.order_ref or ""
                    writer.writerow((e.id, as_utc(e.created_at).isoformat(), e.kind, _cell(orders.get(ref, ref)),
                                     _cell(ref), _cell(customers.get(e.customer_id, "")), e.coins_delta,
                                     e.pending_delta, e.shortfall_delta, _cell(e.reason),
                                     _cell(e.explanation)))  # fmt: skip
                session.expunge_all()  # a long export holds one chunk at a time
                yield flush()

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(stream_with_context(rows()), 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="clawback-activity-{stamp}.csv"',
    })  # fmt: skip
