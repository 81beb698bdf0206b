"""/metrics and /readyz: what an operator's Prometheus and load balancer read."""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from app.jobs import HEARTBEAT_KEY, count_worker_restart
from app.storage.sqlite import SqliteDeliveries
from tests.helpers import metric, work
from tests.platforms.shopify import configure, deliver, install, order_payload


def test_metrics_count_deliveries_reversals_and_the_queue(client: FlaskClient, runner: FlaskCliRunner) -> None:
    install(runner)
    configure(runner, "revert.enabled=true")
    deliver(client, "orders/paid", order_payload(at=1))
    deliver(client, "orders/cancelled", order_payload(at=2, financial_status="voided", cancelled=True))
    deliver(client, "orders/paid", order_payload(at=3), changes={"X-Shopify-Hmac-Sha256": "forged"})
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, 'clawback_deliveries_total{platform="shopify",status="processed"}') == 2
    assert metric(text, "clawback_reversals_total") == 1
    assert metric(text, "clawback_queue_depth") == 0
    assert metric(text, 'clawback_deliveries_rejected_total{platform="shopify",reason="401"}') >= 1
    assert metric(text, 'clawback_processing_latency_seconds{quantile="0.99"}') >= 0
    assert "test-api-secret" not in text


def test_metrics_count_worker_restarts_and_the_heartbeat_age(app: Flask, client: FlaskClient) -> None:
    jobs = app.extensions["clawback"].jobs
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "clawback_worker_restarts_total") == 0
    assert "clawback_worker_heartbeat_age_seconds" not in text  # no worker ever ran
    assert count_worker_restart(jobs.huey) == 1  # what `clawback serve` does as it restarts one
    assert count_worker_restart(jobs.huey) == 2
    jobs.beat()
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "clawback_worker_restarts_total") == 2
    assert 0 <= metric(text, "clawback_worker_heartbeat_age_seconds") < 5


def test_readyz_reports_database_and_queue(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready", "database": "ok", "queue": "ok", "queue_depth": 0, "worker_seen_s_ago": None,
    }  # fmt: skip


def test_readyz_is_degraded_while_deliveries_wait_and_no_worker_is_seen(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner
) -> None:
    """No worker and nothing to do: ready. A delivery waiting (in SQLite's inbox, or stored and
    never tried) with no heartbeat within CLAWBACK_WORKER_STALE_S (60 s): degraded. (The real
    processes: tests/test_crash_safety.py.)"""
    jobs = app.extensions["clawback"].jobs
    install(runner)
    assert client.get("/readyz").get_json()["status"] == "ready"
    deliver(client, "orders/paid", order_payload(at=1), process=False)

    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["database"], body["queue"]) == ("degraded", "ok", "ok")
    assert body["worker_seen_s_ago"] is None
    assert body["reason"] == (
        "deliveries are waiting and no job worker is processing them: a worker has never recorded a heartbeat"
    )
    deliveries = app.extensions["clawback"].deliveries
    if isinstance(deliveries, SqliteDeliveries):  # out of the inbox: stored, never tried, still waiting
        deliveries.move_inbox()
        assert deliveries.spooled() == 0
        assert client.get("/readyz").status_code == 503

    jobs.beat()  # a worker is alive (its first poll has not come yet)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"
    assert 0 <= response.get_json()["worker_seen_s_ago"] < 5

    jobs.huey.put(HEARTBEAT_KEY, time.time() - 75)  # its last heartbeat, 75 s ago
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()["status"]) == (503, "degraded")
    assert response.get_json()["reason"].endswith("a worker was last seen 75 s ago")

    assert work(app) == 1  # nothing waits any more: ready, even with no worker seen
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()["status"]) == (200, "ready")
    assert response.get_json()["worker_seen_s_ago"] >= 75
