"""/metrics and /readyz: what an operator's Prometheus and load balancer read."""

from __future__ import annotations

from flask.testing import FlaskClient, FlaskCliRunner

from tests.web.test_webhooks_shopify import SHOP, deliver, order_payload
from web.cli import cli


def metric(text: str, name: str) -> float:
    """The value of the first sample whose line starts with `name` (labels included)."""
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_metrics_count_deliveries_reversals_and_the_queue(client: FlaskClient, runner: FlaskCliRunner) -> None:
    assert runner.invoke(cli, ["shop", "add", "--platform", "shopify", "--domain", SHOP]).exit_code == 0
    assert runner.invoke(cli, ["settings", "set", "--shop", SHOP, "revert.enabled=true"]).exit_code == 0
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
