"""SQLModel tables. The schema itself is created only by Alembic (`migrations/`), never create_all.

Invariants live here as constraints as well as in code: one award per order, one idempotency key
per shop, balances that cannot go where the rules say they never go, an immutable ledger (a
trigger written in the migration refuses UPDATE on ledger_entries).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

PLATFORMS = ("shopify", "woocommerce", "fynd", "demo")
ENTRY_KINDS = ("earn", "pending", "release", "void", "revert", "redeem", "redeem_refund", "adjust", "expire")
AWARD_STATES = ("held", "active")
DELIVERY_STATES = ("received", "processed", "failed", "ignored")
WRITEBACK_STATES = ("pending", "done", "failed", "skipped")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


def _coins(default: int = 0) -> Any:
    return Field(default=default, sa_type=BigInteger)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Shop(SQLModel, table=True):
    __tablename__ = "shops"
    __table_args__ = (
        UniqueConstraint("platform", "domain", name="uq_shops_platform_domain"),
        CheckConstraint(_in("platform", PLATFORMS), name="ck_shops_platform"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=20)
    # Shopify: 'x.myshopify.com'; WooCommerce: the normalized store URL; Fynd: company:application.
    domain: str = Field(max_length=255)
    name: str = Field(default="", max_length=255)
    currency: str = Field(default="USD", max_length=3)
    credentials: str | None = None  # Fernet token of a JSON object (app.crypto.Vault)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    installed_at: datetime = _ts()
    uninstalled_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    synced_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # last reconciliation


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("shop_id", "platform_customer_id", name="uq_customers_shop_platform_id"),
        CheckConstraint("pending_coins >= 0", name="ck_customers_pending_nonneg"),
        CheckConstraint("shortfall_coins >= 0", name="ck_customers_shortfall_nonneg"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    platform_customer_id: str = Field(max_length=64)
    email: str | None = Field(default=None, max_length=320)
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    # Cached sums of the ledger, kept in the same transaction as every entry.
    available_coins: int = _coins()
    pending_coins: int = _coins()
    shortfall_coins: int = _coins()
    flagged_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = _ts()


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("shop_id", "platform_order_id", name="uq_orders_shop_platform_id"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    platform_order_id: str = Field(max_length=64)
    name: str = Field(default="", max_length=64)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", ondelete="SET NULL")
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    snapshot_updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = _ts()


class Award(SQLModel, table=True):
    """One per order: what was earned, under which rule, and what has gone back since."""

    __tablename__ = "awards"
    __table_args__ = (
        UniqueConstraint("order_id", name="uq_awards_order"),
        CheckConstraint("coins_earned >= 0 AND coins_reverted >= 0", name="ck_awards_nonneg"),
        CheckConstraint("coins_reverted <= coins_earned", name="ck_awards_reverted_le_earned"),
        CheckConstraint(_in("state", AWARD_STATES), name="ck_awards_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE")
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    rule: dict[str, Any] = Field(sa_type=JSON)
    # Cumulative coins moved in (earn, pending) and out (revert, void); booked = earned - reverted.
    coins_earned: int = _coins()
    coins_reverted: int = _coins()
    state: str = Field(default="active", max_length=10)
    hold_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)
    moves: int = 0  # how many ledger moves this award has made; part of their idempotency keys
    created_at: datetime = _ts()

    @property
    def coins_booked(self) -> int:
        return self.coins_earned - self.coins_reverted


class Redemption(SQLModel, table=True):
    """Coins spent, on an order or as a code waiting for one; what has come back."""

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("shop_id", "code", name="uq_redemptions_shop_code"),
        CheckConstraint("coins_redeemed > 0", name="ck_redemptions_positive"),
        CheckConstraint("coins_returned >= 0 AND coins_returned <= coins_redeemed", name="ck_redemptions_returned"),
        Index("ix_redemptions_shop_order_ref", "shop_id", "order_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    # The platform's order id: a redemption may be made before the order reaches us.
    order_ref: str | None = Field(default=None, max_length=64)
    code: str | None = Field(default=None, max_length=64)
    coins_redeemed: int = _coins()
    coins_returned: int = _coins()
    created_at: datetime = _ts()


class LedgerEntry(SQLModel, table=True):
    """Append-only. A correction is a new entry; the database refuses UPDATE."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key", name="uq_ledger_shop_idempotency"),
        CheckConstraint(_in("kind", ENTRY_KINDS), name="ck_ledger_kind"),
        CheckConstraint(
            "coins_delta <> 0 OR pending_delta <> 0 OR shortfall_delta <> 0", name="ck_ledger_moves_something"
        ),
        CheckConstraint("shortfall_delta >= 0", name="ck_ledger_shortfall_nonneg"),
        Index("ix_ledger_shop_customer_id", "shop_id", "customer_id", "id"),
        Index("ix_ledger_shop_order_ref_id", "shop_id", "order_ref", "id"),
        Index("ix_ledger_shop_kind_id", "shop_id", "kind", "id"),
        # Activity's date filter: the newest entries of a shop up to a date, without a scan.
        Index("ix_ledger_shop_created_id", "shop_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    customer_id: int = Field(foreign_key="customers.id", ondelete="CASCADE")
    order_ref: str | None = Field(default=None, max_length=64)  # the platform's order id
    award_id: int | None = Field(default=None, foreign_key="awards.id", ondelete="CASCADE")
    redemption_id: int | None = Field(default=None, foreign_key="redemptions.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    coins_delta: int = _coins()  # change to the available balance
    pending_delta: int = _coins()  # change to held coins
    shortfall_delta: int = _coins()  # coins that should have come back but had been spent
    reason: str = Field(max_length=40)
    explanation: str = Field(max_length=1000)
    source: str = Field(max_length=200)  # 'shopify:webhook:<id>', 'cli', 'operator:<name>', ...
    idempotency_key: str = Field(max_length=200)
    created_at: datetime = _ts()


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("shop_id", "delivery_id", name="uq_deliveries_shop_delivery"),
        CheckConstraint(_in("status", DELIVERY_STATES), name="ck_deliveries_status"),
        Index("ix_deliveries_status_received", "status", "received_at"),
        Index("ix_deliveries_shop_customer", "shop_id", "customer_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    platform: str = Field(max_length=20)
    topic: str = Field(max_length=100)
    delivery_id: str = Field(max_length=200)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    received_at: datetime = _ts()
    status: str = Field(default="received", max_length=10)
    attempts: int = 0
    last_error: str | None = None
    processed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Filled when processed, so privacy erasure can find a customer's raw payloads.
    order_ref: str | None = Field(default=None, max_length=64)
    customer_ref: str | None = Field(default=None, max_length=64)


class Writeback(SQLModel, table=True):
    """An intent to tell the platform something (tag a customer, add an order note), recorded in
    the ledger's transaction so it is never lost and never decided twice."""

    __tablename__ = "writebacks"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key", name="uq_writebacks_shop_idempotency"),
        CheckConstraint(_in("status", WRITEBACK_STATES), name="ck_writebacks_status"),
        Index("ix_writebacks_status_next", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    kind: str = Field(max_length=40)  # tag_customer | order_note | store_credit | discount_code
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    idempotency_key: str = Field(max_length=200)
    status: str = Field(default="pending", max_length=10)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = _ts()
    next_attempt_at: datetime = _ts()
    done_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class DataExport(SQLModel, table=True):
    """A customer's data, gathered for a privacy request (Shopify customers/data_request)."""

    __tablename__ = "data_exports"

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    customer_ref: str = Field(max_length=64, index=True)
    request_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = _ts()


class InstallToken(SQLModel, table=True):
    """A single-use, unguessable token binding an unsigned install callback (WooCommerce's key
    exchange) to the connect request that started it. Only its SHA-256 is stored."""

    __tablename__ = "install_tokens"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_install_tokens_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=20)
    token_hash: str = Field(max_length=64)
    store_url: str = Field(max_length=255)
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


API_KEY_SCOPES = ("read", "redeem")


class ApiKey(SQLModel, table=True):
    """A shop's key for the JSON API (/api/v1). Only its SHA-256 is stored: the key itself is shown
    once, when it is made (`clawback api-key create`). `read` reads the shop, balances and history;
    `redeem` may also spend a customer's coins."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("key_hash", name="uq_api_keys_hash"),
        CheckConstraint(_in("scope", API_KEY_SCOPES), name="ck_api_keys_scope"),
        Index("ix_api_keys_shop_id", "shop_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    name: str = Field(default="", max_length=100)
    prefix: str = Field(max_length=16)  # the key's first characters, to tell keys apart in a list
    key_hash: str = Field(max_length=64)
    scope: str = Field(default="read", max_length=10)
    created_at: datetime = _ts()
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class ApiRequest(SQLModel, table=True):
    """A redemption asked for through the API under the caller's idempotency key, with the answer
    given: a retry with the same key gets the same answer and spends nothing again."""

    __tablename__ = "api_requests"
    __table_args__ = (UniqueConstraint("shop_id", "idempotency_key", name="uq_api_requests_shop_key"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    idempotency_key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)  # SHA-256 of the request it was first used for
    redemption_id: int | None = Field(default=None, foreign_key="redemptions.id", ondelete="CASCADE")
    response: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = _ts()
