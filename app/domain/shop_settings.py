"""A shop's settings: the merchant's choices, validated, with dotted keys as the public contract.

`earn.*` decide what an order is worth, `revert.*` when earned coins go back, `redeem.*` when
spent coins come back. The CLI, the settings pages and the API all go through `apply_changes`,
so a value refused in one place is refused everywhere, with the same message.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app import jsoncodec
from app.domain.snapshot import normalize_tag
from app.errors import InvalidInput

REVERT_STATUSES = ("refunded", "cancelled", "partially_refunded", "returned")
REDEEM_STATUSES = ("cancelled", "returned", "refunded")
MAX_TAG_CHARS = 40  # Shopify's limit for one tag
MAX_TAGS = 50


def clean_tag(raw: str) -> str:
    """A tag as merchants typed it, trimmed; refuses what no platform would store."""
    tag = " ".join(raw.split())
    if not tag:
        raise ValueError("a tag cannot be empty")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (undecodable bytes on a command line)
        raise ValueError("a tag must be valid text") from None
    if len(tag) > MAX_TAG_CHARS:
        raise ValueError(f"tag '{tag[:20]}…' is longer than {MAX_TAG_CHARS} characters")
    if "," in tag:
        raise ValueError(f"tag '{tag}' cannot contain a comma (platforms use commas to separate tags)")
    if any(not ch.isprintable() for ch in tag):
        raise ValueError("a tag cannot contain control characters")
    return tag


def _clean_tags(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        tag = clean_tag(value)
        seen.setdefault(normalize_tag(tag), tag)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return list(seen.values())


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EarnSettings(_Section):
    mode: Literal["per_unit", "percent", "fixed"] = "per_unit"
    rate: Decimal = Field(Decimal("1"), ge=Decimal("0.000001"), le=1_000_000)
    trigger: Literal["paid", "fulfilled", "delivered"] = "paid"
    delay_days: int = Field(0, ge=0, le=365)
    min_order: Decimal = Field(Decimal("0"), ge=0, le=1_000_000_000)
    exclude_tags: list[str] = Field(default_factory=list)
    rounding: Literal["down", "half_up", "up"] = "down"
    # Coins are the platform's own store credit in minor units: every move is mirrored there.
    store_credit: bool = False

    _tags = field_validator("exclude_tags")(_clean_tags)

    @model_validator(mode="after")
    def _rate_fits_mode(self) -> EarnSettings:
        if self.mode == "percent" and self.rate > 100:
            raise ValueError("earn.rate is a percentage in percent mode: at most 100")
        if self.mode == "fixed" and self.rate != self.rate.to_integral_value():
            raise ValueError("earn.rate is whole coins per order in fixed mode")
        return self


class RevertSettings(_Section):
    enabled: bool = False
    statuses: list[Literal["refunded", "cancelled", "partially_refunded", "returned"]] = Field(
        default_factory=lambda: ["refunded", "cancelled", "partially_refunded"]  # type: ignore[arg-type]
    )
    tags: list[str] = Field(default_factory=list)
    partial: Literal["proportional", "full"] = "proportional"
    keep_on_return: bool = False
    shortfall: Literal["negative", "floor_and_flag"] = "floor_and_flag"
    flag_tag: str = "Fraud"
    exclude_flagged: bool = False

    _tags = field_validator("tags")(_clean_tags)
    _flag = field_validator("flag_tag")(clean_tag)

    @field_validator("statuses")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


class RedeemSettings(_Section):
    refund_statuses: list[Literal["cancelled", "returned", "refunded"]] = Field(
        default_factory=lambda: ["cancelled", "returned", "refunded"]  # type: ignore[arg-type]
    )
    # The money one coin is worth when spent, in the shop's currency (0.01: coins are cents).
    coin_value: Decimal = Field(Decimal("0.01"), ge=Decimal("0.000001"), le=1_000_000)

    @field_validator("refund_statuses")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


# What a WooCommerce order status may be mapped to (the shared vocabulary of app.domain.snapshot.Status).
MAPPED_STATUSES = (
    "pending",
    "paid",
    "fulfilled",
    "delivered",
    "cancelled",
    "refunded",
    "returned",
    "voided",
    "unknown",
)
WC_STATUS_SLUG = re.compile(r"\A[a-z0-9_-]{1,40}\Z")
META_KEY = re.compile(r"\A[^\s,=]{1,100}\Z")


def _shown(raw: str) -> str:
    """`raw` quoted for a message when it is storable text, else 'a value' (never echo what cannot
    be encoded: the message itself would fail)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return "a value"
    return f"'{raw[:40]}'"


class WooCommerceSettings(_Section):
    """How a WooCommerce store's orders read, since WooCommerce has no order tags and merchants add
    statuses of their own (ignored by other platforms)."""

    # order status slug → canonical status; overrides the built-in table, and names custom statuses.
    status_map: dict[str, Literal[MAPPED_STATUSES]] = Field(default_factory=dict)  # type: ignore[valid-type]
    # Order meta keys whose values are tags (a comma-separated string or a list of strings).
    tag_meta_keys: list[str] = Field(default_factory=list)
    # Coupon codes on an order count as its tags.
    coupon_tags: bool = False

    @field_validator("status_map")
    @classmethod
    def _slugs(cls, mapping: dict[str, str]) -> dict[str, str]:
        out = {}
        for raw, status in mapping.items():
            slug = raw.strip().lower().removeprefix("wc-")
            if not WC_STATUS_SLUG.match(slug):
                raise ValueError(f"{_shown(raw)} is not an order status slug (letters, digits, - and _)")
            out[slug] = status
        if len(out) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} mapped statuses")
        return out

    @field_validator("tag_meta_keys")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not META_KEY.match(key) or not key.isprintable() or _shown(key) == "a value":
                raise ValueError(f"{_shown(key)} is not a meta key (printable, no spaces, commas or '=')")
        if len(keys) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} meta keys")
        return list(dict.fromkeys(keys))


class ShopSettings(_Section):
    earn: EarnSettings = Field(default_factory=EarnSettings)  # type: ignore[arg-type]
    revert: RevertSettings = Field(default_factory=RevertSettings)
    redeem: RedeemSettings = Field(default_factory=RedeemSettings)  # type: ignore[arg-type]
    woocommerce: WooCommerceSettings = Field(default_factory=WooCommerceSettings)

    def flat(self) -> dict[str, Any]:
        """Dotted keys and JSON-friendly values, as `clawback settings show` prints them."""
        out: dict[str, Any] = {}
        sections = (
            ("earn", self.earn),
            ("revert", self.revert),
            ("redeem", self.redeem),
            ("woocommerce", self.woocommerce),
        )
        for section, model in sections:
            for name, value in model.model_dump(mode="json").items():
                out[f"{section}.{name}"] = value
        return out

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> ShopSettings:
        return cls.model_validate(data or {})

    @classmethod
    def cached(cls, data: dict[str, Any] | None) -> ShopSettings:
        """`from_stored`, parsed once per distinct stored value and shared: never mutate the result.

        Validation costs a tenth of a millisecond and every processed order needs the settings;
        the key is the stored value itself (canonical JSON), so a changed setting is a new entry
        and no version column or invalidation is needed.
        """
        key = jsoncodec.dumps(data or {}, sort_keys=True, default=str)
        found = _CACHE.get(key)
        if found is None:
            found = cls.from_stored(data)
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.clear()  # bounded; shops' settings rarely change, so this is rare
            _CACHE[key] = found
        return found

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_CACHE: dict[str, ShopSettings] = {}
_CACHE_SIZE = 512
KEYS = tuple(ShopSettings().flat())
_LIST_KEYS = {
    "earn.exclude_tags",
    "revert.statuses",
    "revert.tags",
    "redeem.refund_statuses",
    "woocommerce.tag_meta_keys",
}
_BOOL_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def _parse(key: str, raw: Any) -> Any:
    """Turn a string (CLI, form) into the value the model expects; typed values pass through."""
    if not isinstance(raw, str):
        return raw
    if key in _LIST_KEYS:
        return [part for part in (p.strip() for p in raw.split(",")) if part]
    if key == "woocommerce.status_map":
        return _parse_map(key, raw)
    if key in ("revert.enabled", "revert.keep_on_return", "revert.exclude_flagged", "earn.store_credit",
               "woocommerce.coupon_tags"):  # fmt: skip
        word = raw.strip().lower()
        if word not in _BOOL_WORDS:
            raise InvalidInput(f"{key} must be true or false, not '{raw}'", field=key)
        return _BOOL_WORDS[word]
    if key in ("earn.rate", "earn.min_order", "redeem.coin_value", "earn.delay_days"):
        try:
            number = Decimal(raw.strip())
        except InvalidOperation:
            raise InvalidInput(f"{key} must be a number, not '{raw}'", field=key) from None
        if not number.is_finite() or (number and not -9 <= number.adjusted() <= 12):
            # Before any arithmetic: 1e100000000 would be a 100-million-digit integer.
            raise InvalidInput(f"{key} must be a finite number between 0.000000001 and 10^12", field=key)
        if key == "earn.delay_days":
            if number != number.to_integral_value():
                raise InvalidInput(f"{key} must be a whole number of days", field=key)
            return int(number)
        return number
    return raw.strip()


def _parse_map(key: str, raw: str) -> dict[str, str]:
    """`slug=status,slug=status` (a form or the CLI) into a mapping; an empty string clears it."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in raw.split(",")):
        if not pair:
            continue
        slug, sep, status = pair.partition("=")
        if not sep or not slug.strip() or not status.strip():
            raise InvalidInput(f"{key}: '{pair[:40]}' is not status=meaning", field=key)
        mapping[slug.strip()] = status.strip().lower()
    return mapping


def apply_changes(current: ShopSettings, changes: dict[str, Any]) -> ShopSettings:
    """Return new settings with `changes` (dotted key -> value) applied, or raise InvalidInput.

    All or nothing: the first bad key or value raises and `current` is untouched.
    """
    data = current.to_stored()
    for key, raw in changes.items():
        if key not in KEYS:
            raise InvalidInput(f"unknown setting '{key}'; known settings: {', '.join(KEYS)}", field=key)
        section, name = key.split(".", 1)
        data[section][name] = _parse(key, raw)
    try:
        return ShopSettings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
        field = loc if loc in KEYS else next((k for k in changes if loc.startswith(k.split(".")[0])), loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}", field=field) from None
