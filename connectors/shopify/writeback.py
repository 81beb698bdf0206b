"""Carry out write-back intents on Shopify through the Admin client.

Shopify's answers become the runner's vocabulary: THROTTLED → RetryLater after the restore time;
a revoked token → RetryLater for an hour (the merchant may reinstall; the intent is kept); a
refused mutation → GiveUp. A store-credit debit beyond the customer's Shopify balance (the coins
were spent at checkout) takes what is there and records the rest as a shortfall, by the shop's
policy.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlmodel import Session

from app import ledger
from app.config import Settings
from app.crypto import Vault
from app.domain.rules import minor_units
from app.domain.shop_settings import ShopSettings
from app.errors import GiveUp, RetryLater
from app.models import Shop, Writeback, utcnow
from app.service import flag_customer
from app.shops import read_credentials, store_credentials
from app.writebacks import Executor, keep_whatever_happens, record_platform_shortfall
from connectors.shopify.client import AdminClient, Throttled, TokenRevoked, UserError

TOKEN_RETRY_S = 3600.0
UNINSTALLED_RETRY_S = 6 * 3600.0


def executor(settings: Settings, vault: Vault, http: httpx.Client | None = None) -> Executor:
    """An executor for app.writebacks.run_one, bound to the app's settings and key ring."""

    def execute(session: Session, shop: Shop, row: Writeback) -> str:
        if shop.uninstalled_at is not None:
            # Kept, not dropped: a reinstall resumes it (store credit must not drift); shop/redact,
            # 48 hours after an uninstall, erases it with the shop.
            raise RetryLater("the app is uninstalled from this shop", UNINSTALLED_RETRY_S)

        def save(credentials: dict[str, object]) -> None:
            # Shopify has already rotated the refresh token: keep the new pair even if this
            # attempt fails and its savepoint is rolled back.
            keep_whatever_happens(session, lambda s: store_credentials(s, vault, shop, dict(credentials)))

        client = AdminClient(settings, shop.domain, read_credentials(vault, shop), on_credentials=save, http=http)
        try:
            return _carry_out(session, shop, row, client)
        except Throttled as exc:
            raise RetryLater(str(exc), exc.retry_after_s) from exc
        except TokenRevoked as exc:
            raise RetryLater(str(exc), TOKEN_RETRY_S) from exc
        except UserError as exc:
            raise GiveUp(str(exc)) from exc

    return execute


def _carry_out(session: Session, shop: Shop, row: Writeback, client: AdminClient) -> str:
    payload = row.payload
    if row.kind == "tag_customer":
        client.tags_add(str(payload["customer_id"]), [str(payload["tag"])])
        return f"tagged {payload['tag']}"
    if row.kind == "discount_code":
        code, amount = str(payload["code"]), Decimal(str(payload["amount"]))
        node = client.create_discount_code(code, amount, str(payload["customer_id"]), title=f"Clawback {code}")
        return f"created {node}"
    if row.kind == "store_credit":
        return _store_credit(session, shop, row, client)
    return f"skipped: Shopify has no write-back of kind {row.kind}"


def _store_credit(session: Session, shop: Shop, row: Writeback, client: AdminClient) -> str:
    customer = str(row.payload["customer_id"])
    currency = str(row.payload["currency"])
    units = int(row.payload["minor_units"])
    amount = Decimal(units).scaleb(-minor_units(currency))
    try:
        after = client.store_credit(customer, amount, currency)
        return f"store credit {amount:+} {currency}, balance {after}"
    except UserError as exc:
        if "INSUFFICIENT_FUNDS" not in exc.codes or units >= 0:
            raise
    # Spent at checkout already: take what is left, and record the rest as the policy says.
    available = client.store_credit_balance(customer, currency)
    if available > 0:
        client.store_credit(customer, -available, currency)
    short_units = -units - int(available.scaleb(minor_units(currency)))
    policy = ShopSettings.from_stored(shop.settings).revert
    note = (f"Shopify store credit held only {available} {currency} of the {-amount} {currency} to take back; "
            f"{short_units} coins were already spent")  # fmt: skip
    record_platform_shortfall(session, shop, customer, short_units, note, key=f"shortfall:{row.idempotency_key}")
    if policy.shortfall == "floor_and_flag":
        assert shop.id is not None
        flag_customer(session, ledger.lock_customer(session, shop.id, customer), policy.flag_tag, utcnow(), why=note)
    return note
