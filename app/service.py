"""Apply an order snapshot: merge it, ask the rules for targets, move the ledger by the difference.

This is the one path every source of order facts goes through: webhooks of every platform,
reconciliation, the demo, the tests. Locks are taken in one order (order row, then customer
row) so two transactions on the same order or customer wait for each other instead of
deadlocking or double-posting. Which rows, and how they are found, is `rows`' business
(app/rows.py); this module decides what they become.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from app import ledger, writebacks
from app.domain import rules
from app.domain.postings import Entry, Posting
from app.domain.shop_settings import ShopSettings
from app.domain.snapshot import OrderSnapshot, normalize_tag
from app.models import Award, Customer, Order, Redemption, Shop, utcnow
from app.rows import Rows


@dataclass
class Outcome:
    """What applying one snapshot did: the entries posted and whether the order changed."""

    order_ref: str
    changed: bool
    entries: list[Entry] = field(default_factory=list)
    note: str = ""

    @property
    def coins_delta(self) -> int:
        return sum(e.coins_delta for e in self.entries)


def _new_order(shop: Shop, snap: OrderSnapshot, now: datetime, customer_id: int | None = None) -> Order:
    """An order row never seen before, with every column's final value."""
    assert shop.id is not None
    return Order(
        shop_id=shop.id,
        platform_order_id=snap.order_id,
        name=snap.order_name,
        customer_id=customer_id,
        snapshot=snap.to_json(),
        snapshot_updated_at=snap.updated_at,
        updated_at=now,
    )


def apply_snapshot(
    rows: Rows, shop: Shop, incoming: OrderSnapshot, *, source: str, now: datetime | None = None
) -> Outcome:
    """Merge `incoming` into the stored order and bring its award and redemptions to target.

    `rows` finds and locks the order, its award and the customer (app/rows.py): one query each
    (`OrmRows`), or what a worker's batch loaded up front (`BatchRows`)."""
    now = now or utcnow()
    assert shop.id is not None
    session = rows.session
    found = rows.order(shop.id, incoming.order_id, lambda: _new_order(shop, incoming, now))
    order, new = found if found is not None else (None, True)
    merged = incoming
    if order is not None and not new:
        stored = OrderSnapshot.from_json(order.snapshot)
        merged = stored.merge(incoming)
        snapshot = merged.to_json()
        if snapshot == stored.to_json():
            # Stale or duplicate: nothing new about this order, so nothing may change.
            return Outcome(incoming.order_id, changed=False, note="nothing new in this snapshot")
        order.snapshot = snapshot
        order.snapshot_updated_at = merged.updated_at
        order.name = merged.order_name or order.name
        order.updated_at = now
        session.add(order)
    outcome = Outcome(merged.order_id, changed=True)
    if merged.customer_id is None:
        if order is None:
            rows.add_order(_new_order(shop, merged, now))
        outcome.note = "guest order: nothing to earn or return"
        return outcome
    settings = ShopSettings.cached(shop.settings)
    # No autoflush from here to the posting: what these queries look up (the customer, the award,
    # an entry's key, a write-back's key) is flushed as soon as it is created, so flushing the
    # order's and customer's pending changes before each query would only cost a unit of work
    # each; the session's next flush writes them all at once.
    with session.no_autoflush:
        customer = rows.customer(shop.id, merged.customer_id, merged.customer_email)
        if merged.customer_tags - {normalize_tag(t) for t in customer.tags}:
            customer.tags = sorted(set(customer.tags) | merged.customer_tags)
        if order is None:
            order = rows.add_order(_new_order(shop, merged, now, customer.id))
        else:
            order.customer_id = customer.id
        _settle_award(rows, shop, settings, order, merged, customer, source, now, outcome, new=new)
    settle_redemptions(session, shop, merged, customer, source, outcome, rows=rows)
    return outcome


def _settle_award(
    rows: Rows,
    shop: Shop,
    settings: ShopSettings,
    order: Order,
    snap: OrderSnapshot,
    customer: Customer,
    source: str,
    now: datetime,
    outcome: Outcome,
    *,
    new: bool = False,
) -> None:
    """Bring the order's award to its target; `new`: the order was created by this call, so it
    has no award yet."""
    session = rows.session
    assert order.id is not None
    award = None if new else rows.award(order.id)
    if award is None:
        tags = frozenset(normalize_tag(t) for t in customer.tags)
        blocked = rules.may_start_award(snap, settings.earn, settings.revert, tags)
        if blocked is not None:
            outcome.note = blocked.cause
            return
        rule = rules.EarnRule.from_settings(settings.earn, snap.currency)
        # A new award is checked against the revert conditions before anything is booked.
        decision = rules.earn_target(snap, rule, settings.revert, booked=0, held=True)
        if decision.coins == 0:
            outcome.note = decision.cause
            return
        delay = settings.earn.delay_days
        assert customer.id is not None and shop.id is not None
        award = rows.add_award(Award(
            shop_id=shop.id,
            order_id=order.id,
            customer_id=customer.id,
            rule=rule.to_json(),
            state="held" if delay else "active",
            hold_until=now + timedelta(days=delay) if delay else None,
            created_at=utcnow(),  # given: pydantic would inspect the default factory's signature
        ))  # fmt: skip
    else:
        rule = rules.EarnRule.from_json(award.rule)
        decision = rules.earn_target(snap, rule, settings.revert, booked=award.coins_booked, held=award.state == "held")
    entry = _move_award(session, shop, settings, award, customer, snap, rule, decision, source, now)
    if entry is not None:
        outcome.entries.append(entry)


def _move_award(
    session: Session,
    shop: Shop,
    settings: ShopSettings,
    award: Award,
    customer: Customer,
    snap: OrderSnapshot,
    rule: rules.EarnRule,
    decision: rules.Decision,
    source: str,
    now: datetime,
) -> Entry | None:
    diff = decision.coins - award.coins_booked
    if diff == 0:
        return None
    award.moves += 1
    key = f"award:{award.id}:move:{award.moves}"
    rate = rule.describe()
    base = Posting("earn", decision.reason, "", source=source, key=key, order_ref=snap.order_id, award_id=award.id)
    first = award.coins_earned == 0
    if decision.reason == "earned":
        cause = (
            f"Order {snap.label} was {settings.earn.trigger}"
            if first
            else (f"Order {snap.label} no longer matches a revert condition")
        )
        decision = replace(decision, cause=cause)
    if award.state == "held" and diff > 0:
        assert award.hold_until is not None
        until = award.hold_until.date().isoformat()
        text = f"{decision.cause}; {diff} coins are held until {until} ({rate})"
        posting = replace(
            base, kind="pending", reason="held" if first else decision.reason, explanation=text, pending_delta=diff
        )
    elif award.state == "held":
        text = f"{decision.cause}; {-diff} held coins were voided"
        posting = replace(base, kind="void", explanation=text, pending_delta=diff)
    elif diff > 0:
        verb = "earned" if first else "restored"
        text = f"{decision.cause}; {diff} coins {verb} at {rate}"
        posting = replace(base, reason=verb, explanation=text, coins_delta=diff)
    else:
        posting = _revert_posting(session, settings, customer, decision, -diff, rate, now, base)
    if diff > 0:
        award.coins_earned += diff
    else:
        award.coins_reverted += -diff
    session.add(award)
    return post(session, shop, customer, posting)


def _revert_posting(
    session: Session,
    settings: ShopSettings,
    customer: Customer,
    decision: rules.Decision,
    coins: int,
    rate: str,
    now: datetime,
    base: Posting,
) -> Posting:
    """A revert of `coins`, under the shop's policy for coins that were already spent."""
    text = f"{decision.cause}; {coins} coins earned on it were reverted at the earned rate ({rate})"
    policy = settings.revert
    if policy.shortfall == "negative" or customer.available_coins >= coins:
        return replace(base, kind="revert", explanation=text, coins_delta=-coins)
    deducted = max(customer.available_coins, 0)
    short = coins - deducted
    flag_customer(session, customer, policy.flag_tag, now, why=f"{short} reverted coins had been spent")
    text += (
        f"; {short} of them had already been spent, so {deducted} were deducted, a shortfall of {short} "
        f"was recorded and the customer was tagged '{policy.flag_tag}'"
    )
    return replace(base, kind="revert", explanation=text, coins_delta=-deducted, shortfall_delta=short)


def flag_customer(session: Session, customer: Customer, tag: str, now: datetime, why: str) -> None:
    """Tag the customer here, and record the intent to tag them on the platform (once per tag)."""
    if normalize_tag(tag) not in {normalize_tag(t) for t in customer.tags}:
        customer.tags = [*customer.tags, tag]
    customer.flagged_at = customer.flagged_at or now
    session.add(customer)
    payload: dict[str, object] = {"customer_id": customer.platform_customer_id, "tag": tag, "why": why}
    writebacks.intend(session, customer.shop_id, "tag_customer", f"tag:{customer.id}:{normalize_tag(tag)}", payload)


# Platforms that keep a history of notes on each order: every reversal is explained there too.
ORDER_NOTE_PLATFORMS = frozenset({"woocommerce"})
REVERSAL_KINDS = frozenset({"revert", "void", "redeem_refund"})


def post(session: Session, shop: Shop, customer: Customer, posting: Posting) -> Entry | None:
    """Post to the ledger; for a store-credit program, intend the same move on the platform; on a
    platform with order notes, intend a note explaining a reversal."""
    entry = ledger.post(session, customer, posting)
    if entry is not None and entry.kind in REVERSAL_KINDS and entry.order_ref and shop.platform in ORDER_NOTE_PLATFORMS:
        writebacks.intend(session, customer.shop_id, "order_note", f"note:{posting.key}", {
            "order_id": entry.order_ref, "note": f"Clawback: {entry.explanation}",
        })  # fmt: skip
    if entry is not None and entry.coins_delta and ShopSettings.cached(shop.settings).earn.store_credit:
        writebacks.intend(session, customer.shop_id, "store_credit", f"store_credit:{posting.key}", {
            "customer_id": customer.platform_customer_id, "minor_units": entry.coins_delta,
            "currency": shop.currency, "entry_key": posting.key, "explanation": entry.explanation,
        })  # fmt: skip
    return entry


def settle_redemptions(
    session: Session,
    shop: Shop,
    snap: OrderSnapshot,
    customer: Customer,
    source: str,
    outcome: Outcome | None = None,
    *,
    rows: Rows | None = None,
) -> None:
    """Link redemptions to this order (by order id or discount code) and return what is due.
    `rows` may know that the shop has none (a worker's batch asks once)."""
    if rows is not None and not rows.may_have_redemptions(customer.shop_id):
        return
    settings = ShopSettings.cached(shop.settings)
    query = select(Redemption).where(Redemption.shop_id == customer.shop_id).with_for_update()
    linked = session.exec(query.where(Redemption.order_ref == snap.order_id)).all()
    if snap.discount_codes:
        by_code = session.exec(
            query.where(Redemption.order_ref.is_(None), Redemption.code.in_(sorted(snap.discount_codes)))  # type: ignore[union-attr]
        ).all()
        for redemption in by_code:
            redemption.order_ref = snap.order_id
            session.add(redemption)
        linked = [*linked, *by_code]
    for redemption in linked:
        decision = rules.redeem_target(snap, redemption.coins_redeemed, settings.redeem)
        due = decision.coins - redemption.coins_returned
        if due <= 0:
            continue  # returned coins are never taken back: "returned once only"
        redemption.coins_returned += due
        session.add(redemption)
        owner = customer if redemption.customer_id == customer.id else session.get(Customer, redemption.customer_id)
        assert owner is not None
        entry = post(
            session,
            shop,
            owner,
            Posting(
                "redeem_refund",
                decision.reason,
                f"{decision.cause}; {due} coins spent on it were returned",
                source=source,
                key=f"redemption:{redemption.id}:returned:{redemption.coins_returned}",
                coins_delta=due,
                order_ref=snap.order_id,
                redemption_id=redemption.id,
            ),
        )
        if entry is not None and outcome is not None:
            outcome.entries.append(entry)


def release_due(session: Session, now: datetime | None = None, source: str = "job:release") -> list[Entry]:
    """Post every held award whose hold has ended: pending coins become available, once."""
    now = (now or utcnow()).astimezone(UTC)
    due = session.exec(
        select(Award).where(Award.state == "held", Award.hold_until <= now).order_by(Award.id)  # type: ignore[arg-type,operator]
    ).all()
    posted = []
    for stale in due:
        order = session.exec(select(Order).where(Order.id == stale.order_id).with_for_update()).one()
        award = session.exec(select(Award).where(Award.id == stale.id).with_for_update()).one()
        session.refresh(award)
        if award.state != "held":
            continue  # released by a concurrent run
        customer = session.exec(select(Customer).where(Customer.id == award.customer_id).with_for_update()).one()
        award.state = "active"
        session.add(award)
        held = award.coins_booked
        if held == 0:
            continue  # everything was voided during the hold
        label = order.name or f"#{order.platform_order_id}"
        shop = session.get(Shop, award.shop_id)
        assert shop is not None
        entry = post(
            session,
            shop,
            customer,
            Posting(
                "release",
                "released",
                f"The hold on order {label} ended; {held} coins were released",
                source=source,
                key=f"award:{award.id}:release",
                coins_delta=held,
                pending_delta=-held,
                order_ref=order.platform_order_id,
                award_id=award.id,
            ),
        )
        if entry is not None:
            posted.append(entry)
    return posted
