"""Apply an order snapshot: merge it, ask the rules for targets, move the ledger by the difference.

This is the one path every source of order facts goes through: webhooks of every platform,
reconciliation, the demo, the tests. Locks are taken in one order (order row, then customer
row) so two transactions on the same order or customer wait for each other instead of
deadlocking or double-posting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from app import ledger, prefetch, rules, writebacks
from app.ledger import Entry, Posting
from app.models import Award, Customer, Order, Redemption, Shop, utcnow
from app.shop_settings import ShopSettings
from app.snapshot import OrderSnapshot, normalize_tag


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


# The hot path's queries, built once: the values come as execution parameters (`.params()` would
# copy the statement, and SQLAlchemy would compute the copy's cache key on every delivery).
_ORDER = (
    select(Order)
    .where(Order.shop_id == bindparam("shop_id"), Order.platform_order_id == bindparam("order_id"))
    .with_for_update()
)
_AWARD = select(Award).where(Award.order_id == bindparam("order_id")).with_for_update()


def _new_order(shop: Shop, snap: OrderSnapshot, now: datetime, customer_id: int | None = None) -> Order:
    """An order row never seen before, with every column's final value (one INSERT, no UPDATE)."""
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


def _lock_order(
    session: Session, shop: Shop, incoming: OrderSnapshot, now: datetime
) -> tuple[Order | None, OrderSnapshot | None]:
    """The order's row, locked, and its stored snapshot; no snapshot when the order is new.

    On SQLite (the only writer: no one else can insert the order after our SELECT), and in a
    worker's batch that loaded its rows up front (where another worker's insert of the same order
    fails this whole batch, which is then applied again one savepoint each), a new order is left
    to `apply_snapshot` (None), which inserts it once its customer is known. Otherwise, on
    PostgreSQL, it is inserted here, in a savepoint, so that its row lock is taken before the
    customer's.
    """
    params = {"shop_id": shop.id, "order_id": incoming.order_id}
    order = prefetch.lookup(
        session, "orders", (shop.id, incoming.order_id), lambda: session.exec(_ORDER, params=params).first()
    )
    if order is not None:
        return order, OrderSnapshot.from_json(order.snapshot)
    if prefetch.of(session) is not None or ledger.sole_writer(session):
        return None, None
    from sqlalchemy.exc import IntegrityError

    order = _new_order(shop, incoming, now)
    try:
        with session.begin_nested():
            session.add(order)
    except IntegrityError:
        # Created by a concurrent transaction: lock theirs and merge into it.
        order = session.exec(_ORDER, params=params).one()
        return order, OrderSnapshot.from_json(order.snapshot)
    return order, None


def _add_order(session: Session, known: prefetch.Prefetched | None, order: Order) -> Order:
    """A new order: in a batch on SQLite inserted at once (with no award yet); otherwise added, and
    inserted by the award's flush or the caller's."""
    if known is None:
        session.add(order)
        return order
    prefetch.insert_now(session, order)
    assert order.id is not None
    known.orders[(order.shop_id, order.platform_order_id)] = order
    known.awards[order.id] = None
    return order


def apply_snapshot(
    session: Session, shop: Shop, incoming: OrderSnapshot, *, source: str, now: datetime | None = None
) -> Outcome:
    """Merge `incoming` into the stored order and bring its award and redemptions to target."""
    now = now or utcnow()
    assert shop.id is not None
    order, stored = _lock_order(session, shop, incoming, now)
    merged = incoming
    if stored is not None:
        assert order is not None
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
    known = prefetch.of(session)
    if merged.customer_id is None:
        if order is None:
            _add_order(session, known, _new_order(shop, merged, now))
        outcome.note = "guest order: nothing to earn or return"
        return outcome
    settings = ShopSettings.cached(shop.settings)
    # No autoflush from here to the posting: what these queries look up (the customer, the award,
    # an entry's key, a write-back's key) is flushed as soon as it is created, so flushing the
    # order's and customer's pending changes before each query would only cost a unit of work
    # each; the session's next flush writes them all at once.
    with session.no_autoflush:
        customer = ledger.lock_customer(session, shop.id, merged.customer_id, merged.customer_email)
        if merged.customer_tags - {normalize_tag(t) for t in customer.tags}:
            customer.tags = sorted(set(customer.tags) | merged.customer_tags)
        if order is None:
            order = _add_order(session, known, _new_order(shop, merged, now, customer.id))
        else:
            order.customer_id = customer.id
        _settle_award(session, shop, settings, order, merged, customer, source, now, outcome, new=stored is None)
    settle_redemptions(session, shop, merged, customer, source, outcome)
    return outcome


def _settle_award(
    session: Session,
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
    known = prefetch.of(session)
    award = None
    if not new:
        award = prefetch.lookup(
            session, "awards", order.id, lambda: session.exec(_AWARD, params={"order_id": order.id}).first()
        )
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
        if order.id is None:
            session.flush()  # the new order: the award refers to its id
        assert order.id is not None and customer.id is not None and shop.id is not None
        award = Award(
            shop_id=shop.id,
            order_id=order.id,
            customer_id=customer.id,
            rule=rule.to_json(),
            state="held" if delay else "active",
            hold_until=now + timedelta(days=delay) if delay else None,
            created_at=utcnow(),  # given: pydantic would inspect the default factory's signature
        )
        if known is not None:
            prefetch.insert_now(session, award)
            known.awards[order.id] = award
        else:
            session.add(award)
            session.flush()
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
) -> None:
    """Link redemptions to this order (by order id or discount code) and return what is due."""
    if not _may_have_redemptions(session, customer.shop_id):
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


BATCH = "clawback_batch"  # Session.info key: a worker's batch, which only applies deliveries
_REDEMPTIONS = Redemption.__table__  # type: ignore[attr-defined]
_ANY_REDEMPTION = (
    core_select(_REDEMPTIONS.c.id).where(_REDEMPTIONS.c.shop_id == bindparam("shop_id")).limit(1)
)  # plain Core: no ORM entity to load


def _may_have_redemptions(session: Session, shop_id: int) -> bool:
    """False when the shop has no redemption at all, asked once per batch transaction.

    Only in a worker's batch (`session.info[BATCH]`), which applies deliveries and creates no
    redemption itself: within its transaction the answer holds on SQLite (the only writer); on
    PostgreSQL a redemption committed meanwhile is linked by the order's next event or by the
    reconciliation, as it would be if it had been committed a moment after this order's query.
    """
    if not session.info.get(BATCH):
        return True
    known: dict[int, bool] = session.info.setdefault("has_redemptions", {})
    if shop_id not in known:
        found = session.connection().execute(_ANY_REDEMPTION, {"shop_id": shop_id}).first()
        known[shop_id] = found is not None
    return known[shop_id]


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
