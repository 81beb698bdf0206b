"""Customers' coins: `balance`, `ledger`, `redeem`, `adjust`, `release-due`, and `check` (the
ledger's invariants)."""

from __future__ import annotations

import sys
import uuid

import click
from flask.cli import AppGroup
from sqlmodel import Session, select

from app import audit, service, wallet
from app.history import balances, customer_refs, find_customer, ledger_page
from app.models import Customer, Shop, as_utc
from app.shops import find_shop
from web.cli.common import CliError, emit, parse_time, refuses_bad_input, unit_of_work

commands = AppGroup()  # web/cli/__init__.py adds these to `clawback`


def _customer(session: Session, shop_row: Shop, customer_ref: str) -> Customer:
    found = find_customer(session, shop_row, customer_ref)
    if found is None:
        raise CliError(f"no customer '{customer_ref}' in shop {shop_row.domain}")
    return found


@commands.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref", required=True)
@refuses_bad_input
def balance(shop_ref: str, customer_ref: str) -> None:
    """A customer's balances as JSON: available, pending, shortfall."""
    with unit_of_work() as session:
        emit(balances(_customer(session, find_shop(session, shop_ref), customer_ref)))


@commands.command()
@click.option("--shop", "shop_ref", required=True)
@click.option("--customer", "customer_ref")
@click.option("--order", "order_ref")
@refuses_bad_input
def ledger(shop_ref: str, customer_ref: str | None, order_ref: str | None) -> None:
    """Ledger entries as JSON lines, oldest first."""
    with unit_of_work() as session:
        shop_row = find_shop(session, shop_ref)
        assert shop_row.id is not None
        customer_id = _customer(session, shop_row, customer_ref).id if customer_ref is not None else None
        entries = ledger_page(session, shop_row.id, customer_id=customer_id, order_ref=order_ref,
                              oldest_first=True).entries  # fmt: skip
        refs = customer_refs(session, shop_row.id, entries)
        for entry in entries:
            emit({
                "kind": entry.kind, "coins_delta": entry.coins_delta, "pending_delta": entry.pending_delta,
                "shortfall_delta": entry.shortfall_delta, "order_id": entry.order_ref,
                "customer_id": refs[entry.customer_id], "reason": entry.reason, "explanation": entry.explanation,
                "source": entry.source, "created_at": as_utc(entry.created_at).isoformat(),
            })  # fmt: skip


@commands.command()
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


@commands.command()
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


@commands.command("release-due")
@click.option("--now", "now_text", help="ISO time to release as of (default: now)")
@refuses_bad_input
def release_due(now_text: str | None) -> None:
    """Release held coins whose hold has ended."""
    now = parse_time(now_text)
    with unit_of_work() as session:
        entries = service.release_due(session, now=now)
        emit({"released_awards": len(entries), "coins": sum(e.coins_delta for e in entries)})


@commands.command()
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
