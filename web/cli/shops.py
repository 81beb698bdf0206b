"""The shops: `demo`, `shop add|disconnect`, `settings show|set`, and `reconcile` (pull a shop's
changed orders from its platform)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app import migrate
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
from web.cli.common import CliError, emit, parse_time, refuses_bad_input, unit_of_work
from web.extensions import services

commands = AppGroup()  # web/cli/__init__.py adds these to `clawback`


@commands.command()
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


@commands.group()
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


@commands.group()
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


@commands.command("reconcile")
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
