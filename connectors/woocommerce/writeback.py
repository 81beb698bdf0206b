"""Carry out write-back intents on a WooCommerce store through its REST API.

- `order_note`: a private order note explaining a reversal (coins and reason). Notes have no
  idempotency key in WooCommerce, so the order's notes are read first and a note already there
  is not added twice (an attempt whose answer was lost).
- `tag_customer`: the customer flag for spent coins, as customer meta (`clawback_flag`, and
  `clawback_flag_reason`), since WooCommerce customers have no tags.
- `discount_code`: a single-use coupon worth the redeemed coins, for that customer's email.
- `register_webhooks`: the four order webhooks of a newly connected store (connect.py).

Answers become the runner's vocabulary: refused keys → RetryLater for an hour (the merchant may
reconnect; the intent is kept), another 4xx → GiveUp, the store unavailable → the runner's own
exponential backoff.
"""

from __future__ import annotations

from sqlmodel import Session

from app.config import Settings
from app.crypto import Vault
from app.errors import GiveUp, RetryLater
from app.models import Shop, Writeback
from app.shops import read_credentials, store_credentials
from app.writebacks import Executor, keep_whatever_happens
from connectors.woocommerce.client import KeysRefused, Refused, StoreClient
from connectors.woocommerce.connect import register_webhooks

KEYS_RETRY_S = 3600.0
FLAG_META_KEY = "clawback_flag"


def executor(settings: Settings, vault: Vault) -> Executor:
    """An executor for app.writebacks.run_one, bound to the app's address and key ring."""
    delivery_url = settings.app_url.rstrip("/") + "/webhooks/woocommerce"

    def execute(session: Session, shop: Shop, row: Writeback) -> str:
        if shop.uninstalled_at is not None:
            raise RetryLater("the store is disconnected", 6 * KEYS_RETRY_S)
        credentials = read_credentials(vault, shop)
        try:
            client = StoreClient.from_credentials(shop.domain, credentials)
            if row.kind == "register_webhooks":

                def save(registered: dict[str, int]) -> None:
                    merged = {**credentials, "webhook_ids": registered}
                    keep_whatever_happens(session, lambda s: store_credentials(s, vault, shop, merged))

                known = {str(k): int(v) for k, v in dict(credentials.get("webhook_ids") or {}).items()}
                done = register_webhooks(client, delivery_url, str(credentials["webhook_secret"]), known, save)
                credentials["webhook_ids"] = done
                note = f"webhooks {', '.join(f'{t}={i}' for t, i in sorted(done.items()))}"
                if credentials.get("launch_secret") and not credentials.get("launch_secret_sent"):
                    sent = client.send_launch_secret(str(credentials["launch_secret"]))
                    credentials["launch_secret_sent"] = sent
                    keep_whatever_happens(session, lambda s: store_credentials(s, vault, shop, dict(credentials)))
                    note += "; plugin launch secret " + ("sent" if sent else "not sent (no companion plugin)")
                return note
            return _carry_out(row, client)
        except KeysRefused as exc:
            raise RetryLater(str(exc), KEYS_RETRY_S) from exc
        except Refused as exc:
            raise GiveUp(str(exc)) from exc

    return execute


def _carry_out(row: Writeback, client: StoreClient) -> str:
    payload = row.payload
    if row.kind == "order_note":
        order_id, note = str(payload["order_id"]), str(payload["note"])
        existing = client.order_notes(order_id)
        if note in existing:
            return f"note already on order {order_id}"
        client.add_order_note(order_id, note)
        return f"note added to order {order_id}"
    if row.kind == "tag_customer":
        client.set_customer_meta(
            str(payload["customer_id"]),
            {FLAG_META_KEY: str(payload["tag"]), f"{FLAG_META_KEY}_reason": str(payload.get("why", ""))[:500]},
        )
        return f"customer meta {FLAG_META_KEY}={payload['tag']}"
    if row.kind == "discount_code":
        code, amount = str(payload["code"]), str(payload["amount"])
        email = payload.get("email")
        coupon = client.create_coupon(code, amount, str(email) if email else None,
                                      f"Clawback: {payload.get('coins')} coins redeemed")  # fmt: skip
        return f"coupon {code} ({coupon or 'already there'})"
    return f"skipped: WooCommerce has no write-back of kind {row.kind}"
