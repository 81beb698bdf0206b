"""Small helpers the test modules share (one place, not one copy per file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from click.testing import Result
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import inspect, text
from sqlmodel import select
from werkzeug.test import TestResponse

from app.db import Database
from app.models import WebhookDelivery
from web.cli import cli


def table_names(db: Database) -> list[str]:
    return sorted(inspect(db.engine).get_table_names())


def row_counts(db: Database, *tables: str) -> dict[str, int]:
    """How many rows each of `tables` holds (every table when none is named)."""
    names = tables or tuple(table_names(db))
    with db.engine.connect() as conn:
        return {t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()) for t in names}


def metric(text: str, name: str) -> float:
    """The value of the first sample in /metrics' `text` whose line starts with `name` (labels included)."""
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def work(app) -> int:  # type: ignore[no-untyped-def]
    """What a `clawback worker` does, run once here and now: take the stored deliveries until none
    waits (the worker's own poll, batches and all), then run every queue task that is due
    (retries, write-backs). Returns how many deliveries it applied. Tests call it after a webhook
    instead of running a worker process beside them."""
    jobs = app.extensions["clawback"].jobs
    applied = 0
    while done := jobs.poll_deliveries():
        applied += done
    huey = jobs.huey
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    return applied


def store_delivery(session, **row: Any) -> int | None:  # type: ignore[no-untyped-def]
    """Write a delivery's row in `session`, as a webhook's INSERT does where there is no inbox:
    for tests that arrange stored deliveries without the web. Its id, or None for a duplicate."""
    from app.storage.deliveries import insert_statement, values

    found = session.execute(insert_statement(session.get_bind().dialect.name), values(**row)).first()
    return None if found is None else int(found[0])


def post_webhook(
    client: FlaskClient,
    platform: str,
    body: bytes,
    headers: Any,
    *,
    changes: Mapping[str, str | None] | None = None,
    process: bool = True,
) -> TestResponse:
    """POST `body` to /webhooks/<platform> with `headers` (with `changes` made after signing: None
    removes a header), then (unless `process` is False) run the worker once with `work`, so what the
    delivery changes is in the books when this returns. `process=False` leaves an accepted delivery
    stored and waiting, as a real worker would find it."""
    if changes:
        headers = dict(headers)
        for name, value in changes.items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
    response = client.post(f"/webhooks/{platform}", data=body, headers=headers)
    if process:
        work(client.application)
    return response


def clawback(runner: FlaskCliRunner, *args: str) -> Result:
    """Run `clawback ARGS...`, which must succeed; its output is shown when it does not."""
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, f"clawback {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result


def deliveries(db: Database) -> list[WebhookDelivery]:
    """Every stored webhook delivery, oldest first."""
    with db.session() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))  # type: ignore[arg-type]
