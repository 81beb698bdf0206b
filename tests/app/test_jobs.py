"""The job queue on each real storage: SQLite (always), PostgreSQL and Redis (when CI provides
them). A delivery enqueued by one process is processed by a worker dequeuing from storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from huey import Huey

from app import jobs
from app.config import Settings
from app.intake import store_delivery
from app.models import Shop, WebhookDelivery
from tests.conftest import PG_URL
from tests.factories import Books

REDIS_URL = os.environ.get("CLAWBACK_TEST_REDIS_URL", "")
ORDER = (
    b'{"id":7,"name":"#7","financial_status":"paid","updated_at":"2026-11-01T10:00:00Z","currency":"USD",'
    b'"current_total_price_set":{"shop_money":{"amount":"42.00","currency_code":"USD"}},'
    b'"customer":{"id":9},"tags":"","refunds":[]}'
)


REQUIRED = os.environ.get("CLAWBACK_REQUIRE_SERVICES") == "1"  # CI: a missing server fails, never skips


def backends() -> list[object]:
    def maybe(name: str, present: str) -> object:
        return name if present or REQUIRED else pytest.param(name, marks=pytest.mark.skip(f"no {name} configured"))

    return ["sqlite", maybe("postgresql", PG_URL), maybe("redis", REDIS_URL)]


@pytest.fixture(params=backends())
def queue_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    url = {"sqlite": f"sqlite:///{tmp_path / 'queue.db'}", "postgresql": "", "redis": REDIS_URL}[request.param]
    yield settings.model_copy(update={"queue_url": url})


def drain(huey: Huey) -> int:
    """What a worker does, one task at a time: dequeue from storage and execute."""
    done = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        done += 1
    return done


def test_a_stored_delivery_is_processed_from_real_queue_storage(queue_settings: Settings, books: Books) -> None:
    from web import create_app

    app = create_app(queue_settings)
    svc = app.extensions["clawback"]
    huey = svc.jobs.huey
    huey.flush()  # a shared Redis or PostgreSQL queue may hold another run's leftovers
    shop = books.open("queue-test.myshopify.com")
    with svc.db.session() as session:
        pk = store_delivery(session, shop_id=shop.shop_id, platform="shopify", topic="orders/paid",
                            delivery_id="q-1", body=ORDER, headers={})  # fmt: skip
    assert pk is not None
    svc.jobs.enqueue(pk, "shopify")
    assert svc.jobs.pending() == 1
    assert shop.balance("9")["available"] == 0  # nothing happens until a worker runs
    assert drain(huey) == 1
    assert shop.balance("9")["available"] == 42
    svc.jobs.enqueue(pk, "shopify")  # a repeated job is harmless
    drain(huey)
    assert shop.balance("9")["available"] == 42
    with svc.db.session() as session:
        assert session.get(WebhookDelivery, pk).status == "processed"  # type: ignore[union-attr]
        assert session.get(Shop, shop.shop_id) is not None
    svc.db.dispose()


def test_the_queue_lives_beside_the_database_by_default(tmp_path: Path) -> None:
    huey = jobs.make_huey("", f"sqlite:///{tmp_path / 'data' / 'clawback.db'}")
    assert type(huey).__name__ == "SqliteHuey"
    assert (tmp_path / "data" / "clawback-queue.db").exists()
    assert type(jobs.make_huey("redis://127.0.0.1:1/0", "sqlite:///x.db")).__name__ == "RedisHuey"
    with pytest.raises(ValueError, match="unsupported queue URL"):
        jobs.make_huey("ftp://nowhere", "sqlite:///x.db")
