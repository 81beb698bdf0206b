"""Initial schema: shops, customers, orders, awards, redemptions, the ledger, deliveries, write-backs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Constraints carry the invariants (one award per order, one idempotency key per shop, reverted
never above earned). Ledger entries are immutable: a trigger refuses UPDATE on both SQLite and
PostgreSQL; deletes stay possible only because shop/redact must erase a whole shop.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credentials", sa.String(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uninstalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("platform IN ('shopify', 'woocommerce', 'fynd', 'demo')", name="ck_shops_platform"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "domain", name="uq_shops_platform_domain"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("platform_customer_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("available_coins", sa.BigInteger(), nullable=False),
        sa.Column("pending_coins", sa.BigInteger(), nullable=False),
        sa.Column("shortfall_coins", sa.BigInteger(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("pending_coins >= 0", name="ck_customers_pending_nonneg"),
        sa.CheckConstraint("shortfall_coins >= 0", name="ck_customers_shortfall_nonneg"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "platform_customer_id", name="uq_customers_shop_platform_id"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.Column("customer_ref", sa.String(length=64), nullable=True),
        sa.CheckConstraint("status IN ('received', 'processed', 'failed', 'ignored')", name="ck_deliveries_status"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "delivery_id", name="uq_deliveries_shop_delivery"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_status_received", ["status", "received_at"], unique=False)
        batch_op.create_index("ix_deliveries_shop_customer", ["shop_id", "customer_ref"], unique=False)

    op.create_table(
        "data_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_exports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_exports_customer_ref"), ["customer_ref"], unique=False)

    op.create_table(
        "writebacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed', 'skipped')", name="ck_writebacks_status"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "idempotency_key", name="uq_writebacks_shop_idempotency"),
    )
    with op.batch_alter_table("writebacks", schema=None) as batch_op:
        batch_op.create_index("ix_writebacks_status_next", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("platform_order_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("snapshot_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "platform_order_id", name="uq_orders_shop_platform_id"),
    )
    op.create_table(
        "awards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("coins_earned", sa.BigInteger(), nullable=False),
        sa.Column("coins_reverted", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('held', 'active')", name="ck_awards_state"),
        sa.CheckConstraint("coins_earned >= 0 AND coins_reverted >= 0", name="ck_awards_nonneg"),
        sa.CheckConstraint("coins_reverted <= coins_earned", name="ck_awards_reverted_le_earned"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", name="uq_awards_order"),
    )
    with op.batch_alter_table("awards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_awards_hold_until"), ["hold_until"], unique=False)

    op.create_table(
        "redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("coins_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("coins_returned", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("coins_redeemed > 0", name="ck_redemptions_positive"),
        sa.CheckConstraint("coins_returned >= 0 AND coins_returned <= coins_redeemed", name="ck_redemptions_returned"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "code", name="uq_redemptions_shop_code"),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_redemptions_shop_order_ref", ["shop_id", "order_ref"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.Column("award_id", sa.Integer(), nullable=True),
        sa.Column("redemption_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("coins_delta", sa.BigInteger(), nullable=False),
        sa.Column("pending_delta", sa.BigInteger(), nullable=False),
        sa.Column("shortfall_delta", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("explanation", sa.String(length=1000), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('earn', 'pending', 'release', 'void', 'revert', 'redeem', 'redeem_refund', 'adjust', 'expire')",
            name="ck_ledger_kind",
        ),
        sa.CheckConstraint(
            "coins_delta <> 0 OR pending_delta <> 0 OR shortfall_delta <> 0", name="ck_ledger_moves_something"
        ),
        sa.CheckConstraint("shortfall_delta >= 0", name="ck_ledger_shortfall_nonneg"),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["redemption_id"], ["redemptions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_id", "idempotency_key", name="uq_ledger_shop_idempotency"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_shop_customer_id", ["shop_id", "customer_id", "id"], unique=False)
        batch_op.create_index("ix_ledger_shop_kind_id", ["shop_id", "kind", "id"], unique=False)
        batch_op.create_index("ix_ledger_shop_order_ref_id", ["shop_id", "order_ref", "id"], unique=False)

    _make_ledger_immutable()


_IMMUTABLE_MESSAGE = "ledger entries are immutable; post a correcting entry instead"


def _make_ledger_immutable() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION ledger_entries_immutable() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{_IMMUTABLE_MESSAGE}'; END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
            FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable()
        """)
    else:
        op.execute(f"""
            CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
            BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE_MESSAGE}'); END
        """)


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS ledger_entries_no_update"
        + (" ON ledger_entries" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_immutable()")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_shop_order_ref_id")
        batch_op.drop_index("ix_ledger_shop_kind_id")
        batch_op.drop_index("ix_ledger_shop_customer_id")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_redemptions_shop_order_ref")

    op.drop_table("redemptions")
    with op.batch_alter_table("awards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_awards_hold_until"))

    op.drop_table("awards")
    op.drop_table("orders")
    op.drop_table("writebacks")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_received")
        batch_op.drop_index("ix_deliveries_shop_customer")

    op.drop_table("webhook_deliveries")
    op.drop_table("data_exports")
    op.drop_table("customers")
    op.drop_table("shops")
