"""What comes in and goes out: `deliveries` (webhooks received) and `replay` (process failed ones
again), and `writebacks list|run|replay` (what Clawback tells the platforms)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlmodel import col, select

from app.models import Shop, WebhookDelivery, Writeback, as_utc
from app.shops import find_shop
from web.cli.common import CliError, emit, parse_time, refuses_bad_input, unit_of_work
from web.extensions import services

commands = AppGroup()  # web/cli/__init__.py adds these to `clawback`


@commands.command()
@click.option("--shop", "shop_ref")
@click.option("--failed", is_flag=True, help="Only deliveries that failed (the dead-letter list)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@refuses_bad_input
def deliveries(shop_ref: str | None, failed: bool, limit: int) -> None:
    """Webhook deliveries as JSON lines, newest first."""
    with unit_of_work() as session:
        query = select(WebhookDelivery, Shop.domain).join(Shop)
        if shop_ref is not None:
            query = query.where(WebhookDelivery.shop_id == find_shop(session, shop_ref).id)
        if failed:
            query = query.where(WebhookDelivery.status == "failed")
        for d, domain in session.exec(query.order_by(col(WebhookDelivery.id).desc()).limit(limit)):
            emit({
                "id": d.id, "shop": domain, "platform": d.platform, "topic": d.topic, "delivery_id": d.delivery_id,
                "status": d.status, "attempts": d.attempts, "last_error": d.last_error, "order_id": d.order_ref,
                "received_at": as_utc(d.received_at).isoformat(),
            })  # fmt: skip
    if spooled := services().deliveries.spooled():
        click.echo(f"{spooled} more answered and waiting in the inbox, for a worker to store and process", err=True)


@commands.command()
@click.option("--id", "ids", multiple=True, type=int, help="Replay these deliveries (default: every failed one)")
@refuses_bad_input
def replay(ids: tuple[int, ...]) -> None:
    """Process failed (or chosen) deliveries again, from their stored raw bodies."""
    svc = services()
    with unit_of_work() as session:
        query = select(WebhookDelivery)
        query = (
            query.where(col(WebhookDelivery.id).in_(ids)) if ids else query.where(WebhookDelivery.status == "failed")
        )
        rows = session.exec(query.order_by(col(WebhookDelivery.id))).all()
        if ids and len(rows) != len(set(ids)):
            raise CliError(f"no deliveries with ids {sorted(set(ids) - {r.id for r in rows})}")
        for row in rows:
            row.status = "received"
            session.add(row)
        todo = [r.id for r in rows if r.id is not None]
    results: dict[str, int] = {}
    # The worker's own path: one batch, each delivery in its own savepoint if one raises.
    for status, failure in svc.jobs.process_now(todo).values():
        if failure is not None:  # the error is on the row; reported, and the rest go on
            status = f"error: {type(failure).__name__}"
        results[status] = results.get(status, 0) + 1
    emit({"replayed": len(todo), "results": results})


@commands.group()
def writebacks() -> None:
    """Write-backs to the platforms: list, run what is due, replay the dead letters."""


@writebacks.command("list")
@click.option("--failed", is_flag=True)
def writebacks_list(failed: bool) -> None:
    """Write-back intents as JSON lines, newest first."""
    with unit_of_work() as session:
        query = select(Writeback, Shop.domain).join(Shop)
        if failed:
            query = query.where(Writeback.status == "failed")
        for w, domain in session.exec(query.order_by(col(Writeback.id).desc()).limit(500)):
            emit({"id": w.id, "shop": domain, "kind": w.kind, "status": w.status, "attempts": w.attempts,
                  "last_error": w.last_error, "next_attempt_at": as_utc(w.next_attempt_at).isoformat()})  # fmt: skip


@writebacks.command("run")
@click.option("--now", "now_text", help="ISO time to run as of (default: now)")
@refuses_bad_input
def writebacks_run(now_text: str | None) -> None:
    """Carry out every write-back that is due."""
    import connectors
    from app import writebacks as wb

    svc = services()
    with unit_of_work():
        pass  # fail early, clearly, on a database without schema
    counts = wb.run_due(svc.db, connectors.writeback_executor(svc.settings, svc.vault), parse_time(now_text))
    emit(dict(counts))


@writebacks.command("replay")
def writebacks_replay() -> None:
    """Queue the failed write-backs again."""
    from app import writebacks as wb

    with unit_of_work() as session:
        emit({"requeued": wb.replay_failed(session)})
