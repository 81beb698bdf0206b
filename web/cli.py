"""The `clawback` command. Names, options and output formats are a contract (README)."""

from __future__ import annotations

import functools
import gc
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import FlaskGroup
from huey import MemoryHuey
from sqlalchemy import inspect
from sqlmodel import Session, col, select

from app import audit, migrate, service, wallet
from app.errors import ClawbackError, ConfigError
from app.jobs import PRIORITIES, set_priority
from app.models import Customer, LedgerEntry, Shop, WebhookDelivery, Writeback, as_utc
from app.shops import (
    change_settings,
    find_shop,
    normalize_shopify_domain,
    normalize_store_url,
    read_credentials,
    register_shop,
    shop_settings,
)
from connectors import fynd
from web import create_app
from web.extensions import Services, services

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """Refused input: a clear message on stderr and exit status 2. Nothing was written."""

    exit_code = 2


def refuses_bad_input(fn: F) -> F:
    """Turn domain errors into CliError; the session's rollback has already undone any write."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClawbackError as exc:
            raise CliError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A committed-or-rolled-back session on a database that has been migrated."""
    svc: Services = services()
    if "alembic_version" not in inspect(svc.db.engine).get_table_names():
        raise CliError("the database has no schema yet: run `clawback db upgrade` first")
    with svc.db.session() as session:
        yield session


def emit(data: Any) -> None:
    click.echo(json.dumps(data, sort_keys=True, default=str))


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"'{value}' is not an ISO 8601 time (e.g. 2026-11-23T12:00:00+00:00)") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        # A clear sentence, not a traceback: the operator has a variable to set.
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


cli = FlaskGroup(
    name="clawback",
    create_app=_create_app,
    add_default_commands=False,
    load_dotenv=False,
    help="Clawback: loyalty coins that follow the order.",
)


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    url = services().settings.database_url
    migrate.upgrade(url, revision)
    click.echo(f"database is at {revision}: {services().db.engine.url.render_as_string(hide_password=True)}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn workers")
@click.option(
    "--job-workers",
    default=2,
    show_default=True,
    type=click.IntRange(0, 64),
    help="job worker threads started beside the web app (0: run `clawback worker` elsewhere)",
)
@click.option(
    "--migrate/--no-migrate",
    "migrate_first",
    default=True,
    show_default=True,
    help="apply migrations first (turn off when a release step does it, e.g. several replicas)",
)
def serve(host: str, port: int, workers: int, job_workers: int, migrate_first: bool) -> None:
    """Run the app under gunicorn, and the job worker beside it (migrating the database first)."""
    from web.server import run

    if migrate_first:
        migrate.upgrade(services().settings.database_url)
    worker = None
    if job_workers:
        # The same program, in its own process, so a slow job never holds a web worker.
        # At idle CPU priority: on this machine the web's answers come first (see set_priority).
        argv = [sys.executable, "-c", "from web.cli import cli; cli()", "worker", "--workers", str(job_workers),
                "--priority", "idle"]  # fmt: skip
        worker = subprocess.Popen(argv)  # noqa: S603 - our own interpreter and module
    try:
        run(host=host, port=port, workers=workers)
    finally:
        if worker is not None:
            _stop_worker(worker)


WORKER_STOP = ((signal.SIGINT, 8.0), (signal.SIGTERM, 3.0))  # then SIGKILL


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGINT, Huey's graceful stop (running jobs finish first); then SIGTERM, its immediate stop
    (a job cut short is retried: processing is idempotent); then SIGKILL. A worker still starting
    at idle priority on a busy machine can miss the first signal, and the whole stop stays within
    the 15 s a process manager usually grants (a job never commits half its work)."""
    for sig, timeout_s in WORKER_STOP:
        worker.send_signal(sig)
        try:
            worker.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
    worker.kill()
    worker.wait(timeout=5)


@cli.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="worker threads")
@click.option(
    "--periodic/--no-periodic",
    default=True,
    show_default=True,
    help="run the schedules (sweep, releases, write-backs, reconciliation); one replica is enough",
)
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    default="normal",
    show_default=True,
    help="CPU priority: idle beside web workers on the same machine (what `serve` starts), normal alone",
)
def worker(workers: int, periodic: bool, priority: str) -> None:
    """Run the job worker: webhook processing, write-backs, releases and sweeps, with retries."""
    jobs = services().jobs
    if isinstance(jobs.huey, MemoryHuey):
        raise CliError("CLAWBACK_QUEUE_URL=memory:// keeps jobs inside one process; a worker cannot share it")
    set_priority(priority)  # before the consumer starts its threads: they inherit it
    gc.freeze()  # its start-up objects, as the web workers do (web/server.py): no full collection walks them
    click.echo(f"Clawback worker: {workers} threads on {type(jobs.huey).__name__}", err=True)
    # Poll at least every half second when idle (SQLite storage polls; Redis and PostgreSQL block),
    # so a webhook's effect shows within a second or two.
    jobs.huey.create_consumer(workers=workers, worker_type="thread", periodic=periodic, max_delay=0.5).run()


@cli.command()
@refuses_bad_input
def demo() -> None:
    """Create (or reset) the demo shop, its customers and orders; print what to open."""
    from app.demo import DEMO_DOMAIN, seed

    migrate.upgrade(services().settings.database_url)
    with services().db.session() as session:
        summary = seed(session, services().vault)
    url = services().settings.app_url.rstrip("/")
    click.echo(f"Demo shop '{DEMO_DOMAIN}' is ready: {summary}.")
    click.echo(f"Open {url}/ once `clawback serve` runs, or try:")
    click.echo(f"  clawback ledger --shop {DEMO_DOMAIN} --customer alice")
    click.echo(f"  clawback balance --shop {DEMO_DOMAIN} --customer bob")


@cli.group()
def shop() -> None:
    """Register shops."""


@shop.command("add")
@click.option("--platform", required=True, type=click.Choice(["shopify", "woocommerce", "fynd"]))
@click.option("--domain", help="Shopify: name.myshopify.com")
@click.option("--url", help="WooCommerce: the store's base URL")
@click.option("--token", help="Shopify: an offline access token")
@click.option("--webhook-secret", help="WooCommerce: the secret webhooks are signed with")
@click.option("--key", help="WooCommerce: REST consumer key")
@click.option("--secret", help="WooCommerce: REST consumer secret")
@click.option("--company-id", help="Fynd: the company id")
@click.option("--application-id", help="Fynd: the sales channel (application) id")
@click.option("--api-secret", help="Fynd: the extension's API secret, which signs its webhooks")
@click.option("--currency", help="The shop's currency (ISO 4217; USD for a new shop)")
@click.option("--name", default="", help="A display name")
@refuses_bad_input
def shop_add(platform: str, domain: str | None, url: str | None, token: str | None, webhook_secret: str | None,
             key: str | None, secret: str | None, company_id: str | None, application_id: str | None,
             api_secret: str | None, currency: str | None, name: str) -> None:  # fmt: skip
    """Register a shop by hand, without calling it (operators, tests)."""
    credentials: dict[str, str] = {}
    new_settings = None
    fynd_given = company_id or application_id or api_secret
    if platform == "shopify":
        if not domain or url or webhook_secret or key or secret or fynd_given:
            raise CliError("--platform shopify takes --domain (and optionally --token), nothing else")
        where = normalize_shopify_domain(domain)
        if token:
            credentials["access_token"] = token
    elif platform == "fynd":
        others = domain or url or token or webhook_secret or key or secret
        if not (company_id and application_id and api_secret) or others:
            raise CliError("--platform fynd takes --company-id, --application-id and --api-secret, nothing else")
        try:
            where = fynd.shop_domain(company_id, application_id)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        credentials["api_secret"] = api_secret
        new_settings = fynd.default_settings()  # the seed's policy, for a shop registered now
    else:
        if not url or not webhook_secret or domain or token or fynd_given:
            raise CliError("--platform woocommerce takes --url and --webhook-secret (and optionally --key/--secret)")
        if bool(key) != bool(secret):
            raise CliError("--key and --secret go together")
        where = normalize_store_url(url)
        credentials["webhook_secret"] = webhook_secret
        if key and secret:
            credentials |= {"consumer_key": key, "consumer_secret": secret}
    with unit_of_work() as session:
        found, created = register_shop(session, services().vault, platform=platform, domain=where,
                                       credentials=credentials, currency=currency, name=name,
                                       settings=new_settings)  # fmt: skip
        emit({"shop": found.domain, "platform": found.platform, "created": created})


@shop.command("disconnect")
@click.option("--shop", "shop_ref", required=True, help="The WooCommerce store's URL")
@click.option("--keep-webhooks", is_flag=True, help="Do not call the store (its keys are already revoked)")
@refuses_bad_input
def shop_disconnect(shop_ref: str, keep_webhooks: bool) -> None:
    """Disconnect a WooCommerce store: delete Clawback's webhooks there and forget its keys."""
    from connectors.woocommerce import connect
    from connectors.woocommerce.client import StoreClient, WooCommerceError

    svc = services()
    with unit_of_work() as session:
        found = find_shop(session, shop_ref)
        if found.platform != "woocommerce":
            raise CliError("only WooCommerce stores are disconnected here (Shopify: uninstall the app in the admin)")
        try:
            client = (
                None
                if keep_webhooks
                else StoreClient.from_credentials(found.domain, read_credentials(svc.vault, found))
            )
            removed = connect.disconnect(session, svc.vault, found, client)
        except WooCommerceError as exc:
            raise CliError(f"the store did not let us delete the webhooks ({exc}); nothing was changed. "
                           "Retry, or pass --keep-webhooks if its keys are revoked") from None  # fmt: skip
        emit({"shop": found.domain, "webhooks_deleted": removed, "disconnected": True})


@cli.group()
def settings() -> None:
    """Show and change a shop's settings."""


@settings.command("show")
@click.option("--shop", "shop_ref", required=True)
@refuses_bad_input
def settings_show(shop_ref: str) -> None:
    """Print the shop's settings as JSON."""
    with unit_of_work() as session:
        emit(shop_settings(find_shop(session, shop_ref)).flat())


@settings.command("set")
@click.option("--shop", "shop_ref", required=True)
@click.argument("pairs", nargs=-1, required=True)
@refuses_bad_input
def settings_set(shop_ref: str, pairs: tuple[str, ...]) -> None:
    """Change settings: KEY=VALUE ... (all or nothing)."""
    changes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"'{pair}' is not KEY=VALUE")
        if key.strip() in changes:
            raise CliError(f"{key.strip()} is given more than once")
        changes[key.strip()] = value
    with unit_of_work() as session:
        emit(change_settings(session, find_shop(session, shop_ref), changes).flat())


def _customer(session: Session, shop_row: Shop, customer_ref: str) -> Customer:
    found = session.exec(
        select(Customer).where(Customer.shop_id == shop_row.id, Customer.platform_customer_id == customer_ref)
    ).first()
    if found is None:
        raise CliError(f"no customer '{customer_ref}' in shop {shop_row.domain}")
    return found


@cli.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref", required=True)
@refuses_bad_input
def balance(shop_ref: str, customer_ref: str) -> None:
    """A customer's balances as JSON: available, pending, shortfall."""
    with unit_of_work() as session:
        found = _customer(session, find_shop(session, shop_ref), customer_ref)
        emit({"available": found.available_coins, "pending": found.pending_coins, "shortfall": found.shortfall_coins})


@cli.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref")
@click.option("--order", "order_ref")
@refuses_bad_input
def ledger(shop_ref: str, customer_ref: str | None, order_ref: str | None) -> None:
    """Ledger entries as JSON lines, oldest first."""
    with unit_of_work() as session:
        shop_row = find_shop(session, shop_ref)
        query = select(LedgerEntry, Customer.platform_customer_id).join(Customer).where(
            LedgerEntry.shop_id == shop_row.id
        )  # fmt: skip
        if customer_ref is not None:
            query = query.where(LedgerEntry.customer_id == _customer(session, shop_row, customer_ref).id)
        if order_ref is not None:
            query = query.where(LedgerEntry.order_ref == order_ref)
        for entry, customer_id in session.exec(query.order_by(col(LedgerEntry.id))):
            emit({
                "kind": entry.kind, "coins_delta": entry.coins_delta, "pending_delta": entry.pending_delta,
                "shortfall_delta": entry.shortfall_delta, "order_id": entry.order_ref, "customer_id": customer_id,
                "reason": entry.reason, "explanation": entry.explanation, "source": entry.source,
                "created_at": as_utc(entry.created_at).isoformat(),
            })  # fmt: skip


@cli.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref", required=True)
@click.option("--coins", required=True, type=int)
@click.option("--order", "order_ref")
@click.option("--code")
@refuses_bad_input
def redeem(shop_ref: str, customer_ref: str, coins: int, order_ref: str | None, code: str | None) -> None:
    """Spend a customer's coins on an order, or as a code an order will carry."""
    with unit_of_work() as session:
        redemption, entry = wallet.redeem(session, find_shop(session, shop_ref), customer_ref, coins,
                                          source="cli:redeem", order_ref=order_ref, code=code)  # fmt: skip
        emit({"redemption": redemption.id, "coins": coins, "code": redemption.code, "order_id": order_ref,
              "explanation": entry.explanation})  # fmt: skip


@cli.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref", required=True)
@click.option("--coins", required=True, type=int, help="Positive adds, negative removes")
@click.option("--reason", required=True, help="Why, in words the customer may read")
@refuses_bad_input
def adjust(shop_ref: str, customer_ref: str, coins: int, reason: str) -> None:
    """A manual correction, with a required reason."""
    with unit_of_work() as session:
        entry = wallet.adjust(session, find_shop(session, shop_ref), customer_ref, coins, reason=reason,
                              source="cli:adjust", key=f"adjust:{uuid.uuid4()}")  # fmt: skip
        assert entry is not None
        emit({"coins_delta": entry.coins_delta, "explanation": entry.explanation})


@cli.command("release-due")
@click.option("--now", "now_text", help="ISO time to release as of (default: now)")
@refuses_bad_input
def release_due(now_text: str | None) -> None:
    """Release held coins whose hold has ended."""
    now = parse_time(now_text)
    with unit_of_work() as session:
        entries = service.release_due(session, now=now)
        emit({"released_awards": len(entries), "coins": sum(e.coins_delta for e in entries)})


@cli.command()
def check() -> None:
    """Verify ledger invariants; exit 1 and list violations."""
    with unit_of_work() as session:
        problems = audit.violations(session)
        shops = len(session.exec(select(Shop.id)).all())
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: the ledger balances ({shops} shops)")


@cli.command()
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


@cli.command()
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
    for status in svc.jobs.process_now(todo).values():
        status = "error" if status == "retry" else status  # the error is on the row
        results[status] = results.get(status, 0) + 1
    emit({"replayed": len(todo), "results": results})


@cli.group()
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


@cli.command("reconcile")
@click.option("--shop", "shop_ref", required=True)
@click.option("--since", "since_text", help="ISO time to pull changes from (default: the last sync)")
@refuses_bad_input
def reconcile_command(shop_ref: str, since_text: str | None) -> None:
    """Pull orders changed since the last sync through the webhook path; report what was corrected."""
    import dataclasses

    import connectors
    from app import reconcile
    from app.models import utcnow

    svc = services()
    with unit_of_work() as session:
        shop_row = find_shop(session, shop_ref)
    since = parse_time(since_text) or reconcile.since_for(shop_row, utcnow())
    try:
        source = connectors.get(shop_row.platform)().orders_since(svc.settings, svc.vault, svc.db, shop_row, since)
        assert shop_row.id is not None
        report = reconcile.reconcile(svc.db, svc.deliveries, shop_row.id, source, since=since)
    except LookupError as exc:
        raise CliError(f"{shop_row.platform} shops cannot be reconciled") from exc
    except RuntimeError as exc:  # the platform failed us (throttled, token revoked): say so, exit 1
        raise click.ClickException(f"reconciliation stopped: {exc}") from exc
    emit(dataclasses.asdict(report))


import web.cli_api  # noqa: E402, F401  (registers `clawback api-key`)
