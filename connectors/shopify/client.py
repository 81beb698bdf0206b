"""The only network I/O of the Shopify connector: Admin GraphQL through Shopify's `shopifyapp`.

`shopifyapp` sends the request, retries 429 and 502-504, and reports 401. What it leaves to us:
reading GraphQL's THROTTLED (a 200 with an error) into a wait computed from the cost bucket,
refreshing an expiring token before use, checking `userErrors`, and turning all of it into the
errors below, so a write-back job knows whether to retry, wait, or stop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
from shopify_app import admin_graphql_request

from app.config import Settings
from connectors.shopify import oauth
from connectors.shopify.domain import API_VERSION, shop_domain


class ShopifyError(RuntimeError):
    """Shopify refused or failed a request; retrying later may help."""


class Throttled(ShopifyError):
    """The cost bucket is empty: retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TokenRevoked(ShopifyError):
    """Our token is no longer accepted (uninstalled, revoked): wait for a reinstall."""


class UserError(ShopifyError):
    """Shopify understood the mutation and refused it (`userErrors`)."""

    def __init__(self, message: str, codes: list[str]) -> None:
        super().__init__(message)
        self.codes = codes


def gid(kind: str, platform_id: str) -> str:
    return platform_id if platform_id.startswith("gid://") else f"gid://shopify/{kind}/{platform_id}"


TAGS_ADD = """
mutation tagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""
STORE_CREDIT_CREDIT = """
mutation credit($id: ID!, $input: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $input) {
    storeCreditAccountTransaction { amount { amount currencyCode } balanceAfterTransaction { amount currencyCode } }
    userErrors { code field message }
  }
}"""
STORE_CREDIT_DEBIT = """
mutation debit($id: ID!, $input: StoreCreditAccountDebitInput!) {
  storeCreditAccountDebit(id: $id, debitInput: $input) {
    storeCreditAccountTransaction { amount { amount currencyCode } balanceAfterTransaction { amount currencyCode } }
    userErrors { code field message }
  }
}"""
STORE_CREDIT_BALANCE = """
query balance($id: ID!) {
  customer(id: $id) { storeCreditAccounts(first: 10) { nodes { id balance { amount currencyCode } } } }
}"""
DISCOUNT_CODE_CREATE = """
mutation discount($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""
ORDERS_SINCE = """
query orders($query: String!, $after: String) {
  orders(first: 50, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      legacyResourceId name updatedAt createdAt cancelledAt
      displayFinancialStatus displayFulfillmentStatus tags discountCodes currencyCode
      currentTotalPriceSet { shopMoney { amount currencyCode } }
      customer { legacyResourceId email tags }
      refunds { legacyResourceId createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
      fulfillments { displayStatus }
      returns(first: 20) { nodes { status } }
    }
  }
}"""


class AdminClient:
    """Admin GraphQL for one shop. `on_credentials` saves renewed tokens (encrypted, by the caller)."""

    def __init__(
        self,
        settings: Settings,
        shop: str,
        credentials: Mapping[str, Any],
        *,
        on_credentials: Callable[[dict[str, Any]], None] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        domain = shop_domain(shop)
        if domain is None:  # shopifyapp builds URLs from this: never let a non-Shopify host through
            raise ValueError(f"{shop!r} is not a myshopify.com domain")
        self.settings = settings
        self.domain = domain
        self.credentials = dict(credentials)
        self.on_credentials = on_credentials
        self.http = http

    def _token(self) -> str:
        try:
            renewed = oauth.fresh_credentials(self.settings, self.domain, self.credentials, http=self.http)
        except oauth.TokenError as exc:
            raise TokenRevoked(str(exc)) from exc
        if renewed is not None:
            self.credentials.update(renewed)
            if self.on_credentials is not None:
                self.on_credentials(dict(self.credentials))
        token = self.credentials.get("access_token")
        if not token:
            raise TokenRevoked(f"no access token for {self.domain}: reinstall the app")
        return str(token)

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        result = admin_graphql_request(
            query,
            shop=self.domain.removesuffix(".myshopify.com"),
            access_token=self._token(),
            api_version=API_VERSION,
            invalid_token_response=None,
            variables=dict(variables or {}),
            max_retries=2,
            http_client=self.http,
        )
        if result.ok:
            return dict(result.data or {})
        code = result.log.code
        if code == "unauthorized":
            raise TokenRevoked(f"{self.domain} refused our token")
        if code == "rate_limited":
            raise Throttled("HTTP 429 from Shopify", retry_after_s=2.0)
        if code == "graphql_errors":
            self._raise_graphql_errors(result.response.body)
        raise ShopifyError(f"{code}: {result.log.detail}")

    @staticmethod
    def _raise_graphql_errors(body: str) -> None:
        payload = json.loads(body or "{}")
        errors = payload.get("errors") or []
        if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
            cost = (payload.get("extensions") or {}).get("cost") or {}
            bucket = cost.get("throttleStatus") or {}
            needed = float(cost.get("requestedQueryCost") or 1) - float(bucket.get("currentlyAvailable") or 0)
            rate = float(bucket.get("restoreRate") or 50) or 50.0
            # The documented restore time: what is missing from the bucket over the restore rate.
            raise Throttled("THROTTLED", retry_after_s=max(1.0, math.ceil(needed / rate)))
        raise ShopifyError("; ".join(str(e.get("message")) for e in errors) or "GraphQL error")

    @staticmethod
    def _user_errors(node: Mapping[str, Any] | None, what: str) -> None:
        errors = (node or {}).get("userErrors") or []
        if errors:
            codes = [str(e.get("code")) for e in errors if e.get("code")]
            raise UserError(f"{what}: " + "; ".join(str(e.get("message")) for e in errors), codes)

    def tags_add(self, customer_id: str, tags: list[str]) -> None:
        data = self.execute(TAGS_ADD, {"id": gid("Customer", customer_id), "tags": tags})
        self._user_errors(data.get("tagsAdd"), "tagsAdd")

    def store_credit(self, customer_id: str, amount: Decimal, currency: str) -> Decimal:
        """Credit (amount > 0) or debit (amount < 0) the customer's store credit; the balance after.
        A debit beyond the balance raises UserError with code INSUFFICIENT_FUNDS."""
        assert amount != 0
        money = {"amount": str(abs(amount)), "currencyCode": currency}
        if amount > 0:
            data = self.execute(STORE_CREDIT_CREDIT, {"id": gid("Customer", customer_id),
                                                      "input": {"creditAmount": money}})  # fmt: skip
            node = data.get("storeCreditAccountCredit")
        else:
            data = self.execute(STORE_CREDIT_DEBIT, {"id": gid("Customer", customer_id),
                                                     "input": {"debitAmount": money}})  # fmt: skip
            node = data.get("storeCreditAccountDebit")
        self._user_errors(node, "store credit")
        after = ((node or {}).get("storeCreditAccountTransaction") or {}).get("balanceAfterTransaction") or {}
        return Decimal(str(after.get("amount", "0")))

    def store_credit_balance(self, customer_id: str, currency: str) -> Decimal:
        data = self.execute(STORE_CREDIT_BALANCE, {"id": gid("Customer", customer_id)})
        accounts = (((data.get("customer") or {}).get("storeCreditAccounts") or {}).get("nodes")) or []
        for account in accounts:
            balance = account.get("balance") or {}
            if balance.get("currencyCode") == currency:
                return Decimal(str(balance.get("amount", "0")))
        return Decimal(0)

    def create_discount_code(self, code: str, amount: Decimal, customer_id: str, title: str) -> str:
        """A single-use, fixed-amount code for one customer; the discount node's id."""
        data = self.execute(DISCOUNT_CODE_CREATE, {"input": {
            "title": title, "code": code, "startsAt": "2020-01-01T00:00:00Z",
            "usageLimit": 1, "appliesOncePerCustomer": True,
            "context": {"customers": {"add": [gid("Customer", customer_id)]}},
            "customerGets": {"value": {"discountAmount": {"amount": str(amount), "appliesOnEachItem": False}},
                             "items": {"all": True}},
            "combinesWith": {"orderDiscounts": False, "productDiscounts": False, "shippingDiscounts": True},
        }})  # fmt: skip
        node = data.get("discountCodeBasicCreate")
        self._user_errors(node, "discountCodeBasicCreate")
        return str(((node or {}).get("codeDiscountNode") or {}).get("id", ""))

    def orders_updated_since(self, since_iso: str) -> Iterator[dict[str, Any]]:
        """Orders changed since `since_iso` (GraphQL nodes), oldest first, page by page."""
        after = None
        while True:
            data = self.execute(ORDERS_SINCE, {"query": f"updated_at:>'{since_iso}'", "after": after})
            orders = data.get("orders") or {}
            yield from orders.get("nodes") or []
            page = orders.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            after = page.get("endCursor")
