"""The inbox (SQLite with a job worker): a webhook is spooled beside the database and the worker
moves it into webhook_deliveries, exactly once, before processing it."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlmodel import select

from app.config import Settings
from app.db import Database
from app.models import Shop, WebhookDelivery
from app.storage.inbox import Inbox
from app.storage.postgres import PostgresDeliveries
from app.storage.sqlite import SqliteDeliveries
from tests.factories import Books
from tests.helpers import metric, post_webhook
from tests.platforms.shopify import sign
from web.cli import cli

DOMAIN = "inbox-test.myshopify.com"


@pytest.fixture
def worker_app(settings: Settings, make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    """The app as `clawback serve` runs it: a real queue (so the worker polls), hence an inbox."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the inbox is SQLite's: PostgreSQL stores webhooks directly")
    return make_app(queue_url=f"sqlite:///{tmp_path / 'queue.db'}")


def order(order_id: int, total: str, status: str = "paid") -> bytes:
    money = {"shop_money": {"amount": total, "currency_code": "USD"}}
    return json.dumps({
        "id": order_id, "name": f"#{order_id}", "financial_status": status, "currency": "USD",
        "updated_at": "2026-11-01T10:00:00Z" if status == "paid" else "2026-11-01T10:05:00Z",
        "current_total_price_set": money, "customer": {"id": 9}, "tags": "", "refunds": [],
    }).encode()  # fmt: skip


def post(client: FlaskClient, body: bytes, webhook_id: str, topic: str = "orders/paid") -> Any:
    """Deliver one webhook and leave it where the answer put it (the worker is the test's to run)."""
    response = post_webhook(client, "shopify", body, {
        "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body), "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-Webhook-Id": webhook_id, "Content-Type": "application/json",
    }, process=False)  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["status"]


def stored(db: Database) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.exec(select(WebhookDelivery.delivery_id, WebhookDelivery.status).order_by(WebhookDelivery.id))
        return [(d, s) for d, s in rows]


def test_a_webhook_is_spooled_answered_then_moved_and_processed_once(worker_app: Flask, books: Books) -> None:
    svc = worker_app.extensions["clawback"]
    assert svc.deliveries.inbox is not None and svc.deliveries.inbox.path == svc.db.engine.url.database + "-inbox"
    shop = books.open(DOMAIN, revert__enabled="true")
    client = worker_app.test_client()
    assert post(client, order(7, "42.00"), "w-1") == "accepted"
    assert post(client, order(7, "42.00"), "w-1") == "accepted"  # the platform's retry, both spooled
    assert post(client, order(7, "42.00", "refunded"), "w-2", "orders/cancelled") == "accepted"
    assert (svc.deliveries.inbox.depth(), stored(svc.db)) == (3, [])  # answered: durable in the inbox, nothing else
    assert shop.balance("9")["available"] == 0
    assert metric(client.get("/metrics").get_data(as_text=True), "clawback_inbox_depth") == 3
    listed = worker_app.test_cli_runner().invoke(cli, ["deliveries"])
    assert (listed.exit_code, listed.stdout) == (0, "")
    assert "3 more answered and waiting in the inbox" in listed.stderr

    assert svc.jobs.poll_deliveries() == 2  # moved (one row per delivery id), then processed in order
    assert svc.deliveries.inbox.depth() == 0
    assert metric(client.get("/metrics").get_data(as_text=True), "clawback_inbox_depth") == 0
    assert stored(svc.db) == [("w-1", "processed"), ("w-2", "processed")]
    assert [e.kind for e in shop.entries()] == ["earn", "revert"]
    assert shop.balance("9")["available"] == 0
    # Once stored, a retry is answered as the duplicate it is, and spools nothing.
    assert post(client, order(7, "42.00"), "w-1") == "duplicate"
    assert svc.deliveries.inbox.depth() == 0
    assert svc.jobs.poll_deliveries() == 0
    assert shop.violations() == []


def test_a_moved_row_is_the_row_a_direct_insert_stores(worker_app: Flask, books: Books, tmp_path: Path) -> None:
    """The inbox holds the INSERT's own parameters: moved, the row is byte for byte what `accept`
    without an inbox writes (JSON headers, the DateTime text, the body's bytes)."""
    svc = worker_app.extensions["clawback"]
    shop = books.open(DOMAIN)
    headers = {"X-Shopify-Topic": "orders/paid", "X-Note": "é\u2028"}
    unspooled = SqliteDeliveries(svc.db)
    unspooled.inbox = None  # as in memory: the INSERT itself
    direct = unspooled.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid", delivery_id="d-1",
                              body=b"\x00{}", headers=headers)  # fmt: skip
    spooled = svc.deliveries.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid",
                                    delivery_id="d-2", body=b"\x00{}", headers=headers)  # fmt: skip
    assert (direct.duplicate, spooled.duplicate, spooled.status) == (False, False, "spooled")
    assert svc.deliveries.move_inbox().stored == 1
    with svc.db.session() as session:
        rows = session.execute(
            text(
                "SELECT shop_id, platform, topic, body, headers, typeof(received_at), length(received_at), status, "
                "attempts FROM webhook_deliveries ORDER BY id"
            )
        ).all()
    assert len(rows) == 2 and rows[0] == rows[1]
    again = svc.deliveries.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid",
                                  delivery_id="d-2", body=b"other", headers={})  # fmt: skip
    assert (again.duplicate, again.status, svc.deliveries.inbox.depth()) == (True, "received", 0)


def test_a_failed_move_keeps_every_row_and_an_erased_shop_s_rows_are_dropped(worker_app: Flask, books: Books) -> None:
    svc = worker_app.extensions["clawback"]
    keep, gone = books.open(DOMAIN), books.open("erased.myshopify.com")
    for shop, delivery_id in ((keep, "k-1"), (gone, "g-1"), (keep, "k-2")):
        svc.deliveries.accept(shop_id=shop.shop_id, platform="shopify", topic="orders/paid",
                              delivery_id=delivery_id, body=b"{}", headers={})  # fmt: skip
    with pytest.raises(sqlite3.OperationalError):
        svc.deliveries.inbox.move(svc.deliveries.writing, "INSERT INTO no_such_table VALUES (?)")
    assert (svc.deliveries.inbox.depth(), stored(svc.db)) == (3, [])  # nothing lost, nothing half-moved

    with svc.db.session() as session:  # the shop is erased (shop/redact) while its row waits
        session.delete(session.get(Shop, gone.shop_id))
    moved = svc.deliveries.move_inbox()
    assert (moved.stored, moved.duplicates, moved.dropped) == (2, 0, 1)
    assert [d for d, _ in stored(svc.db)] == ["k-1", "k-2"]
    assert svc.deliveries.inbox.depth() == 0


def test_no_inbox_in_memory_or_on_postgresql(make_app: Callable[..., Flask]) -> None:
    in_memory = make_app(database_url="sqlite://")  # no file to put the inbox beside
    assert isinstance(in_memory.extensions["clawback"].deliveries, SqliteDeliveries)
    assert in_memory.extensions["clawback"].deliveries.spooled() is None
    elsewhere = make_app(database_url="postgresql://u:p@127.0.0.1:1/none", queue_url="redis://127.0.0.1:1/0")
    assert isinstance(elsewhere.extensions["clawback"].deliveries, PostgresDeliveries)
    assert elsewhere.extensions["clawback"].deliveries.spooled() is None


def test_a_new_inbox_opened_by_many_at_once_opens_for_all(tmp_path: Path) -> None:
    """Web workers warming together open a new inbox file together: turning it to WAL is answered
    "locked" at once (not through the busy handler), so each tries again rather than fail."""
    for n in range(10):
        spool = Inbox(str(tmp_path / f"x{n}.db-inbox"))
        start, errors = threading.Barrier(8), []

        def connect(spool: Inbox = spool, start: threading.Barrier = start, errors: list[Exception] = errors) -> None:
            start.wait()
            try:
                spool.connect()
            except sqlite3.Error as exc:  # collected: the assertion below says which
                errors.append(exc)

        threads = [threading.Thread(target=connect) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        spool.close()


def test_each_process_opens_its_own_connection(tmp_path: Path) -> None:
    """A connection must not cross a fork (gunicorn forks its workers): one per process id."""
    inbox = Inbox(str(tmp_path / "x.db-inbox"))
    first = inbox._conn()
    assert inbox._conn() is first
    inbox._kept._local.pid = -1  # as seen from a forked child
    assert inbox._conn() is not first
    inbox.close()


def test_the_web_bounds_the_wal_when_no_mover_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No automatic checkpoints in a webhook's commit; with the worker away, one webhook in
    WAL_CHECK_EVERY checkpoints a WAL over WAL_MAX_BYTES, in a thread of its own (not in the
    answer), and the WAL starts over, shrunk."""
    import app.storage.inbox as inbox_module

    monkeypatch.setattr(inbox_module, "WAL_CHECK_EVERY", 10)
    monkeypatch.setattr(inbox_module, "WAL_MAX_BYTES", 256 * 1024)
    spool = Inbox(str(tmp_path / "x.db-inbox"))
    policies: list[int] = []
    opened = spool._open

    def open_noting_priority() -> sqlite3.Connection:
        policies.append(os.sched_getscheduler(0))
        return opened()

    monkeypatch.setattr(spool, "_open", open_noting_priority)
    assert spool._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert spool._conn().execute("PRAGMA secure_delete").fetchone()[0] == 2  # FAST: no extra writes
    wal = tmp_path / "x.db-inbox-wal"
    row = [1, "shopify", "orders/paid", "", b"x" * 10_000, "{}", "2026-11-01 10:00:00.000000", "received", 0]
    checkpointers, sizes = [], []
    for n in range(400):  # 4 MB of bodies
        spool.spool([*row[:3], f"d{n}", *row[4:]])
        if spool._bounding is not None and spool._bounding not in checkpointers:
            checkpointers.append(spool._bounding)
            spool.bounded(timeout_s=10)  # as the next webhooks would find it, once it is done
        sizes.append(wal.stat().st_size)
    assert spool.depth() == 400  # a checkpoint moves nothing out of the inbox
    assert max(sizes[:9]) < 256 * 1024 and sizes[8] > sizes[0]  # below the bound: no checkpoint at all
    assert checkpointers and all(t.name == "inbox-checkpoint" for t in checkpointers)  # not the answering thread
    # each checkpoint at idle priority, the answering thread still at the usual one
    assert policies == [os.SCHED_IDLE] * len(checkpointers) and os.sched_getscheduler(0) == os.SCHED_OTHER
    frame = 4096 + 24  # a WAL frame: a page and its header; a 10 KB row takes about four
    assert max(sizes) < 256 * 1024 + 11 * 5 * frame, max(sizes)  # without the bound: about 6.6 MB
    spool.close()


def test_a_checkpoint_under_way_is_not_started_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one checkpoint thread runs, the next check leaves it be rather than start another."""
    import app.storage.inbox as inbox_module

    monkeypatch.setattr(inbox_module, "WAL_MAX_BYTES", 0)
    spool = Inbox(str(tmp_path / "x.db-inbox"))
    release = threading.Event()
    started: list[int] = []

    def slow_checkpoint() -> None:
        started.append(1)
        release.wait(10)

    monkeypatch.setattr(spool, "_checkpoint", slow_checkpoint)
    spool.spool([1, "shopify", "orders/paid", "d1", b"x", "{}", "2026-11-01 10:00:00.000000", "received", 0])
    spool._bound_wal()
    first = spool._bounding
    spool._bound_wal()
    assert spool._bounding is first and first is not None and first.is_alive()
    release.set()
    spool.close()  # waits for it
    assert not first.is_alive() and started == [1]


def test_a_worker_merely_behind_is_left_to_checkpoint(
    worker_app: Flask, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the bound but with the oldest row younger than WORKER_AWAY_S (a burst the worker is
    still catching up with), the web starts no checkpoint: the mover's own will come. Once the
    oldest row has waited longer, it does."""
    import app.storage.inbox as inbox_module

    svc = worker_app.extensions["clawback"]
    books.open(DOMAIN, revert__enabled="true")
    client = worker_app.test_client()
    assert svc.deliveries.inbox.oldest_wait_s() == 0.0  # nothing waits
    assert post(client, order(7, "42.00"), "w-1") == "accepted"  # spooled as the web spools
    assert 0.0 <= svc.deliveries.inbox.oldest_wait_s() < 5
    monkeypatch.setattr(inbox_module, "WAL_MAX_BYTES", 0)
    svc.deliveries.inbox._bound_wal()
    assert svc.deliveries.inbox._bounding is None  # behind, not away
    monkeypatch.setattr(inbox_module, "WORKER_AWAY_S", -1)  # as if the row had waited longer
    svc.deliveries.inbox._bound_wal()
    assert svc.deliveries.inbox._bounding is not None
    svc.deliveries.inbox.bounded(timeout_s=10)
    assert svc.jobs.poll_deliveries() == 1  # the checkpoint moved nothing out of the inbox


def test_a_warmed_web_worker_opens_nothing_for_its_first_webhook(
    worker_app: Flask, books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`web.server.ready_worker` (gunicorn's post_worker_init) warms the webhook path: the first
    webhook a worker answers opens no connection. Each in a thread of its own, as a fresh worker:
    connections are kept per thread."""
    from types import SimpleNamespace

    from web import server

    books.open(DOMAIN, revert__enabled="true")
    opened: list[str] = []
    connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(str(args[0]))
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    monkeypatch.setattr(server, "freeze_startup_objects", lambda _worker: None)  # tested in tests/web
    client = worker_app.test_client()

    def first_webhook(warmed: bool, webhook_id: str) -> list[str]:
        if warmed:
            server.ready_worker(SimpleNamespace(wsgi=worker_app))
        opened.clear()
        assert post(client, order(7, "42.00"), webhook_id) == "accepted"
        return list(opened)

    found: dict[bool, list[str]] = {}
    for warmed, webhook_id in ((False, "w-1"), (True, "w-2")):
        thread = threading.Thread(target=lambda w=warmed, i=webhook_id: found.update({w: first_webhook(w, i)}))
        thread.start()
        thread.join(30)
    assert found[False] and found[True] == [], found  # unwarmed, its first webhook opened connections
