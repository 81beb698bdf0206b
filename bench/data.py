"""Scale of data: the same lookups and pages with 10 thousand and with 1 million ledger entries.

Pages are the merchant's own (Customers and Activity, signed in with a token). Each size gets a
fresh SQLite database in the work folder with ten entries per customer (so 1 M entries are 100
thousand customers), bulk-inserted with their cached balances; both are filled first, then
measured in turn, a sixth of the samples at a time. Pages are requested in-process through
Flask's test client: this measures queries and rendering, not the network.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app import migrate
from app.config import Settings
from app.db import Database

ENTRIES_PER_CUSTOMER = 10
SAMPLES = 300


def _fill(db: Database, entries: int) -> int:
    customers = entries // ENTRIES_PER_CUSTOMER
    now = "2026-11-20T10:00:00+00:00"
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO shops (id, platform, domain, name, currency, settings, installed_at) "
                "VALUES (1, 'shopify', 'bench-data.myshopify.com', 'Bench', 'USD', '{}', :now)"
            ),
            {"now": now},
        )
        batch = 20_000
        for start in range(0, customers, batch):
            conn.execute(
                text(
                    "INSERT INTO customers (id, shop_id, platform_customer_id, tags, available_coins, pending_coins, "
                    "shortfall_coins, created_at) VALUES (:id, 1, :pid, '[]', :bal, 0, 0, :now)"
                ),
                [
                    {"id": c + 1, "pid": str(700_000 + c), "bal": 10 * ENTRIES_PER_CUSTOMER, "now": now}
                    for c in range(start, min(customers, start + batch))
                ],
            )
        for start in range(0, entries, batch):
            conn.execute(
                text(
                    "INSERT INTO ledger_entries (id, shop_id, customer_id, order_ref, kind, coins_delta, "
                    "pending_delta, shortfall_delta, reason, explanation, source, idempotency_key, created_at) VALUES "
                    "(:id, 1, :cid, :ref, 'earn', 10, 0, 0, 'earned', :why, 'bench', :key, :now)"
                ),
                [
                    {
                        "id": e + 1,
                        "cid": e % customers + 1,
                        "ref": str(90_000_000 + e),
                        "key": f"bench:{e}",
                        "now": now,
                        "why": f"Order #{90_000_000 + e} was paid; 10 coins earned at 1 coin per USD 1",
                    }
                    for e in range(start, min(entries, start + batch))
                ],
            )
    return customers


ROUNDS = 6  # the sizes are measured in turn, SAMPLES / ROUNDS at a time: side by side, so that
# the machine's drift over the minutes a run takes (a shared virtual machine's) falls on both sizes


def _take(fn: Any, count: int) -> list[float]:
    took = []
    for _ in range(count):
        began = time.perf_counter()
        fn()
        took.append((time.perf_counter() - began) * 1000)
    return took


def _summary(took: list[float]) -> dict[str, float]:
    took = sorted(took)
    return {"p50_ms": round(took[len(took) // 2], 3), "p99_ms": round(took[int(len(took) * 0.99)], 3)}


class Size:
    """One filled database and the three things measured on it."""

    def __init__(self, entries: int, workdir: Path) -> None:
        from web import create_app

        self.entries = entries
        self.url = f"sqlite:///{workdir / f'data-{entries}.db'}"
        migrate.upgrade(self.url)
        self.app = create_app(Settings(env="development", database_url=self.url, queue_url="memory://"))
        self.db: Database = self.app.extensions["clawback"].db
        began = time.perf_counter()
        self.customers = _fill(self.db, entries)
        self.fill_s = time.perf_counter() - began
        self.db.analyze()  # what the worker's hourly `analyze` task keeps up to date on a live database
        self.client = self.app.test_client()
        self.rng = random.Random(1)
        with self.app.test_request_context():
            from web.session import mint

            self.token = mint(1, "dev")  # the merchant's own pages, signed in as the shop
        self.kinds = {"balance": self.balance, "customer_history": self.history, "activity": self.activity}
        self.took: dict[str, list[float]] = {kind: [] for kind in self.kinds}

    def balance(self) -> None:
        pid = str(700_000 + self.rng.randrange(self.customers))
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT available_coins, pending_coins, shortfall_coins FROM customers "
                    "WHERE shop_id = 1 AND platform_customer_id = :pid"
                ),
                {"pid": pid},
            ).one()
        assert row[0] == 100

    def history(self) -> None:
        pid = 700_000 + self.rng.randrange(self.customers)
        assert self.client.get(f"/admin/customers/{pid}", query_string={"t": self.token}).status_code == 200

    def activity(self) -> None:
        query = {"t": self.token, "kind": "earn"}
        assert self.client.get("/admin/activity", query_string=query).status_code == 200

    def measure(self, count: int) -> None:
        for kind, fn in self.kinds.items():
            self.took[kind].extend(_take(fn, count))

    def result(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "fill_s": round(self.fill_s, 1),
            **{kind: _summary(took) for kind, took in self.took.items()},
        }

    def close(self) -> None:
        self.db.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(self.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


def run(sizes: list[int], workdir: Path) -> dict[str, Any]:
    filled = [Size(n, workdir) for n in sizes]
    try:
        for _ in range(ROUNDS):
            for size in filled:
                size.measure(SAMPLES // ROUNDS)
        results: dict[str, Any] = {str(size.entries): size.result() for size in filled}
    finally:
        for size in filled:
            size.close()
    if len(sizes) == 2:
        small, large = results[str(sizes[0])], results[str(sizes[1])]
        results["ratios"] = {
            k: round(large[k]["p50_ms"] / max(small[k]["p50_ms"], 1e-6), 2)
            for k in ("balance", "customer_history", "activity")
        }
    return results
