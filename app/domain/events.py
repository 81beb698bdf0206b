"""What a platform delivery means, in the domain's words. Connectors produce these; the intake
service (`app.intake`) carries them out. A delivery may mean several events, or none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.snapshot import MAX_ID_CHARS, OrderSnapshot, Refund, Status, check_text


@dataclass(frozen=True)
class OrderChanged:
    """The order as it now stands."""

    snapshot: OrderSnapshot


@dataclass(frozen=True)
class OrderAmended:
    """One new fact about an order whose other facts come from its last snapshot: a refund
    (Shopify refunds/create), a sticky status (a delivery event, a closed return), or a status the
    order took at `at` in place of its other non-sticky ones (WooCommerce: trashed, with only the
    order id in the payload). `at` None means "when the delivery arrived"."""

    order_id: str
    at: datetime | None
    refund: Refund | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        check_text("order_id", self.order_id, MAX_ID_CHARS)
        if not self.order_id:
            raise ValueError("order_id is empty")


@dataclass(frozen=True)
class AppUninstalled:
    """Stop work for the shop; keep its data until the platform asks to erase it."""


@dataclass(frozen=True)
class CustomerDataRequested:
    customer_id: str
    request_id: str
    order_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.customer_id, self.request_id, *self.order_ids):
            check_text("id", value, MAX_ID_CHARS)


@dataclass(frozen=True)
class CustomerRedacted:
    customer_id: str
    order_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.customer_id, *self.order_ids):
            check_text("id", value, MAX_ID_CHARS)


@dataclass(frozen=True)
class ShopRedacted:
    """Erase everything about the shop."""


@dataclass(frozen=True)
class Ignored:
    """A topic or payload we accept but that changes nothing, and why. `why` is stored with the
    delivery, and may quote the payload: it is made storable text (no NUL, no lone surrogate)."""

    why: str

    def __post_init__(self) -> None:
        storable = self.why.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:2000]
        object.__setattr__(self, "why", storable)


Event = OrderChanged | OrderAmended | AppUninstalled | CustomerDataRequested | CustomerRedacted | ShopRedacted | Ignored
