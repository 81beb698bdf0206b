"""The job queue: Huey, with its storage picked by URL, and Clawback's tasks and schedules.

Why Huey: a small, established queue with retries and exponential backoff, periodic tasks, and
storage in SQLite (one file, nothing to install: the embedded default), Redis or PostgreSQL
(several machines). RQ and Celery need a broker even on one machine; Dramatiq has no SQLite.

The queue carries ids only; the rows (deliveries, write-backs, awards) are the truth, so a lost
or repeated job is harmless: every task is idempotent, and a sweeper re-enqueues whatever a
crash left behind. A new webhook delivery is not enqueued at all: the stored row is its job, and
the worker polls stored deliveries in batches before the queue's tasks (`Jobs.poll_deliveries`);
the queue takes over a delivery only for its retries. Nothing is built at import time:
`Jobs(...)` registers the tasks on its own Huey instance. Platform knowledge comes in as functions
(`parser_for`, `executor`), so this module imports no connector.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from huey import Huey, MemoryHuey, PostgresHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer, Worker
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from app import pipeline, reconcile, service, writebacks
from app.db import Database
from app.domain.snapshot import OrderSnapshot
from app.errors import ClawbackError
from app.models import Shop, WebhookDelivery, utcnow
from app.storage.deliveries import Deliveries

log = logging.getLogger(__name__)
PROCESS_RETRIES = 6  # 2 s, 4 s, 8 s, … about two minutes in all, then the dead-letter list
# A delivery still 'received' this long after arrival lost its job. Longer than the whole retry
# schedule (2 + 4 + … + 64 = 126 s), so a delivery waiting for a retry is not swept twice.
SWEEP_AFTER_S = 600
BATCH = 100  # stored deliveries read per poll
PRIORITIES = ("idle", "low", "normal")
# Kept in the queue's own storage, which every web and job worker process of an installation
# shares on every machine (a SQLite file beside the database, Redis, or PostgreSQL tables): a
# worker's heartbeat (a key it rewrites) and the count of job workers `clawback serve` restarted
# (an atomic counter). On SQLite neither touches the database file, so neither takes its write lock.
HEARTBEAT_KEY = "clawback.worker.heartbeat"
RESTARTS_KEY = "clawback.worker.restarts"


def make_huey(queue_url: str, database_url: str) -> Huey:
    """The Huey instance for a queue URL: redis://, postgresql://, sqlite:///path or memory:// (in
    this process only: tests, which run the worker's steps themselves with `tests.helpers.work`).

    With no URL the queue lives beside the data: a SQLite file next to a SQLite database, or
    tables in the PostgreSQL database itself.
    """
    url = queue_url or database_url
    if url.startswith("memory://"):
        return MemoryHuey("clawback")
    if url.startswith(("redis://", "rediss://")):
        return RedisHuey("clawback", url=url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresHuey("clawback", dsn=dsn)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not queue_url:  # beside the app's database, never inside it
            path = path.with_name(path.stem + "-queue.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("clawback", filename=str(path))
    raise ValueError(f"unsupported queue URL {url!r}: use redis://, postgresql:// or sqlite:///path")


class Jobs:
    """Clawback's tasks, registered on one Huey instance."""

    def __init__(
        self,
        huey: Huey,
        db: Database,
        deliveries: Deliveries,
        parser_for: Callable[[str], pipeline.Parser],
        executor: writebacks.Executor,
        orders_since: Callable[[Shop, datetime], Iterable[OrderSnapshot]] | None = None,
    ) -> None:
        self.huey, self.db, self.parser_for, self.executor = huey, db, parser_for, executor
        self.deliveries = deliveries
        self.orders_since = orders_since
        task = huey.task(retries=PROCESS_RETRIES, retry_delay=2, retry_backoff=2, context=True, name="process_delivery")
        self.process = task(self._process)
        self.writeback = huey.task(name="run_writeback")(self._writeback)
        huey.periodic_task(crontab(minute="*"), name="run_due_writebacks")(self.run_due_writebacks)
        huey.periodic_task(crontab(minute="*/5"), name="release_due")(self.release_due)
        huey.periodic_task(crontab(minute="*"), name="sweep_deliveries")(self.sweep)
        huey.periodic_task(crontab(minute="17"), name="reconcile_all")(self.reconcile_all)
        huey.periodic_task(crontab(minute="41"), name="analyze")(self.db.analyze)
        self._polling = threading.Lock()
        # `huey.create_consumer(...)` (the worker command) builds workers that poll stored
        # deliveries first: see DeliveryWorker.
        huey.create_consumer = self._consumer

    def _consumer(self, **options: Any) -> Consumer:
        return _Consumer(self, **options)

    # --- tasks ----------------------------------------------------------------------------------

    def _process(self, delivery_pk: int, platform: str, task: Any = None) -> str:
        """One delivery's retry: the worker's own path, with a batch of one. A delivery already
        processed is left alone ("already processed" is success); one that raises again is
        retried with backoff, then goes onto the dead-letter list."""
        try:
            status, failure = self.process_now([delivery_pk]).get(delivery_pk, ("missing", None))
            if failure is not None:
                raise ApplyFailed(
                    f"delivery {delivery_pk} failed again ({type(failure).__name__}); its error is on its row"
                )
            return status
        except Exception:
            if task is not None and task.retries == 0:
                pipeline.give_up(self.db, delivery_pk)  # out of retries: onto the dead-letter list
            raise

    def process_now(self, delivery_pks: Iterable[int]) -> dict[int, tuple[str, Exception | None]]:
        """Apply these stored deliveries here and now, whatever their attempts (a retry, a replay);
        each one's status, and what it raised when it is to be retried ("retry"). Deliveries done
        or dead-lettered meanwhile are left as they are."""
        stored = self.deliveries.load(list(delivery_pks))
        statuses: dict[int, tuple[str, Exception | None]] = {}
        todo = []
        for delivery in stored:
            if delivery.status in pipeline.DONE:
                statuses[delivery.id] = (delivery.status, None)
            else:
                todo.append(delivery)
        for item in pipeline.process(self.db, self.deliveries, todo, self.parser_for):
            assert item.delivery is not None
            statuses[item.delivery.id] = (item.status, item.failure)
        return statuses

    def _writeback(self, writeback_id: int) -> str:
        return writebacks.run_one(self.db, writeback_id, self.executor)

    def run_due_writebacks(self) -> dict[str, int]:
        return dict(writebacks.run_due(self.db, self.executor))

    def release_due(self) -> int:
        with self.db.session() as session:
            return len(service.release_due(session))

    def sweep(self) -> int:
        """Re-enqueue deliveries a crash left stored but unprocessed (processing is idempotent)."""
        cutoff = utcnow() - timedelta(seconds=SWEEP_AFTER_S)
        with self.db.session() as session:
            stuck = session.exec(
                select(WebhookDelivery.id, WebhookDelivery.platform)
                .where(WebhookDelivery.status == "received", col(WebhookDelivery.received_at) < cutoff)
                .limit(1000)
            ).all()
        for pk, platform in stuck:
            assert pk is not None
            self.enqueue(pk, platform)
        return len(stuck)

    def reconcile_all(self) -> list[dict[str, object]]:
        """Hourly: every installed shop whose platform can list its changed orders."""
        if self.orders_since is None:
            return []
        with self.db.session() as session:
            shops = session.exec(select(Shop).where(col(Shop.uninstalled_at).is_(None))).all()
        reports = []
        for shop in shops:
            since = reconcile.since_for(shop, utcnow())
            try:
                assert shop.id is not None
                report = reconcile.reconcile(
                    self.db, self.deliveries, shop.id, self.orders_since(shop, since), since=since
                )
            except LookupError:
                continue  # a platform without reconciliation (the demo shop)
            except Exception:
                log.exception("reconciling %s failed; the next run starts from the last sync", shop.domain)
                continue
            reports.append({"shop": report.shop, "orders_changed": report.orders_changed})
        return reports

    # --- the stored deliveries are the queue ------------------------------------------------------

    def poll_deliveries(self, limit: int = BATCH) -> int:
        """Process the oldest stored deliveries never tried yet, in batches; return how many.

        Webhook intake writes one row and enqueues nothing (on SQLite a queue entry would be a
        second write, in a second database, per webhook): the worker reads what is waiting, parses
        it outside any write lock and applies it several deliveries per transaction. One thread per
        process polls at a time (SQLite has one writer anyway; on PostgreSQL several workers claim
        disjoint rows with FOR UPDATE SKIP LOCKED). A delivery that raises goes to the queue's
        `process_delivery` task for its retries with backoff, then to the dead-letter list.
        """
        if not self._polling.acquire(blocking=False):
            return 0
        try:
            stored = self.deliveries.take(limit)
            if not stored:
                return 0
            log.info("applying %d stored deliveries", len(stored))
            work = pipeline.parse(self.db, stored, self.parser_for)
            transactions = pipeline.apply(self.db, self.deliveries, work)
        except Exception:
            log.exception("processing stored deliveries failed; trying again shortly")
            time.sleep(1)
            return 0
        finally:
            self._polling.release()
        counts = Counter(item.status for item in work)
        log.info("applied %d stored deliveries in %d transactions: %s", len(work), transactions,
                 ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))  # fmt: skip
        for item in work:
            if item.status == "retry" and item.delivery is not None:
                self.retry_later(item.delivery.id, item.delivery.platform)
        return sum(n for status, n in counts.items() if status != "skipped")

    def retry_later(self, delivery_pk: int, platform: str) -> None:
        """The first attempt (the poll's) failed: the queue's task takes the remaining ones, on the
        same schedule as if it had made the first (2 s, then 4 s, 8 s, …)."""
        try:
            self.process.schedule((delivery_pk, platform), delay=2, retries=PROCESS_RETRIES - 1, retry_delay=4)
        except Exception:
            # Recorded as tried, so not polled again; the sweep re-enqueues it.
            log.exception("could not schedule the retry of delivery %s; the sweep will", delivery_pk)

    # --- for callers ----------------------------------------------------------------------------

    def enqueue(self, delivery_pk: int, platform: str) -> None:
        """A `process_delivery` job for one delivery (sweeps, retries after a crash, tests)."""
        self.process(delivery_pk, platform)

    def pending(self) -> int:
        return int(self.huey.pending_count())

    # --- the workers' liveness, for /readyz and /metrics -------------------------------------------

    def beat(self) -> None:
        """Record that a job worker is alive now (its consumer's main loop calls this every few
        seconds: see _Consumer). Wall-clock time, as it is compared on other machines."""
        self.huey.put(HEARTBEAT_KEY, time.time())

    def last_beat(self) -> float | None:
        """When a job worker last recorded it was alive (any worker: the newest beat wins), or
        None if none ever did. A plain read of one key: no write, no lock."""
        seen = self.huey.get(HEARTBEAT_KEY, peek=True)
        return None if seen is None else float(seen)

    def restarts(self) -> int:
        """How many job workers `clawback serve` has restarted, in all (`count_worker_restart`)."""
        # Huey's way to read a counter: an upsert of +0 (on SQLite, in the queue's file, not the
        # database's). /metrics calls it at each scrape; /readyz never does.
        return int(self.huey.storage.incr(RESTARTS_KEY, 0))


def count_worker_restart(huey: Huey) -> int:
    """One job worker restart more (by `clawback serve`'s supervisor: web/supervisor.py); the new
    total. Atomic in every storage, so several serve processes sharing a queue count each one.
    The connection is closed after: serve forks its web workers, and none may inherit it."""
    try:
        return int(huey.storage.incr(RESTARTS_KEY))
    finally:
        huey.storage.close()


class ApplyFailed(ClawbackError):
    """A delivery's retry raised again (its error is on its row): the queue retries it later."""


class DeliveryWorker(Worker):
    """A Huey worker that takes stored deliveries (in batches) before the queue's tasks.

    While deliveries keep coming it keeps polling them, and looks at the queue once a second
    (retries, write-backs, the schedules' tasks) so those never starve.
    """

    jobs: Jobs

    def loop(self, now: Any = None) -> None:
        if self.jobs.poll_deliveries():
            self.delay = self.default_delay
            last = getattr(self, "_queue_seen", 0.0)
            if time.monotonic() - last < 1.0:
                return
            self._queue_seen = time.monotonic()
            if not self.huey.pending_count():
                return
        super().loop(now)


class _Consumer(Consumer):
    """Huey's consumer, with DeliveryWorker threads, that records the worker's heartbeat.

    The beat comes from the consumer's main loop (it turns every 0.1 s and restarts crashed worker
    threads), not from a worker thread, which can be busy for minutes in one long task: a beat
    says the process is alive and its consumer running. Each beat is one small write to the
    queue's storage, every `heartbeat_s` seconds."""

    def __init__(self, jobs: Jobs, heartbeat_s: float = 5.0, **options: Any) -> None:
        self.worker_class = type("DeliveryWorker", (DeliveryWorker,), {"jobs": jobs})
        self.jobs, self.heartbeat_s = jobs, heartbeat_s
        self._beaten = float("-inf")  # (monotonic) the first loop beats at once
        super().__init__(jobs.huey, **options)

    def loop(self, health_check_ts: Any = None) -> Any:
        health_check_ts = super().loop(health_check_ts)
        if time.monotonic() - self._beaten >= self.heartbeat_s:
            self._beaten = time.monotonic()
            try:
                self.jobs.beat()
            except Exception:  # the queue is away: its own errors show in the workers too
                log.warning("could not record the worker's heartbeat", exc_info=True)
        return health_check_ts


def set_priority(priority: str) -> None:
    """The CPU priority of this process's threads and those it starts next (Linux).

    `idle` (SCHED_IDLE) when the worker runs beside the web workers on one machine (`clawback
    serve`): answering webhooks comes first (the platforms time out after seconds, and give up
    on an endpoint that keeps failing), and the worker takes the CPU the web leaves; deliveries
    wait, durable, in the meantime. Under a burst this is what keeps the answers fast: the total
    work, and so the end-to-end time, stays the same. The price: any other busy process on the
    machine comes first too. `low` is nice 19 (a small share even then); `normal` changes nothing
    (a worker on a machine of its own).
    """
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
    try:
        if priority == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority == "low":
            os.nice(19)
    except (OSError, AttributeError):  # not permitted here, or not Linux: the usual priority
        log.warning("could not lower the worker's CPU priority to %s", priority)
