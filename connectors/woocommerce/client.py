"""The store's REST API (wc/v3) through the `woocommerce` package, with answers turned into our
vocabulary: a refused key is `KeysRefused`, a 4xx that retrying cannot fix is `Refused`, anything
else (5xx, timeouts, a store that is down) is `Unavailable`, which callers retry.

Requests use HTTP Basic auth over https (the package's default); a plain-http store (development)
gets OAuth 1.0a signatures from the package. Endpoints and shapes:
https://woocommerce.github.io/woocommerce-rest-api-docs/ (orders, order notes, customers, coupons,
webhooks, data/currencies/current).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests
from woocommerce import API

TIMEOUT_S = 30.0  # creating a webhook makes the store ping us before it answers
PAGE_SIZE = 100  # the REST API's maximum per_page
PLUGIN_NAMESPACE = "wc-clawback/v1"  # the companion WordPress plugin's REST routes


class WooCommerceError(Exception):
    """A REST call did not do what was asked; `status` and `code` are the store's answer."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class KeysRefused(WooCommerceError):
    """401/403: the consumer key was revoked or lacks the permission."""


class Refused(WooCommerceError):
    """Another 4xx: the request itself is wrong; retrying cannot help."""


class Unavailable(WooCommerceError):
    """5xx, a timeout or a connection error: the store may answer later."""


class StoreClient:
    """One store, one consumer key pair."""

    def __init__(self, store_url: str, consumer_key: str, consumer_secret: str, *, timeout_s: float = TIMEOUT_S,
                 namespace: str = "wc/v3") -> None:  # fmt: skip
        if not consumer_key or not consumer_secret:
            raise KeysRefused("no REST keys are stored for this store")
        self.store_url, self.timeout_s = store_url, timeout_s
        self.keys = (consumer_key, consumer_secret)
        self.api = API(url=store_url, consumer_key=consumer_key, consumer_secret=consumer_secret, version=namespace,
                       timeout=timeout_s, user_agent="Clawback")  # fmt: skip

    @classmethod
    def from_credentials(cls, store_url: str, credentials: Mapping[str, Any]) -> StoreClient:
        return cls(store_url, str(credentials.get("consumer_key") or ""), str(credentials.get("consumer_secret") or ""))

    def _call(self, method: str, endpoint: str, data: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            if method in ("GET", "DELETE"):
                fn = self.api.get if method == "GET" else self.api.delete
                response = fn(endpoint, params=params or {})
            else:
                fn = self.api.post if method == "POST" else self.api.put
                response = fn(endpoint, data, params=params or {})
        except requests.RequestException as exc:
            raise Unavailable(f"{method} {endpoint}: {type(exc).__name__}") from exc
        status = response.status_code
        code, message = _error(response) if status >= 300 else ("", "")
        if status in (401, 403):
            raise KeysRefused(f"{method} {endpoint}: {status} {code}: {message}", status, code)
        if 400 <= status < 500:
            raise Refused(f"{method} {endpoint}: {status} {code}: {message}", status, code)
        if status >= 300:
            raise Unavailable(f"{method} {endpoint}: {status}", status, code)
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(f"{method} {endpoint}: the answer is not JSON") from exc

    # --- reads ------------------------------------------------------------------------------

    def current_currency(self) -> str:
        """The store's currency code; also proves the keys work (one cheap authenticated call)."""
        body = self._call("GET", "data/currencies/current")
        code = body.get("code") if isinstance(body, Mapping) else None
        if not isinstance(code, str) or len(code) != 3:
            raise Unavailable("data/currencies/current did not name a currency")
        return code.upper()

    def orders_modified_after(self, after_iso: str) -> Iterator[dict[str, Any]]:
        """Every order modified after `after_iso` (UTC), page by page in id order (stable while paging)."""
        page = 1
        while True:
            params = {"modified_after": after_iso, "dates_are_gmt": "true", "orderby": "id", "order": "asc",
                      "per_page": PAGE_SIZE, "page": page, "status": "any"}  # fmt: skip
            batch = self._call("GET", "orders", params=params)
            if not isinstance(batch, list):
                raise Unavailable("orders did not answer a list")
            yield from (order for order in batch if isinstance(order, dict))
            if len(batch) < PAGE_SIZE:
                return
            page += 1

    # --- writes -----------------------------------------------------------------------------

    def add_order_note(self, order_id: str, note: str) -> int:
        body = self._call("POST", f"orders/{order_id}/notes", {"note": note, "customer_note": False})
        return int(body.get("id", 0)) if isinstance(body, Mapping) else 0

    def order_notes(self, order_id: str) -> list[str]:
        """The texts of the order's notes (newest first, as WooCommerce lists them)."""
        body = self._call("GET", f"orders/{order_id}/notes", params={"type": "internal"})
        return [str(n.get("note", "")) for n in body if isinstance(n, Mapping)] if isinstance(body, list) else []

    def set_customer_meta(self, customer_id: str, values: Mapping[str, str]) -> None:
        meta = [{"key": key, "value": value} for key, value in values.items()]
        self._call("PUT", f"customers/{customer_id}", {"meta_data": meta})

    def create_coupon(self, code: str, amount: str, email: str | None, description: str) -> int:
        """A single-use fixed-cart coupon worth `amount`, for one customer's email when known."""
        data: dict[str, Any] = {
            "code": code, "discount_type": "fixed_cart", "amount": amount, "individual_use": False,
            "usage_limit": 1, "usage_limit_per_user": 1, "description": description[:200],
        }  # fmt: skip
        if email:
            data["email_restrictions"] = [email]
        try:
            body = self._call("POST", "coupons", data)
        except Refused as exc:
            if exc.code == "woocommerce_rest_coupon_code_already_exists":
                return 0  # created by an earlier attempt whose answer was lost: done
            raise
        return int(body.get("id", 0)) if isinstance(body, Mapping) else 0

    def create_webhook(self, topic: str, delivery_url: str, secret: str) -> int:
        body = self._call("POST", "webhooks", {
            "name": f"Clawback {topic}", "topic": topic, "delivery_url": delivery_url, "secret": secret,
            "status": "active",
        })  # fmt: skip
        if not isinstance(body, Mapping) or not isinstance(body.get("id"), int):
            raise Unavailable("webhooks did not answer the new webhook's id")
        return int(body["id"])

    def send_launch_secret(self, secret: str) -> bool:
        """Give the companion plugin its launch secret; False when the plugin is not installed.

        The plugin's route is under `wc-clawback/`: WooCommerce authenticates REST routes whose
        namespace starts with `wc-` with its API keys, as it does its own (WC_REST_Authentication)."""
        plugin = StoreClient(self.store_url, *self.keys, timeout_s=self.timeout_s, namespace=PLUGIN_NAMESPACE)
        try:
            plugin._call("POST", "launch-secret", {"secret": secret})
        except Refused as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_webhook(self, webhook_id: int) -> None:
        try:
            self._call("DELETE", f"webhooks/{webhook_id}", params={"force": "true"})
        except Refused as exc:
            if exc.status != 404:
                raise  # already gone is what we wanted


def _error(response: requests.Response) -> tuple[str, str]:
    """WooCommerce's error code and message (`{code, message, data}`), short, for the operator."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, Mapping):
        return str(body.get("code", ""))[:100], str(body.get("message", ""))[:200]
    return "", ""
