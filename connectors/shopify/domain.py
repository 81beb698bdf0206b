"""Which Shopify: the Admin API version Clawback speaks, and what a shop's domain may be."""

from __future__ import annotations

import functools

from shopify.utils.shop_url import sanitize_shop_domain

API_VERSION = "2026-07"


@functools.lru_cache(maxsize=4096)
def shop_domain(raw: str | None) -> str | None:
    """The shop's myshopify domain, or None when `raw` is not one (ShopifyAPI's anchored check,
    plus what it leaves to us: ASCII only, a DNS label of at most 63 characters, no exceptions).
    Remembered per header value: every webhook asks, and the check parses a URL and runs a regex."""
    if not raw or not raw.isascii() or len(raw) > 255:
        return None
    try:
        domain = sanitize_shop_domain(raw)
    except ValueError:  # urllib: "Invalid IPv6 URL" and the like
        return None
    if domain is None or len(domain.split(".", 1)[0]) > 63:
        return None
    return str(domain)
