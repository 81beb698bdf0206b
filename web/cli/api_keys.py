"""`clawback api-key create|list|revoke`: the per-shop keys of the JSON API (web/api.py).

A key is printed once, by `create`; only its SHA-256 is stored, so a lost key is revoked and
replaced, never recovered.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app import api_keys
from app.models import API_KEY_SCOPES, ApiKey, as_utc
from app.shops import find_shop
from web.cli.common import emit, refuses_bad_input, unit_of_work

commands = AppGroup()  # web/cli/__init__.py adds these to `clawback`


def _described(row: ApiKey, domain: str) -> dict[str, object]:
    return {
        "id": row.id,
        "shop": domain,
        "name": row.name,
        "scope": row.scope,
        "prefix": row.prefix,
        "created_at": as_utc(row.created_at).isoformat(),
        "revoked_at": as_utc(row.revoked_at).isoformat() if row.revoked_at else None,
    }


@commands.group("api-key")
def api_key() -> None:
    """Keys for the JSON API (/api/v1), one shop each."""


@api_key.command("create")
@click.option("--shop", "shop_ref", required=True)
@click.option("--name", default="", help="What the key is for (shown by `list`)")
@click.option("--scope", type=click.Choice(API_KEY_SCOPES), default="read", show_default=True,
              help="read: shop, balances, history; redeem: also spend customers' coins")  # fmt: skip
@refuses_bad_input
def api_key_create(shop_ref: str, name: str, scope: str) -> None:
    """Make a key and print it, once: it is not stored and cannot be shown again."""
    with unit_of_work() as session:
        shop = find_shop(session, shop_ref)
        made = api_keys.create(session, shop, name=name, scope=scope)
        emit({**_described(made.row, shop.domain), "key": made.key})


@api_key.command("list")
@click.option("--shop", "shop_ref", required=True)
@refuses_bad_input
def api_key_list(shop_ref: str) -> None:
    """The shop's keys as JSON lines, oldest first (prefixes only: keys are never stored)."""
    with unit_of_work() as session:
        shop = find_shop(session, shop_ref)
        for row in api_keys.listing(session, shop):
            emit(_described(row, shop.domain))


@api_key.command("revoke")
@click.option("--shop", "shop_ref", required=True)
@click.option("--id", "key_id", required=True, type=click.IntRange(1, 2**31 - 1), help="The id `list` shows")
@refuses_bad_input
def api_key_revoke(shop_ref: str, key_id: int) -> None:
    """Revoke a key: every request with it is refused from now on."""
    with unit_of_work() as session:
        shop = find_shop(session, shop_ref)
        emit(_described(api_keys.revoke(session, shop, key_id), shop.domain))
