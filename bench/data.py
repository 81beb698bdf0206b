"""Scale of data: the same lookups and pages with 10 thousand and with 1 million ledger entries.

Pages are the merchant's own (Customers and Activity, signed in with a token). Each size gets a
fresh database (SQLite in the work folder, or the PostgreSQL of
CLAWBACK_BENCH_DATA_URL) with ten entries per customer (so 1 M entries are 100 thousand
customers), bulk-inserted with their cached balances. Pages are requested in-process through
Flask's test client: this measures queries and rendering, not the network.
"""

from __future__ import annotations

import os
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


def _time(fn: Any) -> dict[str, float]:
    took = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        fn()
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    return {"p50_ms": round(took[len(took) // 2], 3), "p99_ms": round(took[int(len(took) * 0.99)], 3)}


def measure(entries: int, workdir: Path) -> dict[str, Any]:
    from web import create_app

    url = os.environ.get("CLAWBACK_BENCH_DATA_URL") or f"sqlite:///{workdir / f'data-{entries}.db'}"
    migrate.upgrade(url)
    app = create_app(Settings(env="development", database_url=url, queue_url="immediate://"))
    db: Database = app.extensions["clawback"].db
    began = time.perf_counter()
    customers = _fill(db, entries)
    fill_s = time.perf_counter() - began
    db.analyze()  # what the worker's hourly `analyze` task keeps up to date on a live database
    client = app.test_client()
    rng = random.Random(1)

    def balance() -> None:
        pid = str(700_000 + rng.randrange(customers))
        with db.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT available_coins, pending_coins, shortfall_coins FROM customers "
                    "WHERE shop_id = 1 AND platform_customer_id = :pid"
                ),
                {"pid": pid},
            ).one()
        assert row[0] == 100

    with app.test_request_context():
        from web.session import mint

        t = mint(1, "dev")  # the merchant's own pages, signed in as the shop

    def history() -> None:
        pid = 700_000 + rng.randrange(customers)
        assert client.get(f"/admin/customers/{pid}", query_string={"t": t}).status_code == 200

    def activity() -> None:
        assert client.get("/admin/activity", query_string={"t": t, "kind": "earn"}).status_code == 200

    result = {
        "customers": customers,
        "fill_s": round(fill_s, 1),
        "balance": _time(balance),
        "customer_history": _time(history),
        "activity": _time(activity),
    }
    db.dispose()
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    return result


def run(sizes: list[int], workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {str(n): measure(n, workdir) for n in sizes}
    if len(sizes) == 2:
        small, large = results[str(sizes[0])], results[str(sizes[1])]
        results["ratios"] = {
            k: round(large[k]["p50_ms"] / max(small[k]["p50_ms"], 1e-6), 2)
            for k in ("balance", "customer_history", "activity")
        }
    return results
