"""Spending and correcting coins: redemptions and manual adjustments."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlmodel import Session, select

from app import ledger, writebacks
from app.domain.postings import Entry, Posting
from app.domain.shop_settings import ShopSettings
from app.domain.snapshot import OrderSnapshot
from app.errors import InsufficientCoins, InvalidInput, NotFound
from app.models import Customer, Order, Redemption, Shop
from app.service import post, settle_redemptions

MAX_COINS = 10**12
MAX_ID_CHARS = 64  # the platform id columns
CODE = re.compile(r"\A[A-Z0-9][A-Z0-9_-]{2,63}\Z")


def _customer(session: Session, shop: Shop, platform_customer_id: str) -> Customer:
    assert shop.id is not None
    exists = session.exec(
        select(Customer.id).where(Customer.shop_id == shop.id, Customer.platform_customer_id == platform_customer_id)
    ).first()
    if exists is None:
        raise NotFound(f"no customer '{platform_customer_id}' in shop {shop.domain}")
    return ledger.lock_customer(session, shop.id, platform_customer_id)


def _check_coins(coins: int) -> None:
    if not 0 < coins <= MAX_COINS:
        raise InvalidInput(f"coins must be between 1 and {MAX_COINS}, not {coins}", field="coins")


def redeem(
    session: Session,
    shop: Shop,
    platform_customer_id: str,
    coins: int,
    *,
    source: str,
    order_ref: str | None = None,
    code: str | None = None,
) -> tuple[Redemption, Entry]:
    """Spend `coins` now, on an order (`order_ref`) or as a code an order will carry later."""
    _check_coins(coins)
    if code is not None:
        code = code.strip().upper()
        if not CODE.match(code):
            raise InvalidInput("a code is 3-64 letters, digits, '-' or '_'", field="code")
        taken = session.exec(
            select(Redemption.id).where(Redemption.shop_id == shop.id, Redemption.code == code)
        ).first()
        if taken is not None:
            raise InvalidInput(f"code {code} is already in use in this shop", field="code")
    if order_ref is not None and not 0 < len(order_ref.strip()) <= MAX_ID_CHARS:
        raise InvalidInput(f"an order id is 1 to {MAX_ID_CHARS} characters", field="order")
    customer = _customer(session, shop, platform_customer_id)
    if customer.available_coins < coins:
        raise InsufficientCoins(
            f"customer {platform_customer_id} has {customer.available_coins} coins available, not {coins}"
        )
    assert shop.id is not None and customer.id is not None
    redemption = Redemption(
        shop_id=shop.id, customer_id=customer.id, order_ref=order_ref, code=code, coins_redeemed=coins
    )
    session.add(redemption)
    session.flush()
    where = f"order #{order_ref}" if order_ref else (f"code {code}" if code else "a reward")
    entry = post(
        session,
        shop,
        customer,
        Posting(
            "redeem",
            "redeemed",
            f"{coins} coins were spent on {where}",
            source=source,
            key=f"redemption:{redemption.id}:spent",
            coins_delta=-coins,
            order_ref=order_ref,
            redemption_id=redemption.id,
        ),
    )
    assert entry is not None
    if code is not None:
        # The code goes to the platform as a single-use discount worth the coins, for this customer.
        value = ShopSettings.from_stored(shop.settings).redeem.coin_value * coins
        writebacks.intend(session, shop.id, "discount_code", f"discount:{redemption.id}", {
            "code": code, "amount": str(value.quantize(Decimal("0.01"))), "currency": shop.currency,
            "customer_id": platform_customer_id, "redemption_id": redemption.id, "coins": coins,
            "email": customer.email,
        })  # fmt: skip
    if order_ref is not None:
        # The order may already be cancelled: settle now rather than at its next event.
        order = session.exec(
            select(Order).where(Order.shop_id == shop.id, Order.platform_order_id == order_ref)
        ).first()
        if order is not None and order.snapshot:
            snap = OrderSnapshot.from_json(order.snapshot)
            settle_redemptions(session, shop, snap, customer, source)
    return redemption, entry


def adjust(session: Session, shop: Shop, platform_customer_id: str, coins: int, *, reason: str, source: str,
           key: str) -> Entry | None:  # fmt: skip
    """A manual correction by the merchant or an operator, with the reason in their words."""
    if coins == 0 or abs(coins) > MAX_COINS:
        raise InvalidInput(f"an adjustment is a non-zero number of coins up to {MAX_COINS}", field="coins")
    reason = " ".join(reason.split())
    if len(reason) < 3 or len(reason) > 500:
        raise InvalidInput("a reason of 3 to 500 characters is required", field="reason")
    customer = _customer(session, shop, platform_customer_id)
    verb = "added" if coins > 0 else "removed"
    return post(
        session,
        shop,
        customer,
        Posting("adjust", "manual", f"{abs(coins)} coins {verb} by hand: {reason}", source=source, key=key,
                coins_delta=coins),
    )  # fmt: skip
