"""GET /metrics for Prometheus, and GET /readyz.

Most figures are read from the database at scrape time, so every gunicorn worker and every job
worker on every machine reports the same numbers without a shared metrics store: deliveries by
status, processing latency over the last 1,000 deliveries, reversals, write-backs by status, and
the queue's depth, the job workers' restarts and heartbeat (kept in the queue's storage: see
app/jobs.py). Only rejections (which store nothing, by design) are counted in-process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import LedgerEntry, WebhookDelivery, Writeback, as_utc
from web.extensions import Services, services

bp = Blueprint("metrics", __name__)
_PROCESS_REGISTRY = CollectorRegistry()
REJECTED = Counter("clawback_deliveries_rejected", "Deliveries refused before storing (this process)",
                   ["platform", "reason"], registry=_PROCESS_REGISTRY)  # fmt: skip
ACCEPTED = Counter("clawback_deliveries_accepted", "Deliveries stored (this process)", ["platform"],
                   registry=_PROCESS_REGISTRY)  # fmt: skip
DUPLICATES = Counter("clawback_deliveries_duplicate", "Deliveries answered as duplicates (this process)",
                     ["platform"], registry=_PROCESS_REGISTRY)  # fmt: skip


_CHILDREN: dict[tuple[int, str], Any] = {}


def counted(counter: Counter, platform: str) -> Any:
    """`counter.labels(platform=…)`, remembered: prometheus_client resolves the labels on every
    call, which on the webhook path cost a twentieth of the request."""
    key = (id(counter), platform)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = counter.labels(platform=platform)
    return child


class BooksCollector(Collector):
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        with Session(self.svc.db.engine) as session:
            deliveries = CounterMetricFamily("clawback_deliveries", "Deliveries stored, by status",
                                             labels=["platform", "status"])  # fmt: skip
            for platform, status, count in session.exec(
                select(WebhookDelivery.platform, WebhookDelivery.status, func.count()).group_by(
                    WebhookDelivery.platform, WebhookDelivery.status
                )
            ):
                deliveries.add_metric([platform, status], float(count))
            yield deliveries
            latency = GaugeMetricFamily(
                "clawback_processing_latency_seconds", "Arrival to processed, last 1000", labels=["quantile"]
            )
            recent = session.exec(
                select(WebhookDelivery.received_at, WebhookDelivery.processed_at)
                .where(col(WebhookDelivery.processed_at).is_not(None))
                .order_by(col(WebhookDelivery.id).desc())
                .limit(1000)
            ).all()
            waits = sorted((as_utc(done) - as_utc(got)).total_seconds() for got, done in recent if done)
            for q in (0.5, 0.99, 1.0):
                latency.add_metric([str(q)], waits[min(len(waits) - 1, int(q * len(waits)))] if waits else 0.0)
            yield latency
            reversals = session.exec(select(func.count()).where(LedgerEntry.kind == "revert")).one()
            yield CounterMetricFamily("clawback_reversals", "Revert entries in the ledger", value=float(reversals))
            wb = GaugeMetricFamily("clawback_writebacks", "Write-backs by status", labels=["status"])
            for status, count in session.exec(select(Writeback.status, func.count()).group_by(Writeback.status)):
                wb.add_metric([status], float(count))
            yield wb
        yield GaugeMetricFamily(
            "clawback_queue_depth", "Jobs waiting in the queue", value=float(self.svc.jobs.pending())
        )
        spooled = self.svc.deliveries.spooled()
        if spooled is not None:  # SQLite: webhooks answered, not yet moved
            yield GaugeMetricFamily(
                "clawback_inbox_depth", "Webhooks spooled in the inbox, waiting for the worker", value=float(spooled)
            )
        yield CounterMetricFamily(
            "clawback_worker_restarts", "Job workers clawback serve restarted after they died",
            value=float(self.svc.jobs.restarts()),
        )  # fmt: skip
        last_beat = self.svc.jobs.last_beat()
        if last_beat is not None:  # (none before the first worker ever started)
            yield GaugeMetricFamily(
                "clawback_worker_heartbeat_age_seconds", "Seconds since a job worker last recorded its heartbeat",
                value=max(0.0, time.time() - last_beat),
            )  # fmt: skip


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    registry = CollectorRegistry()
    registry.register(BooksCollector(services()))
    body = generate_latest(registry) + generate_latest(_PROCESS_REGISTRY)
    return Response(body, mimetype="text/plain; version=0.0.4")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 "ready" when the database and the queue answer; 503 "error" when either does not; 503
    "degraded" when deliveries wait and no job worker has recorded its heartbeat for
    `worker_stale_s` seconds (none is alive, or none gets the CPU): webhooks are still accepted
    and kept, but nothing processes them.

    Load balancers poll it, so it stays cheap: a `SELECT 1`, the queue's depth and one key read
    from the queue's storage (the heartbeat: app/jobs.py); only when the heartbeat is stale, the
    inbox's depth (SQLite) and one indexed `EXISTS`-like read of the deliveries never tried. All
    reads: on SQLite none takes the write lock."""
    svc = services()
    checks: dict[str, object] = {}
    ok = True
    try:
        svc.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"], ok = type(exc).__name__, False
    last_beat = None
    try:
        checks["queue_depth"] = svc.jobs.pending()
        last_beat = svc.jobs.last_beat()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"], ok = type(exc).__name__, False
    if not ok:
        return jsonify(status="error", **checks), 503
    seen_s_ago = None if last_beat is None else round(max(0.0, time.time() - last_beat), 1)
    checks["worker_seen_s_ago"] = seen_s_ago
    if seen_s_ago is not None and seen_s_ago < svc.settings.worker_stale_s:
        return jsonify(status="ready", **checks), 200
    try:
        waiting = _deliveries_waiting(svc)
    except Exception as exc:
        checks["database"] = type(exc).__name__
        return jsonify(status="error", **checks), 503
    if not waiting:  # no worker, and nothing for one to do (a web-only replica, or all quiet)
        return jsonify(status="ready", **checks), 200
    seen = "has never recorded a heartbeat" if seen_s_ago is None else f"was last seen {seen_s_ago:.0f} s ago"
    reason = f"deliveries are waiting and no job worker is processing them: a worker {seen}"
    return jsonify(status="degraded", reason=reason, **checks), 503


def _deliveries_waiting(svc: Services) -> bool:
    """Whether any delivery waits for a worker's first attempt: in SQLite's inbox, or stored and
    never tried (what `Jobs.poll_deliveries` takes; the `(status, received_at)` index finds it).
    Retries waiting in the queue are the queue's depth."""
    if svc.deliveries.spooled():
        return True
    with svc.db.read() as session:
        found = session.exec(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "received", WebhookDelivery.attempts == 0)
            .limit(1)
        ).first()
    return found is not None
