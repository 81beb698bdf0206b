"""The auditor: recompute everything from the entries and compare with what is cached.

`clawback check` runs it; tests run it after every step of the state machine.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from app.models import Award, Customer, LedgerEntry, Redemption


def violations(session: Session, shop_id: int | None = None) -> list[str]:
    """Every broken invariant, as a sentence. Empty means the books balance."""
    problems: list[str] = []
    entry_sums = select(
        LedgerEntry.customer_id,
        func.sum(LedgerEntry.coins_delta),
        func.sum(LedgerEntry.pending_delta),
        func.sum(LedgerEntry.shortfall_delta),
    ).group_by(LedgerEntry.customer_id)  # type: ignore[arg-type]
    sums: dict[int | None, tuple[int, int, int]] = {
        row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in session.exec(entry_sums)
    }
    customers = select(Customer)
    if shop_id is not None:
        customers = customers.where(Customer.shop_id == shop_id)
    for c in session.exec(customers):
        cached = (c.available_coins, c.pending_coins, c.shortfall_coins)
        if cached != sums.get(c.id, (0, 0, 0)):
            problems.append(
                f"customer {c.platform_customer_id} (shop {c.shop_id}): cached available/pending/shortfall "
                f"{cached} != ledger {sums.get(c.id, (0, 0, 0))}"
            )
        if c.pending_coins < 0:
            problems.append(f"customer {c.platform_customer_id}: negative pending {c.pending_coins}")
    award_sums = select(
        LedgerEntry.award_id,
        func.sum(LedgerEntry.coins_delta + LedgerEntry.pending_delta - LedgerEntry.shortfall_delta),
    ).group_by(LedgerEntry.award_id)  # type: ignore[arg-type]
    booked: dict[int | None, int] = {row[0]: int(row[1]) for row in session.exec(award_sums) if row[0] is not None}
    awards = select(Award) if shop_id is None else select(Award).where(Award.shop_id == shop_id)
    for a in session.exec(awards):
        if not 0 <= a.coins_reverted <= a.coins_earned:
            problems.append(f"award {a.id}: reverted {a.coins_reverted} exceeds earned {a.coins_earned}")
        if booked.get(a.id, 0) != a.coins_booked:
            problems.append(f"award {a.id}: booked {a.coins_booked} != ledger {booked.get(a.id, 0)}")
        if a.state == "held" and a.hold_until is None:
            problems.append(f"award {a.id}: held without an end to the hold")
    returned = (
        select(LedgerEntry.redemption_id, func.sum(LedgerEntry.coins_delta))
        .where(LedgerEntry.kind == "redeem_refund")
        .group_by(LedgerEntry.redemption_id)  # type: ignore[arg-type]
    )
    back: dict[int | None, int] = {row[0]: int(row[1]) for row in session.exec(returned)}
    redemptions = select(Redemption) if shop_id is None else select(Redemption).where(Redemption.shop_id == shop_id)
    for r in session.exec(redemptions):
        if back.get(r.id, 0) != r.coins_returned or r.coins_returned > r.coins_redeemed:
            problems.append(
                f"redemption {r.id}: returned {r.coins_returned} (ledger {back.get(r.id, 0)}) of {r.coins_redeemed}"
            )
    return problems
