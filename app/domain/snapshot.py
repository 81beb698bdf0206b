"""The canonical order snapshot: what every connector turns a platform's order into.

A snapshot is a fact about an order at a moment (`updated_at`). Two snapshots of the same order
merge with `merge()`, a join: refunds are a set keyed by refund id (a refund, once made, is a
fact forever), so are the sticky statuses (paid, fulfilled, delivered, returned); everything else
comes from the newer snapshot. Because the merge is commutative,
associative and idempotent, duplicated, reordered and coalesced deliveries converge to one state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

MAX_ID_CHARS = 64  # platform ids: Shopify's exceed 2^53, so they travel as strings


class Status(StrEnum):
    """The shared status vocabulary. Connectors map native statuses here; UNKNOWN is explicit."""

    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    CANCELLED = "cancelled"
    FULFILLED = "fulfilled"
    DELIVERED = "delivered"
    RETURNED = "returned"
    UNKNOWN = "unknown"


# A status implies the ones it could only follow: a refunded order was paid, a returned one
# delivered. Rules ask "has this order been paid?" without every connector spelling it out.
_IMPLIES: dict[Status, frozenset[Status]] = {
    Status.PARTIALLY_REFUNDED: frozenset({Status.PAID}),
    Status.REFUNDED: frozenset({Status.PAID}),
    Status.DELIVERED: frozenset({Status.FULFILLED}),
    Status.RETURNED: frozenset({Status.DELIVERED, Status.FULFILLED}),
}


# Facts that, once true of an order, stay true: a later snapshot that omits them (or a platform
# event that reports only one of them) must not erase them. Merges union these.
STICKY = frozenset({Status.PAID, Status.FULFILLED, Status.DELIVERED, Status.RETURNED})


def normalize_tag(tag: str) -> str:
    """Tags compare trimmed and case-insensitively (Shopify: 'Fraud ' == 'fraud')."""
    return " ".join(tag.split()).casefold()


def normalize_tags(tags: str | list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """Accept one comma-separated string (Shopify) or a list; drop empties."""
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    return frozenset(t for t in (normalize_tag(i) for i in items) if t and _storable_tag(t))


def _storable_tag(tag: str) -> bool:
    """Tags we can store and compare; anything else cannot match a merchant's tag anyway."""
    try:
        check_text("tag", tag, 255)
    except ValueError:
        return False
    return True


MAX_CODE_CHARS = 64  # redemptions.code
MAX_CURRENCY_CHARS = 16  # ISO 4217 codes are three letters; room for a platform's own


def _storable_code(code: str) -> bool:
    """Codes a redemption can have; any other cannot name one, and must not reach a query (NUL
    and lone surrogates cannot be sent to PostgreSQL)."""
    try:
        check_text("discount code", code, MAX_CODE_CHARS)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, order=True)
class Refund:
    """One refund of money on an order, in the shop's currency. `amount` is positive."""

    refund_id: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not self.amount.is_finite() or self.amount > MAX_AMOUNT:
            raise ValueError(f"refund {self.refund_id} has an impossible amount {self.amount}")
        if self.amount < 0:
            raise ValueError(f"refund {self.refund_id} has a negative amount {self.amount}")
        check_text("refund_id", self.refund_id, MAX_ID_CHARS)


MAX_AMOUNT = Decimal(10) ** 12  # no order is worth a trillion; beyond it, a payload is broken


def check_text(name: str, text: str | None, limit: int) -> None:
    """Text a database will store: no NUL, valid UTF-8 (no lone surrogates), within its column."""
    if text is None:
        return
    if len(text) > limit or "\x00" in text:
        raise ValueError(f"{name} is longer than {limit} characters or contains NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid text") from None


def _unique_refunds(refunds: frozenset[Refund]) -> frozenset[Refund]:
    """One refund per id. Should a platform ever restate a refund, the larger amount is kept
    (deterministically, whatever the arrival order)."""
    by_id: dict[str, Refund] = {}
    for refund in refunds:
        kept = by_id.get(refund.refund_id)
        if kept is None or refund.amount > kept.amount:
            by_id[refund.refund_id] = refund
    return frozenset(by_id.values())


@dataclass(frozen=True)
class OrderSnapshot:
    """An order as it stands at `updated_at`, in the shop's currency (never presentment money)."""

    platform: str
    shop: str
    order_id: str
    updated_at: datetime
    total: Decimal
    currency: str
    customer_id: str | None = None  # None: a guest order, which never earns
    order_name: str = ""
    statuses: frozenset[Status] = frozenset()
    refunds: frozenset[Refund] = frozenset()
    tags: frozenset[str] = frozenset()
    customer_tags: frozenset[str] = frozenset()
    discount_codes: frozenset[str] = frozenset()
    customer_email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name, value in (("order_id", self.order_id), ("customer_id", self.customer_id or "-")):
            if not 0 < len(value) <= MAX_ID_CHARS:
                raise ValueError(f"{name} must be 1 to {MAX_ID_CHARS} characters")
        texts = {"order_id": self.order_id, "customer_id": self.customer_id, "order_name": self.order_name}
        for name, text in texts.items():
            check_text(name, text, MAX_ID_CHARS)
        check_text("customer_email", self.customer_email, 320)
        # The shop's currency code (three letters on every platform we know); the earn rule quotes
        # it in every explanation, so text a database cannot store would fail the posting.
        check_text("currency", self.currency, MAX_CURRENCY_CHARS)
        if not self.total.is_finite() or self.total > MAX_AMOUNT:
            raise ValueError(f"order {self.order_id} has an impossible total {self.total}")
        if self.total < 0:
            raise ValueError(f"order {self.order_id} has a negative total {self.total}")
        if self.updated_at.tzinfo is None:
            object.__setattr__(self, "updated_at", self.updated_at.replace(tzinfo=UTC))
        closed = set(self.statuses)
        for status in self.statuses:
            closed |= _IMPLIES.get(status, frozenset())
        object.__setattr__(self, "statuses", frozenset(closed))
        object.__setattr__(self, "refunds", _unique_refunds(self.refunds))
        object.__setattr__(self, "tags", normalize_tags(self.tags))
        object.__setattr__(self, "customer_tags", normalize_tags(self.customer_tags))
        codes = (c.strip().upper() for c in self.discount_codes)
        object.__setattr__(self, "discount_codes", frozenset(c for c in codes if c and _storable_code(c)))

    @property
    def label(self) -> str:
        """How a merchant names the order: '#1001' when the platform has a name."""
        return self.order_name or f"#{self.order_id}"

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal(0))

    @property
    def net(self) -> Decimal:
        """Total less every refund, never below zero."""
        return max(self.total - self.refunded, Decimal(0))

    def has(self, status: Status) -> bool:
        return status in self.statuses

    def _rank(self) -> tuple[datetime, str]:
        # Ties on updated_at are broken by content, so merge() does not depend on arrival order.
        # What merge() unions (refunds, sticky statuses) is left out of the rank: ranking by it
        # would make the result of a three-way merge depend on which pair met first.
        content = {k: v for k, v in self.to_json().items() if k != "refunds"}
        content["statuses"] = sorted(self.statuses - STICKY)
        return (self.updated_at, json.dumps(content, sort_keys=True))

    def merge(self, other: OrderSnapshot) -> OrderSnapshot:
        """The join of two snapshots of one order: the newer one's fields, every refund of both."""
        if (self.shop, self.order_id) != (other.shop, other.order_id):
            raise ValueError("can only merge snapshots of the same order")
        if self.updated_at != other.updated_at:  # the rank's first term decides: no need for its second
            newer = self if self.updated_at > other.updated_at else other
        else:
            newer = self if self._rank() >= other._rank() else other
        sticky = (self.statuses | other.statuses) & STICKY
        return replace(
            newer, statuses=(newer.statuses - STICKY) | sticky, refunds=_unique_refunds(self.refunds | other.refunds)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "shop": self.shop,
            "order_id": self.order_id,
            "order_name": self.order_name,
            "updated_at": self.updated_at.isoformat(),
            "total": str(self.total),
            "currency": self.currency,
            "customer_id": self.customer_id,
            "customer_email": self.customer_email,
            "statuses": sorted(self.statuses),
            "refunds": [{"refund_id": r.refund_id, "amount": str(r.amount)} for r in sorted(self.refunds)],
            "tags": sorted(self.tags),
            "customer_tags": sorted(self.customer_tags),
            "discount_codes": sorted(self.discount_codes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderSnapshot:
        return cls(
            platform=data["platform"],
            shop=data["shop"],
            order_id=str(data["order_id"]),
            order_name=data.get("order_name", ""),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            total=Decimal(data["total"]),
            currency=data["currency"],
            customer_id=data.get("customer_id"),
            customer_email=data.get("customer_email"),
            statuses=frozenset(Status(s) for s in data.get("statuses", [])),
            refunds=frozenset(Refund(r["refund_id"], Decimal(r["amount"])) for r in data.get("refunds", [])),
            tags=frozenset(data.get("tags", [])),
            customer_tags=frozenset(data.get("customer_tags", [])),
            discount_codes=frozenset(data.get("discount_codes", [])),
        )
