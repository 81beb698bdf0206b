"""/metrics and /readyz: what an operator's Prometheus and load balancer read."""

from __future__ import annotations

from flask.testing import FlaskClient, FlaskCliRunner

from tests.helpers import metric
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


def test_readyz_reports_database_and_queue(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "queue": "ok", "queue_depth": 0}
