"""GET /metrics for Prometheus, and GET /readyz.

Most figures are read from the database at scrape time, so every gunicorn worker and every job
worker on every machine reports the same numbers without a shared metrics store: deliveries by
status, processing latency over the last 1,000 deliveries, reversals, write-backs by status, and
the queue's depth. Only rejections (which store nothing, by design) are counted in-process.
"""

from __future__ import annotations

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


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    registry = CollectorRegistry()
    registry.register(BooksCollector(services()))
    body = generate_latest(registry) + generate_latest(_PROCESS_REGISTRY)
    return Response(body, mimetype="text/plain; version=0.0.4")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the database and the queue both answer (load balancers: send traffic)."""
    checks: dict[str, object] = {}
    ok = True
    try:
        services().db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"], ok = type(exc).__name__, False
    try:
        checks["queue_depth"] = services().jobs.pending()
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"], ok = type(exc).__name__, False
    return jsonify(status="ok" if ok else "error", **checks), 200 if ok else 503
