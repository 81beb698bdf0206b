"""Deliveries on PostgreSQL: the webhook's statements on a kept autocommit connection.

PostgreSQL has row locks, so a webhook writes `webhook_deliveries` directly, and workers claim
disjoint deliveries with FOR UPDATE SKIP LOCKED (`Deliveries.lock_live`). The web's lookups and
INSERT each run as one statement on a connection its thread keeps in autocommit mode (its own
transaction, committed, durable, before it returns): no pool checkout and pre-ping, no BEGIN and
COMMIT round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from app.db import Database
from app.models import Shop
from app.storage.deliveries import FIND_SHOP, STORED, Accepted, Deliveries, insert_statement, values
from app.storage.kept import Kept
from app.storage.prepared import Prepared

_INSERT = Prepared(insert_statement("postgresql"))


class PostgresDeliveries(Deliveries):
    """See the module's docstring."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._kept: Kept[Connection] = Kept(
            lambda: self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        )

    def first(self, statement: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run one statement on this thread's kept autocommit connection; its first row.

        A connection found broken (the server restarted) is replaced and the statement tried once
        more: each of the path's statements may run twice (a lookup; an INSERT … ON CONFLICT DO
        NOTHING, whose second run finds the first)."""
        for attempt in (1, 2):
            try:
                return statement.first(self._kept.get(), params)
            except sa_exc.DBAPIError as exc:
                if not exc.connection_invalidated or attempt == 2:
                    raise
                self._kept.drop(close=False)  # SQLAlchemy has invalidated it: a new one next time
        raise AssertionError("unreachable")

    def find_shop(self, platform: str, domain: str) -> Shop | None:
        return self.as_shop(self.first(FIND_SHOP, {"platform": platform, "domain": domain}))

    def accept(
        self, *, shop_id: int, platform: str, topic: str, delivery_id: str, body: bytes, headers: Mapping[str, str]
    ) -> Accepted:
        inserted = self.first(_INSERT, values(shop_id, platform, topic, delivery_id, body, headers))
        if inserted is not None:
            return Accepted(int(inserted[0]), duplicate=False)
        # Stored before; or stored, then erased with its shop (shop/redact) in between.
        return self.stored(shop_id, delivery_id) or Accepted(0, duplicate=True, status="missing")

    def stored(self, shop_id: int, delivery_id: str) -> Accepted | None:
        return self.as_accepted(self.first(STORED, {"shop_id": shop_id, "delivery_id": delivery_id[:200]}))

    def warm(self) -> None:
        super().warm()
        _INSERT.compiled(self.db.engine.dialect)

    def close(self) -> None:
        self._kept.drop()
