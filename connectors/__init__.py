"""Platform connectors: one package per platform behind `connectors.base.Connector`, found by name.

A connector verifies a delivery, identifies it, and parses it into an `app.domain.snapshot.OrderSnapshot`;
it never touches the ledger (the service does). Connectors register themselves with `register`.
"""

from __future__ import annotations

import importlib

from sqlmodel import Session

from app.config import Settings
from app.crypto import Vault
from app.models import Shop, Writeback
from app.writebacks import Executor
from connectors.base import Connector, Delivery

_REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two connectors named {cls.name}")
    _REGISTRY[cls.name] = cls
    return cls


KNOWN = ("shopify", "woocommerce", "fynd")  # packages under connectors/, imported on first use


def get(name: str) -> type[Connector]:
    if name not in _REGISTRY and name in KNOWN:
        importlib.import_module(f"connectors.{name}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LookupError(f"no connector for platform '{name}'") from None


def writeback_executor(settings: Settings, vault: Vault) -> Executor:
    """One executor for every shop: each write-back goes to its shop's platform."""
    cache: dict[str, Executor | None] = {}

    def execute(session: Session, shop: Shop, row: Writeback) -> str:
        if shop.platform not in cache:
            try:
                cache[shop.platform] = get(shop.platform)().writeback_executor(settings, vault)
            except LookupError:
                cache[shop.platform] = None
        platform_execute = cache[shop.platform]
        if platform_execute is None:
            return f"skipped: {shop.platform} shops take no write-backs"
        return platform_execute(session, shop, row)

    return execute


def names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Connector", "Delivery", "get", "names", "register", "writeback_executor"]
