"""The small interface every platform implements (python-social-auth's backends are the model).

Differences between platforms are class attributes and a few overridden methods; the web layer
calls only what is declared here, in this order: `shop_hint` from the headers, `verify` the raw
body with that shop's `secrets` (before any parsing), `identify` the delivery, store it, and later
`parse` it into domain events. A platform that names the shop only inside the signed body
(`shop_in_body`) is verified against the secrets of all its shops first, and against the named
shop's own secrets once `identify` has read the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import jsoncodec
from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.domain.events import Event, Ignored
from app.domain.snapshot import OrderSnapshot, check_text
from app.errors import MalformedDelivery
from app.models import Shop
from app.writebacks import Executor


def hmac_sha256_matches(raw_body: bytes, given: str | None, secrets: Sequence[str], *, encoding: str) -> bool:
    """Whether `given` is the HMAC-SHA256 of the raw body under one of `secrets`, as `base64` or
    `hex` text, compared in constant time (every secret is tried, so timing says nothing)."""
    presented = (given or "").strip()
    if not presented or not presented.isascii():
        return False
    if encoding == "hex":
        presented = presented.lower()
    matched = False
    for secret in secrets:
        if secret:
            digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
            expected = base64.b64encode(digest) if encoding == "base64" else digest.hex().encode()
            matched |= hmac.compare_digest(expected, presented.encode())
    return matched


MAX_DOOR_CHARS = 2000  # longer ids and topics are cut to their columns when stored, not refused


@dataclass(frozen=True)
class Delivery:
    """Who sent a webhook and which one it is: enough to store it under a UNIQUE id."""

    shop: str  # the shop's stored domain or URL
    delivery_id: str
    topic: str

    def __post_init__(self) -> None:
        # Checked at the door: each is looked up, stored or hashed, and a NUL (PostgreSQL) or a lone
        # surrogate (either database) would fail there, after the 200 is due: refused as a 400 now.
        for name in ("shop", "delivery_id", "topic"):
            check_text(name, getattr(self, name), MAX_DOOR_CHARS)


class Connector(ABC):
    """One platform. Subclasses set the class attributes and implement the abstract methods."""

    name: str  # registry key and `shops.platform`
    signature_header: str  # the header carrying the HMAC of the raw body
    topic_header: str | None = None  # where the event type travels, when it is a header
    # Privacy topics answered 200 even for a shop we do not hold: there is nothing to give or erase.
    compliance_topics: frozenset[str] = frozenset()
    # True when no header names the shop and only the signed body does (Fynd): `shop_hint` is None, the
    # signature is checked against every secret the platform's shops hold before anything is parsed,
    # then again against the secrets of the shop `identify` reads from the body.
    shop_in_body: bool = False
    # Topics a platform sends only to test the endpoint (Fynd's ping): answered 200 once verified and
    # identified, never stored.
    test_topics: frozenset[str] = frozenset()

    @abstractmethod
    def shop_hint(self, headers: Mapping[str, str]) -> str | None:
        """Which shop the delivery claims to come from, from headers alone (nothing parsed yet),
        normalized as `shops.domain` stores it; None when the headers do not say."""

    @abstractmethod
    def secrets(self, settings: Settings, credentials: Mapping[str, Any]) -> list[str]:
        """The secrets a delivery for this shop may be signed with, newest first."""

    @abstractmethod
    def verify(self, raw_body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> bool:
        """True when the signature of `raw_body` matches under one of `secrets` (constant time).
        Several secrets are accepted while one is being rotated."""

    @abstractmethod
    def identify(self, raw_body: bytes, headers: Mapping[str, str]) -> Delivery:
        """The shop, delivery id and topic of a verified delivery; ValueError when they are missing."""

    def is_unsigned_ping(self, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """True for the one unsigned request a platform sends to test a new endpoint (WooCommerce's
        form-encoded `webhook_id=N`): answered 200 with nothing parsed beyond its exact shape and
        nothing stored. Anything that merely looks unsigned is still refused by `verify`."""
        return False

    def writeback_executor(self, settings: Settings, vault: Vault) -> Executor | None:
        """How this platform carries out write-back intents; None when it has none."""
        return None

    def orders_since(
        self, settings: Settings, vault: Vault, db: Database, shop: Shop, since: datetime
    ) -> Iterator[OrderSnapshot]:
        """Orders the platform changed since `since`, as snapshots (reconciliation)."""
        raise LookupError(f"{self.name} shops cannot be reconciled")

    # topic → what the delivery means; a topic not listed is accepted and ignored.
    topics: Mapping[str, Callable[[dict[str, Any], Shop], list[Event]]] = {}

    def parse(self, topic: str, raw_body: bytes, shop: Shop) -> list[Event]:
        """What this delivery means. Raises MalformedDelivery when it cannot be read: bad JSON, or
        a payload without the fields its topic needs (retrying cannot fix either)."""
        handler = self.topics.get(topic)
        if handler is None:
            return [Ignored(f"topic {topic} is not one Clawback acts on")]
        try:
            body = jsoncodec.loads(raw_body)
            if not isinstance(body, dict):
                raise MalformedDelivery("the body is not a JSON object")
            return handler(body, shop)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedDelivery(f"invalid JSON: {exc}") from exc
        except RecursionError as exc:  # nested deeper than the parser (or a translator) recurses
            raise MalformedDelivery("the JSON is nested too deeply to read") from exc
        # ValueError covers TranslationError; ArithmeticError the numbers no translator foresaw (an
        # OverflowError from a huge float, a decimal's InvalidOperation): retrying cannot fix either.
        except (KeyError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:
            raise MalformedDelivery(f"{topic}: {type(exc).__name__}: {exc}") from exc
