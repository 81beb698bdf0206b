"""Crash safety with real processes and a real queue: nothing is lost, nothing counts twice.

Every test here runs the installed `clawback` script in subprocesses (`worker`, `serve`, `ledger`,
`deliveries`, `replay`) against a database and a SQLite queue file in tmp_path, where the other
tests run the worker's steps in their own process (`tests.helpers.work`). The database is SQLite,
or the PostgreSQL server named by CLAWBACK_TEST_DATABASE_URL; the queue is always a SQLite file.

To catch a worker in the middle of a transaction deterministically, the test holds a lock the
worker needs: on SQLite the database's write lock (`BEGIN IMMEDIATE`: the worker waits in
busy_timeout), on PostgreSQL the customer's row (`FOR UPDATE`: the worker waits having already
updated the delivery row and inserted the order). Then SIGKILL, and look at what is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import select

import app.jobs
from app import ledger
from app.config import Settings
from app.db import Database, normalize_url
from app.jobs import Jobs
from app.models import Order, Shop, WebhookDelivery
from app.storage.sqlite import SqliteDeliveries
from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET, TEST_ENCRYPTION_KEY
from tests.helpers import metric, post_webhook, store_delivery
from tests.platforms.shopify import CUSTOMER, ORDER, SHOP, compact, headers, order_payload
from web import create_app
from web.cli import cli
from web.extensions import services

CLAWBACK = Path(sys.executable).parent / "clawback"
WAIT_S = 30  # the longest any one wait may take; each test stays well under a minute
A, B = ORDER, ORDER + 1  # two orders of the same customer: 200.00 and 100.00, paid
EARNED = {A: 200, B: 100}
# A worker whose parser raises RuntimeError (not MalformedDelivery) for bodies carrying POISON.
# (The worker's first attempt fails and it enqueues the retries: PROCESS_RETRIES is set to 1 in the
# worker's process, so the dead-letter path takes seconds rather than two minutes.)
POISON = "poison-generic-error"
FAILING_WORKER = f"""
import app.jobs
app.jobs.PROCESS_RETRIES = 1
from connectors.shopify import ShopifyConnector
parse = ShopifyConnector.parse
def failing(self, topic, raw_body, shop):
    if b"{POISON}" in raw_body:
        raise RuntimeError("{POISON}")
    return parse(self, topic, raw_body, shop)
ShopifyConnector.parse = failing
from web.cli import cli
cli()
"""


def wait_until(what: str, ready: Callable[[], bool], logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {WAIT_S}s: {what}\n{logs()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Delivery:
    """One signed Shopify delivery with a fixed webhook id: sending it again is the platform's retry."""

    def __init__(self, payload: Any, topic: str = "orders/paid", *, body: bytes | None = None) -> None:
        self.topic = topic
        self.body = compact(payload) if body is None else body
        self.webhook_id = str(uuid.uuid4())
        self.headers = headers(self.body, topic, secret=SHOPIFY_API_SECRET, shop=SHOP)
        self.headers["X-Shopify-Webhook-Id"] = self.webhook_id


class Stack:
    """One installation on disk: database, queue file, the app (in this process) and its processes."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
        settings = Settings(
            env="test",
            database_url=database_url,
            encryption_key=TEST_ENCRYPTION_KEY,
            shopify_api_key=SHOPIFY_API_KEY,
            shopify_api_secret=SHOPIFY_API_SECRET,
            app_url="https://clawback.example",
            queue_url=self.queue_url,  # a real queue: a POST leaves its job in the file
        )
        self.app: Flask = create_app(settings)
        self.app.config["TESTING"] = True
        self.client = self.app.test_client()
        self.db: Database = self.app.extensions["clawback"].db
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWBACK_", "SHOPIFY_"))} | {
            "CLAWBACK_ENV": "test",
            "CLAWBACK_DATABASE_URL": database_url,
            "CLAWBACK_QUEUE_URL": self.queue_url,
            "CLAWBACK_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
            "SHOPIFY_API_KEY": SHOPIFY_API_KEY,
            "SHOPIFY_API_SECRET": SHOPIFY_API_SECRET,
            "XDG_RUNTIME_DIR": str(tmp_path),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        result = self.app.test_cli_runner().invoke(
            cli, ["shop", "add", "--platform", "shopify", "--domain", SHOP, "--token", "shpat_test_token"]
        )
        assert result.exit_code == 0, result.output
        with self.db.session() as session:
            shop_id = session.exec(select(Shop.id).where(Shop.domain == SHOP)).one()
        assert shop_id is not None
        self.shop_id: int = shop_id

    @property
    def jobs(self) -> Jobs:
        """The app's jobs, built on first use: the tasks' retries are read from app.jobs then."""
        return self.app.extensions["clawback"].jobs  # type: ignore[no-any-return]

    # --- processes ------------------------------------------------------------------------------

    def start(self, name: str, *args: str, argv: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*(argv or [str(CLAWBACK)]), *args],
                env=self.env,
                cwd=self.tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: gunicorn's workers go with it
            )
        self.processes.append((name, proc, log))
        return proc

    def worker(self, workers: int = 2, argv: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("worker", "worker", "--workers", str(workers), argv=argv)

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log.read_text() for _name, p, log in self.processes if p is proc)

    def logs(self) -> str:
        return "\n".join(f"--- {name} (pid {p.pid}, {p.poll()})\n{log.read_text()}" for name, p, log in self.processes)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGINT (Huey's graceful stop: running tasks finish; gunicorn stops too), then SIGKILL."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def close(self) -> None:
        for _name, proc, _log in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.db.dispose()

    def clawback(self, *args: str, real: bool = True) -> str:
        """Run the command: the installed script in its own process (about 2 s each), or in-process."""
        if not real:
            result = self.app.test_cli_runner().invoke(cli, list(args))
            assert result.exit_code == 0, f"clawback {' '.join(args)} -> {result.exit_code}\n{result.output}"
            return result.stdout
        done = subprocess.run(
            [CLAWBACK, *args], env=self.env, cwd=self.tmp_path, capture_output=True, text=True, timeout=WAIT_S
        )
        assert done.returncode == 0, f"clawback {' '.join(args)} -> {done.returncode}\n{done.stderr}"
        return done.stdout

    def lines(self, *args: str, real: bool = True) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.clawback(*args, real=real).splitlines() if line.strip()]

    # --- what the books say ---------------------------------------------------------------------

    def ledger(self, *, real: bool = True) -> list[tuple[str, str, int, int, str]]:
        """Every entry as (kind, order, coins, pending, source): `clawback ledger`, sorted."""
        return sorted(
            (e["kind"], e["order_id"], e["coins_delta"], e["pending_delta"], e["source"])
            for e in self.lines("ledger", "--shop", SHOP, real=real)
        )

    def check_books(self) -> None:
        assert self.clawback("check", real=False).startswith("ok:")

    def delivery(self, d: Delivery) -> WebhookDelivery:
        with self.db.session() as session:
            return session.exec(select(WebhookDelivery).where(WebhookDelivery.delivery_id == d.webhook_id)).one()

    def status(self, d: Delivery) -> str | None:
        """The stored delivery's status; None while it is still in the inbox."""
        with self.db.session() as session:
            found = session.exec(select(WebhookDelivery.status).where(WebhookDelivery.delivery_id == d.webhook_id))
            return found.first()

    def count(self, model: Any) -> int:
        with self.db.session() as session:
            return int(session.exec(select(func.count()).select_from(model)).one())

    def queued(self) -> int:
        """process_delivery jobs waiting in the queue file (not those a worker has taken)."""
        return sum(1 for task in self.jobs.huey.pending() if task.name == "process_delivery")

    def spooled(self) -> int:
        """Deliveries waiting in the inbox (SQLite: see app/storage/inbox.py); 0 where there is none."""
        return self.app.extensions["clawback"].deliveries.spooled() or 0

    def move_spooled(self) -> None:
        """What a worker does first: the inbox's deliveries into webhook_deliveries."""
        deliveries = self.app.extensions["clawback"].deliveries
        if isinstance(deliveries, SqliteDeliveries):
            deliveries.move_inbox()

    def settled(self, *deliveries: Delivery) -> bool:
        return self.queued() == 0 and all(self.status(d) not in (None, "received") for d in deliveries)

    # --- the platform's side --------------------------------------------------------------------

    def post(self, d: Delivery) -> str:
        response = post_webhook(self.client, "shopify", d.body, d.headers, process=False)  # the workers process it
        assert response.status_code == 200, response.get_data(as_text=True)
        return str(response.get_json()["status"])


def earned(*deliveries: tuple[int, Delivery]) -> list[tuple[str, str, int, int, str]]:
    """What each paid order must have booked: one earn entry, from the delivery that carried it."""
    return sorted(("earn", str(order), EARNED[order], 0, f"shopify:webhook:{d.webhook_id}") for order, d in deliveries)


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    assert CLAWBACK.exists(), f"the console script is not installed next to {sys.executable}"
    installed = Stack(tmp_path, database_url)
    try:
        yield installed
    finally:
        installed.close()


# --- holding a lock the worker needs -------------------------------------------------------------


PG_LOCK_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


class WriteLock:
    """Hold what the worker's transaction needs, from outside the app, until released."""

    def __init__(self, database_url: str, shop_id: int, customer: str) -> None:
        url = make_url(normalize_url(database_url))
        self.sqlite: sqlite3.Connection | None = None
        self.engine: Engine | None = None
        self.conn: Connection | None = None
        if url.get_backend_name() == "sqlite":
            assert url.database
            self.sqlite = sqlite3.connect(url.database, isolation_level=None)
            self.sqlite.execute("BEGIN IMMEDIATE")  # every other writer now waits in busy_timeout
        else:
            self.engine = create_engine(url)
            self.conn = self.engine.connect()
            self.conn.begin()
            locked = self.conn.execute(
                text("SELECT id FROM customers WHERE shop_id = :shop AND platform_customer_id = :customer FOR UPDATE"),
                {"shop": shop_id, "customer": customer},
            ).all()
            assert len(locked) == 1

    def waiting(self) -> bool:
        """Whether a worker is (observably) blocked on us: PostgreSQL can tell; SQLite cannot."""
        if self.engine is None:
            return True
        with self.engine.connect() as probe:
            return int(probe.execute(text(PG_LOCK_WAITERS)).scalar_one()) > 0

    def release(self) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
            self.sqlite = None
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


# --- a. the worker is killed mid-transaction ------------------------------------------------------


def test_worker_killed_mid_transaction_then_restarted_takes_effect_exactly_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The customer exists (as after any earlier order), so on PostgreSQL there is a row to lock.
    with stack.db.session() as session:
        ledger.lock_customer(session, stack.shop_id, CUSTOMER)
    first, second = Delivery(order_payload(A, total="200.00")), Delivery(order_payload(B, total="100.00"))
    assert stack.post(first) == "accepted"
    assert stack.post(second) == "accepted"
    assert stack.queued() == 0  # nothing enqueued: the stored rows are what workers poll
    stack.move_spooled()  # (the kill during a move is the next test's)
    assert stack.spooled() == 0

    lock = WriteLock(stack.database_url, stack.shop_id, CUSTOMER)
    try:
        doomed = stack.worker(workers=1)
        wait_until("the worker takes both, in one batch", lambda: "applying 2 stored deliveries" in stack.log(doomed),
                   stack.logs)  # fmt: skip
        wait_until("the worker blocks on the lock", lock.waiting, stack.logs)
        time.sleep(0.5)  # SQLite cannot show the waiter: give it time to wait for the write lock
        assert "applied" not in stack.log(doomed), stack.logs()
        assert doomed.poll() is None, stack.logs()
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
    finally:
        lock.release()

    # Nothing of the interrupted transaction survived: both are still waiting, never tried.
    assert stack.ledger(real=False) == []
    for d in (first, second):
        row = stack.delivery(d)
        assert (row.status, row.attempts, row.processed_at) == ("received", 0, None)
    assert stack.count(Order) == 0

    # A restarted worker polls them again. To make it harder, the sweep (every minute in a
    # worker) also finds both still 'received' and enqueues a job for each: a worker with two
    # threads may then run the poll's batch and those jobs at once, and each must count once.
    monkeypatch.setattr(app.jobs, "SWEEP_AFTER_S", 0)
    with stack.app.app_context():
        assert services().jobs.sweep() == 2
    assert stack.queued() == 2
    fresh = stack.worker(workers=2)
    wait_until("both deliveries are processed", lambda: stack.settled(first, second), stack.logs)
    stack.stop(fresh)
    assert fresh.returncode == 0, stack.logs()

    books = earned((A, first), (B, second))
    assert stack.ledger() == books
    stack.check_books()
    for d in (first, second):
        row = stack.delivery(d)
        assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)  # the killed try left no trace

    # The platform retries: a duplicate of a processed delivery is not even enqueued.
    assert stack.post(first) == "duplicate"
    assert stack.queued() == 0
    # An operator replays it: processing again finds nothing new.
    assert stack.lines("replay", "--id", str(stack.delivery(first).id)) == [
        {"replayed": 1, "results": {"processed": 1}}
    ]
    assert stack.ledger(real=False) == books
    stack.check_books()


def test_worker_killed_while_moving_the_inbox_loses_nothing(stack: Stack) -> None:
    if stack.app.extensions["clawback"].deliveries.spooled() is None:
        pytest.skip("PostgreSQL has no inbox: webhooks are stored in webhook_deliveries directly")
    first, second = Delivery(order_payload(A, total="200.00")), Delivery(order_payload(B, total="100.00"))
    assert stack.post(first) == "accepted"
    assert stack.post(second) == "accepted"
    assert (stack.spooled(), stack.count(WebhookDelivery)) == (2, 0)

    lock = WriteLock(stack.database_url, stack.shop_id, CUSTOMER)  # the move's INSERTs wait for it
    try:
        doomed = stack.worker(workers=1)
        wait_until("the worker starts", lambda: "Clawback worker" in stack.log(doomed), stack.logs)
        time.sleep(1.0)  # SQLite cannot show the waiter: give it time to read the inbox and wait
        assert doomed.poll() is None, stack.logs()
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
    finally:
        lock.release()
    # The move's transaction died with it: both still spooled, nothing stored or booked.
    assert (stack.spooled(), stack.count(WebhookDelivery)) == (2, 0)
    assert stack.ledger(real=False) == []

    # The platform retries one of them meanwhile: spooled again (the web cannot see the inbox's
    # copy), and the move keeps one row per delivery id.
    assert stack.post(first) == "accepted"
    assert stack.spooled() == 3
    fresh = stack.worker(workers=2)
    wait_until("both are moved and processed", lambda: stack.spooled() == 0 and stack.count(WebhookDelivery) == 2
               and stack.settled(first, second), stack.logs)  # fmt: skip
    stack.stop(fresh)
    assert fresh.returncode == 0, stack.logs()
    assert stack.ledger() == earned((A, first), (B, second))
    stack.check_books()
    assert stack.post(first) == "duplicate"  # stored now: the web's read finds it
    assert stack.spooled() == 0


# --- b. the web process dies after storing, before answering --------------------------------------


def test_web_killed_after_storing_the_platform_retry_enqueues_it_once(stack: Stack) -> None:
    paid = Delivery(order_payload(A, total="200.00"))
    # The web process stored and committed the delivery, then died: no job, no answer.
    with stack.db.session() as session:
        kept = {k: v for k, v in paid.headers.items() if k.startswith("X-") and k != "X-Shopify-Hmac-Sha256"}
        pk = store_delivery(session, shop_id=stack.shop_id, platform="shopify", topic=paid.topic,
                            delivery_id=paid.webhook_id, body=paid.body, headers=kept)  # fmt: skip
    assert pk is not None
    assert stack.queued() == 0

    # The platform, having no answer, retries, this time to a real `clawback serve` (web only).
    port = free_port()
    web = stack.start("serve", "serve", "--port", str(port), "--workers", "1", "--job-workers", "0")

    def post() -> tuple[int, Mapping[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/shopify", data=paid.body, headers=paid.headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def healthy() -> bool:
        assert web.poll() is None, stack.logs()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until("clawback serve answers", healthy, stack.logs)
    assert post() == (200, {"status": "duplicate"})
    # Stored and never tried: a worker polls stored deliveries, so nothing needs enqueuing.
    assert stack.queued() == 0
    assert stack.delivery(paid).status == "received"  # the web runs no jobs

    worker = stack.worker()
    wait_until("the delivery is processed", lambda: stack.settled(paid), stack.logs)
    books = earned((A, paid))
    assert stack.ledger(real=False) == books

    # A third try: still a duplicate, not enqueued, nothing changes.
    assert post() == (200, {"status": "duplicate"})
    assert stack.queued() == 0
    stack.stop(worker)
    stack.stop(web)
    assert (worker.returncode, web.returncode) == (0, 0), stack.logs()
    assert stack.ledger() == books
    assert stack.count(WebhookDelivery) == 1
    row = stack.delivery(paid)
    assert (row.id, row.status, row.attempts) == (pk, "processed", 1)
    stack.check_books()


# --- c. a poison delivery never blocks the others -------------------------------------------------


def garbage_amount() -> dict[str, Any]:
    """A validly signed paid order whose total is not a number: MalformedDelivery, no retries."""
    payload = order_payload(ORDER + 9, total="50.00")
    payload["total_price_set"]["shop_money"]["amount"] = "fifty dollars"
    return payload


def raising() -> dict[str, Any]:
    """A well-formed order whose processing raises a plain error (in FAILING_WORKER): retried, then dead."""
    return order_payload(ORDER + 9, total="50.00", tags=POISON)


@pytest.mark.parametrize(
    ("poison", "argv", "error"),
    [
        (garbage_amount, None, "malformed: orders/paid: TranslationError"),
        (raising, [sys.executable, "-c", FAILING_WORKER], f"RuntimeError: {POISON}"),
    ],
    ids=["malformed", "raises"],
)
def test_a_poison_delivery_is_dead_lettered_and_never_blocks_the_others(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    poison: Callable[[], dict[str, Any]],
    argv: list[str] | None,
    error: str,
) -> None:
    monkeypatch.setattr(app.jobs, "PROCESS_RETRIES", 1)  # read when the app first builds its jobs, just below
    bad = Delivery(poison())
    good = [Delivery(order_payload(A, total="200.00")), Delivery(order_payload(B, total="100.00"))]
    for d in (bad, *good):  # the poison one first, and one worker thread: it must not hold the line
        assert stack.post(d) == "accepted"
    assert stack.queued() == 0  # the worker polls them, in one batch

    worker = stack.worker(workers=1, argv=argv)
    wait_until("the good deliveries are processed", lambda: all(stack.status(d) == "processed" for d in good),
               stack.logs)  # fmt: skip
    wait_until("the poison delivery is dead-lettered", lambda: stack.settled(bad), stack.logs)
    stack.stop(worker)
    assert worker.returncode == 0, stack.logs()

    assert stack.ledger() == earned((A, good[0]), (B, good[1]))
    stack.check_books()
    failed = stack.lines("deliveries", "--failed")
    assert [(f["delivery_id"], f["status"]) for f in failed] == [(bad.webhook_id, "failed")]
    assert failed[0]["last_error"].startswith(error), failed[0]
    assert failed[0]["attempts"] == (1 if argv is None else 2)  # malformed: never retried; raising: one retry
    assert [d["status"] for d in stack.lines("deliveries", real=False)] == ["processed", "processed", "failed"]


# --- the sweep and the retries -------------------------------------------------------------------


def test_the_sweep_leaves_alone_a_delivery_whose_retry_is_scheduled(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.shopify import ShopifyConnector

    def failing(*_args: Any) -> list[Any]:
        raise RuntimeError("the database is having a bad minute")

    monkeypatch.setattr(ShopifyConnector, "parse", failing)
    paid = Delivery(order_payload(A, total="200.00"))
    assert stack.post(paid) == "accepted"
    huey = stack.jobs.huey
    assert stack.jobs.poll_deliveries() == 1  # the first attempt (the poll's) fails: a retry job, due in 2 s
    assert stack.jobs.poll_deliveries() == 0  # tried once: no longer the poll's
    huey.execute(huey.dequeue())  # a worker takes the job, not due yet: Huey puts it in its schedule
    assert (stack.queued(), huey.scheduled_count(), stack.delivery(paid).status) == (0, 1, "received")
    assert stack.delivery(paid).attempts == 1

    # As it stands a second before its last retry is due: it arrived sum(schedule) - 1 seconds ago.
    schedule = [2 * 2**i for i in range(app.jobs.PROCESS_RETRIES)]
    with stack.db.session() as session:
        row = session.exec(select(WebhookDelivery).where(WebhookDelivery.delivery_id == paid.webhook_id)).one()
        row.received_at = row.received_at - timedelta(seconds=sum(schedule) - 1)
        session.add(row)
    with stack.app.app_context():
        swept = services().jobs.sweep()
    assert (swept, stack.queued()) == (0, 0), "its job is alive in the schedule; the sweep made a second one"


# --- d. serve's job worker is killed: serve starts another -----------------------------------------


def http(url: str, d: Delivery | None = None) -> tuple[int, Any]:
    """GET `url`, or POST the delivery to it: the status and the body (JSON when it is)."""
    request = urllib.request.Request(url, data=d.body, headers=d.headers, method="POST") if d else url
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    return status, (json.loads(body) if body.startswith("{") else body)


def job_worker_pids(serve: subprocess.Popen[bytes]) -> list[int]:
    """The live job workers `serve` started: its children running `clawback worker` (a killed one
    not yet reaped is a zombie, whose command line is empty)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # not a process, or gone meanwhile
        if parent == serve.pid and b"worker" in argv:
            pids.append(int(entry.name))
    return pids


def test_serve_restarts_its_job_worker_after_sigkill_and_readyz_says_degraded_meanwhile(stack: Stack) -> None:
    # Heartbeats every 0.2 s, "not seen" after 1 s, the first restart 3 s after a death: so
    # /readyz has two seconds to say "degraded" before the new worker beats.
    stack.env |= {"CLAWBACK_WORKER_HEARTBEAT_S": "0.2", "CLAWBACK_WORKER_STALE_S": "1",
                  "CLAWBACK_WORKER_RESTART_S": "3"}  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = stack.start("serve", "serve", "--port", str(port), "--workers", "1", "--job-workers", "1")

    def ready() -> bool:
        assert serve.poll() is None, stack.logs()
        try:
            status, body = http(f"{base}/readyz")
        except OSError:
            return False  # not listening yet
        return status == 200 and body["status"] == "ready" and body["worker_seen_s_ago"] is not None

    wait_until("serve answers, and its job worker beats", ready, stack.logs)
    first, second = Delivery(order_payload(A, total="200.00")), Delivery(order_payload(B, total="100.00"))
    assert http(f"{base}/webhooks/shopify", first) == (200, {"status": "accepted"})
    wait_until("the job worker processes the first", lambda: stack.settled(first), stack.logs)
    [doomed] = job_worker_pids(serve)

    os.kill(doomed, signal.SIGKILL)
    assert http(f"{base}/webhooks/shopify", second) == (200, {"status": "accepted"})  # the web does not mind
    wait_until("/readyz says degraded: a delivery waits, no worker beats",
               lambda: http(f"{base}/readyz")[0] == 503, stack.logs)  # fmt: skip
    status, body = http(f"{base}/readyz")
    assert (status, body["status"], body["database"], body["queue"]) == (503, "degraded", "ok", "ok"), body
    assert body["reason"].startswith("deliveries are waiting and no job worker is processing them"), body

    # (a) a new worker, (b) which processes what came meanwhile, (c) counted.
    wait_until("serve starts another worker", lambda: len(job_worker_pids(serve)) == 1 and
               job_worker_pids(serve) != [doomed], stack.logs)  # fmt: skip
    [fresh] = job_worker_pids(serve)
    wait_until("the new worker processes the second", lambda: stack.settled(second), stack.logs)
    assert stack.ledger(real=False) == earned((A, first), (B, second))
    wait_until("/readyz is ready again", ready, stack.logs)
    status, text = http(f"{base}/metrics")
    assert status == 200
    assert metric(text, "clawback_worker_restarts_total") == 1
    assert f"job worker (pid {doomed}) was killed by SIGKILL" in stack.log(serve)
    assert f"job worker started (pid {fresh})" in stack.log(serve)

    # Stopping serve (SIGTERM to it alone, as a process manager does) still stops its worker
    # gracefully, and starts no other.
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=WAIT_S) == 0, stack.logs()
    assert job_worker_pids(serve) == []
    assert not Path(f"/proc/{fresh}").exists()
    assert "Shutting down gracefully" in stack.log(serve)
    assert stack.log(serve).count("job worker started") == 2
    stack.check_books()
