"""The merchant's pages: Features (each feature's settings), Activity, Customers.

Every route is `@signed_in`: the shop comes from the token `t` only (never from the URL), every
query is filtered by that shop's id, and every link and form carries a fresh `t` (it is also the
forms' CSRF token). `host` and `shop` ride along on links for App Bridge; they choose nothing.

Saves go through `app.shops.change_settings` (so through `apply_changes`, the one validation):
all or nothing, POST-redirect-GET with `saved=1` on success, the page again with the message next
to its field (400) on refusal. The pages need no JavaScript and no external asset to render.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any
from uuid import uuid4

from flask import Blueprint, Response, g, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import Session, col, select
from werkzeug.datastructures import MultiDict

from app import wallet
from app.errors import InvalidInput, NotFound
from app.models import ENTRY_KINDS, Customer, LedgerEntry, Order, Shop, as_utc
from app.rules import EarnRule
from app.shop_settings import REDEEM_STATUSES, REVERT_STATUSES, ShopSettings
from app.shops import change_settings, shop_settings
from web.extensions import get_session, services
from web.session import current_shop, signed_in, token

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE = 50  # rows per page on Activity, Customers and a customer's history
CSV_CHUNK = 1000
ACTIVITY_KINDS = ("revert", "redeem_refund", "void", "adjust")  # coins going back, and corrections
KEPT_PARAMS = ("host", "shop")  # App Bridge reads them from the URL; they select nothing here
MAX_PARAM_CHARS = 255

STATUS_LABELS = {
    "refunded": "Refunded",
    "cancelled": "Cancelled",
    "partially_refunded": "Partially Refunded",
    "returned": "Returned",
}
KIND_LABELS = {
    "earn": "Earned",
    "pending": "Held",
    "release": "Released",
    "void": "Hold voided",
    "revert": "Reverted",
    "redeem": "Spent",
    "redeem_refund": "Returned",
    "adjust": "Adjustment",
    "expire": "Expired",
}


# --- links, tokens and rendering -----------------------------------------------------------------


def _token() -> str:
    """One fresh token per rendered page (minting is cheap, but a page has many links)."""
    if "admin_token" not in g:
        g.admin_token = token()
    return str(g.admin_token)


def kept_params() -> dict[str, str]:
    out = {}
    for name in KEPT_PARAMS:
        value = request.values.get(name, "")
        if value and len(value) <= MAX_PARAM_CHARS and value.isprintable():
            out[name] = value
    return out


def link(endpoint: str, **params: Any) -> str:
    """A URL inside the admin carrying `t` (and App Bridge's `host`/`shop`)."""
    query: dict[str, Any] = {k: v for k, v in params.items() if v is not None and v != ""}
    query.update(kept_params(), t=_token())
    return url_for(endpoint, **query)


def _render(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    shop = current_shop()
    page = render_template(
        f"admin/{template}",
        shop=shop,
        link=link,
        t=_token(),
        kept=kept_params(),
        api_key=services().settings.shopify_api_key,
        saved=request.args.get("saved") == "1",
        features=[f for f in FEATURES if not f.platforms or shop.platform in f.platforms],
        **context,
    )
    return page, status


def _redirect_saved(endpoint: str, **params: Any) -> ResponseReturnValue:
    return Response(status=302, headers={"Location": link(endpoint, saved=1, **params)})


def _message(exc: InvalidInput) -> str:
    """The domain's sentence without the dotted key it starts with (the field is beside it)."""
    text = str(exc)
    field = exc.field or ""
    if field and text.startswith(f"{field}: "):
        text = text.removeprefix(f"{field}: ")
    elif field and text.startswith(f"{field} "):
        text = text.removeprefix(f"{field} ")
    return text[:1].upper() + text[1:]


def _not_found(what: str) -> ResponseReturnValue:
    return _render("not_found.html", 404, what=what)


# --- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    endpoint: str
    title: str
    section: str
    blurb: str
    is_on: Callable[[ShopSettings], bool]
    summary: Callable[[ShopSettings, Shop], str]
    platforms: tuple[str, ...] = ()  # shown only for these platforms (all when empty)


def _statuses(values: list[str]) -> str:
    return ", ".join(STATUS_LABELS.get(v, v) for v in values) or "no status"


def _revert_summary(s: ShopSettings, _shop: Shop) -> str:
    tags = f"; tags {', '.join(s.revert.tags)}" if s.revert.tags else ""
    return f"Reverts on {_statuses(list(s.revert.statuses))}{tags}"


def _earn_summary(s: ShopSettings, shop: Shop) -> str:
    rule = EarnRule.from_settings(s.earn, shop.currency)
    return f"{rule.describe()}, once the order is {s.earn.trigger}"


FEATURES: tuple[Feature, ...] = (
    Feature("admin.revert_earned", "Revert Earned Coins", "Orders",
            "Take back coins earned on an order that is cancelled, refunded or returned.",
            lambda s: s.revert.enabled, _revert_summary),
    Feature("admin.revert_spent", "Revert Spent Coins", "Orders",
            "Give back coins a customer spent on an order that is cancelled, returned or refunded.",
            lambda s: bool(s.redeem.refund_statuses),
            lambda s, _shop: f"Returns coins on {_statuses(list(s.redeem.refund_statuses))}"),
    Feature("admin.earn", "Earn on Orders", "Orders", "Customers earn coins on the orders they place.",
            lambda s: True, _earn_summary),
    Feature("admin.delayed", "Delayed Rewards", "Orders",
            "Hold earned coins for the return window before customers can spend them.",
            lambda s: s.earn.delay_days > 0,
            lambda s, _shop: f"Held for {s.earn.delay_days} days" if s.earn.delay_days else "Coins are usable at once"),
    Feature("admin.woocommerce", "Order Statuses and Tags", "WooCommerce",
            "Say what your custom order statuses mean, and what counts as an order's tags.",
            lambda s: bool(s.woocommerce.status_map or s.woocommerce.tag_meta_keys or s.woocommerce.coupon_tags),
            lambda s, _shop: f"{len(s.woocommerce.status_map)} mapped statuses; tags from "
            + (", ".join([*s.woocommerce.tag_meta_keys, *(["coupons"] if s.woocommerce.coupon_tags else [])])
               or "custom statuses only"),
            platforms=("woocommerce",)),
)  # fmt: skip


def features_page() -> ResponseReturnValue:
    """The Features page for the current shop (also what GET /app opens on)."""
    settings = shop_settings(current_shop())
    sections: dict[str, list[tuple[Feature, bool, str]]] = {}
    for feature in FEATURES:
        if feature.platforms and current_shop().platform not in feature.platforms:
            continue
        sections.setdefault(feature.section, []).append(
            (feature, feature.is_on(settings), feature.summary(settings, current_shop()))
        )
    return _render("features.html", sections=sections, page="features")


@bp.get("/features")
@signed_in
def features() -> ResponseReturnValue:
    return features_page()


Values = dict[str, Any]


@dataclass(frozen=True)
class SettingsPage:
    """One feature's settings form: what it shows (from the settings, or the refused form echoed
    back) and the dotted-key changes it asks for."""

    endpoint: str
    template: str
    values: Callable[[ShopSettings, MultiDict[str, str] | None], Values]
    changes: Callable[[MultiDict[str, str], ShopSettings], dict[str, Any]]


def _render_settings(page: SettingsPage, form: MultiDict[str, str] | None = None,
                     error: InvalidInput | None = None) -> ResponseReturnValue:  # fmt: skip
    settings = shop_settings(current_shop())
    errors = {(error.field or ""): _message(error)} if error else {}
    return _render(page.template, 400 if error else 200, settings=settings, v=page.values(settings, form),
                   errors=errors, labels=STATUS_LABELS, revert_statuses=REVERT_STATUSES,
                   redeem_statuses=REDEEM_STATUSES, page="features")  # fmt: skip


def _save(page: SettingsPage, changes: dict[str, Any] | None = None, *, echo: bool = True) -> ResponseReturnValue:
    """Validate and save, all or nothing: PRG with `saved=1`, or the page again (400) with the
    message next to its field and the merchant's input kept."""
    shop = current_shop()
    session = get_session()
    try:
        if changes is None:
            changes = page.changes(request.form, shop_settings(shop))
        change_settings(session, shop, changes)
    except InvalidInput as exc:
        session.rollback()
        return _render_settings(page, request.form if echo else None, exc)
    session.commit()
    return _redirect_saved(page.endpoint)


def _split_tags(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _tag_values(current: list[str], form: MultiDict[str, str] | None) -> Values:
    if form is None:
        return {"tags": current, "remove_tags": [], "add_tags": ""}
    return {"tags": current, "remove_tags": form.getlist("remove_tags"), "add_tags": form.get("add_tags", "")}


def _tag_list(form: MultiDict[str, str], current: list[str]) -> list[str]:
    """Existing tags minus those ticked for removal, plus those typed (comma-separated)."""
    removed = set(form.getlist("remove_tags"))
    return [tag for tag in current if tag not in removed] + _split_tags(form.get("add_tags", ""))


def _checkbox(form: MultiDict[str, str], name: str) -> str:
    return "true" if form.get(name) else "false"


# Revert Earned Coins


def _revert_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    r = s.revert
    if form is None:
        return {"statuses": list(r.statuses), "partial": r.partial, "keep_on_return": r.keep_on_return,
                "shortfall": r.shortfall, "flag_tag": r.flag_tag, "exclude_flagged": r.exclude_flagged,
                **_tag_values(list(r.tags), None)}  # fmt: skip
    return {"statuses": form.getlist("statuses"), "partial": form.get("partial", ""),
            "keep_on_return": bool(form.get("keep_on_return")), "shortfall": form.get("shortfall", ""),
            "flag_tag": form.get("flag_tag", ""), "exclude_flagged": bool(form.get("exclude_flagged")),
            **_tag_values(list(r.tags), form)}  # fmt: skip


def _revert_changes(form: MultiDict[str, str], current: ShopSettings) -> dict[str, Any]:
    return {
        "revert.statuses": form.getlist("statuses"),
        "revert.tags": _tag_list(form, list(current.revert.tags)),
        "revert.partial": form.get("partial", ""),
        "revert.keep_on_return": _checkbox(form, "keep_on_return"),
        "revert.shortfall": form.get("shortfall", ""),
        "revert.flag_tag": form.get("flag_tag", ""),
        "revert.exclude_flagged": _checkbox(form, "exclude_flagged"),
    }


REVERT_EARNED = SettingsPage("admin.revert_earned", "revert_earned.html", _revert_values, _revert_changes)


@bp.get("/features/revert-earned")
@signed_in
def revert_earned() -> ResponseReturnValue:
    return _render_settings(REVERT_EARNED)


@bp.post("/features/revert-earned")
@signed_in
def revert_earned_save() -> ResponseReturnValue:
    return _save(REVERT_EARNED)


@bp.post("/features/revert-earned/status")
@signed_in
def revert_earned_status() -> ResponseReturnValue:
    """The status toggle: only `revert.enabled` changes; the other settings are kept."""
    return _save(REVERT_EARNED, {"revert.enabled": request.form.get("enabled", "")}, echo=False)


# Revert Spent Coins


def _spent_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    if form is None:
        return {"refund_statuses": list(s.redeem.refund_statuses), "coin_value": f"{s.redeem.coin_value.normalize():f}"}
    return {"refund_statuses": form.getlist("refund_statuses"), "coin_value": form.get("coin_value", "")}


def _spent_changes(form: MultiDict[str, str], _current: ShopSettings) -> dict[str, Any]:
    return {"redeem.refund_statuses": form.getlist("refund_statuses"), "redeem.coin_value": form.get("coin_value", "")}


REVERT_SPENT = SettingsPage("admin.revert_spent", "revert_spent.html", _spent_values, _spent_changes)


@bp.get("/features/revert-spent")
@signed_in
def revert_spent() -> ResponseReturnValue:
    return _render_settings(REVERT_SPENT)


@bp.post("/features/revert-spent")
@signed_in
def revert_spent_save() -> ResponseReturnValue:
    return _save(REVERT_SPENT)


# Earn on Orders

EARN_FIELDS = ("mode", "rate", "trigger", "min_order", "rounding")


def _earn_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    e = s.earn
    if form is None:
        return {"mode": e.mode, "rate": f"{e.rate.normalize():f}", "trigger": e.trigger,
                "min_order": f"{e.min_order.normalize():f}", "rounding": e.rounding,
                **_tag_values(list(e.exclude_tags), None)}  # fmt: skip
    return {**{name: form.get(name, "") for name in EARN_FIELDS}, **_tag_values(list(e.exclude_tags), form)}


def _earn_changes(form: MultiDict[str, str], current: ShopSettings) -> dict[str, Any]:
    return {
        **{f"earn.{name}": form.get(name, "") for name in EARN_FIELDS},
        "earn.exclude_tags": _tag_list(form, list(current.earn.exclude_tags)),
    }


EARN = SettingsPage("admin.earn", "earn.html", _earn_values, _earn_changes)


@bp.get("/features/earn")
@signed_in
def earn() -> ResponseReturnValue:
    return _render_settings(EARN)


@bp.post("/features/earn")
@signed_in
def earn_save() -> ResponseReturnValue:
    return _save(EARN)


# Delayed Rewards


def _delayed_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    return {"delay_days": str(s.earn.delay_days) if form is None else form.get("delay_days", "")}


DELAYED = SettingsPage("admin.delayed", "delayed.html", _delayed_values,
                       lambda form, _current: {"earn.delay_days": form.get("delay_days", "")})  # fmt: skip


@bp.get("/features/delayed")
@signed_in
def delayed() -> ResponseReturnValue:
    return _render_settings(DELAYED)


@bp.post("/features/delayed")
@signed_in
def delayed_save() -> ResponseReturnValue:
    return _save(DELAYED)


# WooCommerce: order statuses and tags


def _woo_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    w = s.woocommerce
    if form is None:
        return {"status_map": "\n".join(f"{slug} = {meaning}" for slug, meaning in w.status_map.items()),
                "tag_meta_keys": ", ".join(w.tag_meta_keys), "coupon_tags": w.coupon_tags}  # fmt: skip
    return {"status_map": form.get("status_map", ""), "tag_meta_keys": form.get("tag_meta_keys", ""),
            "coupon_tags": bool(form.get("coupon_tags"))}  # fmt: skip


def _woo_changes(form: MultiDict[str, str], _current: ShopSettings) -> dict[str, Any]:
    # One mapping per line ("slug = meaning"); the settings parser takes "slug=meaning,…".
    lines = [line.replace(" ", "") for line in form.get("status_map", "").splitlines() if line.strip()]
    return {"woocommerce.status_map": ",".join(lines), "woocommerce.tag_meta_keys": form.get("tag_meta_keys", ""),
            "woocommerce.coupon_tags": _checkbox(form, "coupon_tags")}  # fmt: skip


WOOCOMMERCE = SettingsPage("admin.woocommerce", "woocommerce.html", _woo_values, _woo_changes)


@bp.get("/features/woocommerce")
@signed_in
def woocommerce() -> ResponseReturnValue:
    if current_shop().platform != "woocommerce":
        return _not_found("WooCommerce settings")
    return _render_settings(WOOCOMMERCE)


@bp.post("/features/woocommerce")
@signed_in
def woocommerce_save() -> ResponseReturnValue:
    if current_shop().platform != "woocommerce":
        return _not_found("WooCommerce settings")
    return _save(WOOCOMMERCE)


# --- activity ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    kinds: tuple[str, ...]
    start: date | None
    end: date | None
    before: int | None

    def query(self) -> dict[str, Any]:
        """As URL parameters (without `before`), for links and the CSV export."""
        out: dict[str, Any] = {}
        if self.kinds != ACTIVITY_KINDS:
            out["kind"] = list(self.kinds)
        if self.start:
            out["from"] = self.start.isoformat()
        if self.end:
            out["to"] = self.end.isoformat()
        return out


def _day(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{raw[:20]}' is not a date (YYYY-MM-DD)", field=name) from None


def _before(args: Mapping[str, Any]) -> int | None:
    raw = str(args.get("before", "")).strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("'before' must be an entry number", field="before")
    return int(raw)


def _filters() -> Filters:
    kinds = tuple(dict.fromkeys(request.args.getlist("kind"))) or ACTIVITY_KINDS
    unknown = [k for k in kinds if k not in ENTRY_KINDS]
    if unknown:
        raise InvalidInput(f"unknown kind '{unknown[0][:20]}'", field="kind")
    start, end = _day("from"), _day("to")
    if start and end and end < start:
        raise InvalidInput("'to' is before 'from'", field="to")
    return Filters(tuple(k for k in ENTRY_KINDS if k in kinds), start, end, _before(request.args))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _kind_stream(session: Session, shop_id: int, kind: str, filters: Filters, chunk: int) -> Iterator[LedgerEntry]:
    """One kind's entries, newest first, fetched `chunk` at a time by keyset on id."""
    before = filters.before
    while True:
        query = select(LedgerEntry).where(LedgerEntry.shop_id == shop_id, LedgerEntry.kind == kind)
        if before is not None:
            query = query.where(col(LedgerEntry.id) < before)
        if filters.start is not None:
            query = query.where(col(LedgerEntry.created_at) >= _midnight(filters.start))
        if filters.end is not None:
            query = query.where(col(LedgerEntry.created_at) < _midnight(filters.end) + timedelta(days=1))
        rows = list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(chunk)))
        yield from rows
        if len(rows) < chunk:
            return
        before = rows[-1].id


def activity_stream(session: Session, shop_id: int, filters: Filters, chunk: int) -> Iterator[LedgerEntry]:
    """Newest first, keyset on id: one index range scan per kind on (shop_id, kind, id), merged.

    Each kind's scan walks ix_ledger_shop_kind_id backwards from `before` and reads only what is
    taken, so a page costs the same on the millionth entry as on the first (no OFFSET, no sort of
    the shop's whole history). Dates narrow the scan; the days are whole UTC days, `to` included.
    """
    streams = [_kind_stream(session, shop_id, kind, filters, chunk) for kind in filters.kinds]
    return heapq.merge(*streams, key=lambda e: -(e.id or 0))


def activity_entries(session: Session, shop_id: int, filters: Filters, limit: int) -> list[LedgerEntry]:
    return list(islice(activity_stream(session, shop_id, filters, limit), limit))


def _names(session: Session, shop_id: int, entries: list[LedgerEntry]) -> tuple[dict[int, str], dict[str, str]]:
    """Customers' platform ids and orders' names for one page of entries, both within the shop."""
    customer_ids = {e.customer_id for e in entries}
    order_refs = {e.order_ref for e in entries if e.order_ref}
    customers: dict[int, str] = {}
    orders: dict[str, str] = {}
    if customer_ids:
        rows = session.exec(
            select(Customer.id, Customer.platform_customer_id).where(
                Customer.shop_id == shop_id, col(Customer.id).in_(customer_ids)
            )
        )
        customers = {int(pk): ref for pk, ref in rows if pk is not None}
    if order_refs:
        rows2 = session.exec(
            select(Order.platform_order_id, Order.name).where(
                Order.shop_id == shop_id, col(Order.platform_order_id).in_(order_refs)
            )
        )
        orders = {ref: name for ref, name in rows2}
    return customers, orders


@bp.get("/activity")
@signed_in
def activity() -> ResponseReturnValue:
    shop = current_shop()
    assert shop.id is not None
    try:
        filters = _filters()
    except InvalidInput as exc:
        empty = Filters(ACTIVITY_KINDS, None, None, None)
        return _render("activity.html", 400, entries=[], customers={}, orders={}, filters=empty, older=None,
                       error=_message(exc), kinds=ENTRY_KINDS, kind_labels=KIND_LABELS, page="activity")  # fmt: skip
    session = get_session()
    rows = activity_entries(session, shop.id, filters, PAGE + 1)
    entries, more = rows[:PAGE], len(rows) > PAGE
    customers, orders = _names(session, shop.id, entries)
    older = entries[-1].id if more and entries else None
    return _render("activity.html", entries=entries, customers=customers, orders=orders, filters=filters,
                   older=older, error=None, kinds=ENTRY_KINDS, kind_labels=KIND_LABELS, page="activity")  # fmt: skip


CSV_HEADER = ("entry", "created_at", "kind", "order", "order_id", "customer", "coins", "held", "shortfall", "reason",
              "explanation")  # fmt: skip


def _cell(value: str) -> str:
    """Text a spreadsheet would run as a formula is quoted (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/activity.csv")
@signed_in
def activity_csv() -> ResponseReturnValue:
    shop = current_shop()
    shop_id = shop.id
    assert shop_id is not None
    try:
        filters = _filters()
    except InvalidInput as exc:
        return Response(_message(exc) + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"})
    engine = services().db.engine

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate(0)
            return text

        writer.writerow(CSV_HEADER)
        yield flush()
        with Session(engine) as session:
            stream = activity_stream(session, shop_id, filters, CSV_CHUNK)
            while chunk := list(islice(stream, CSV_CHUNK)):
                customers, orders = _names(session, shop_id, chunk)
                for e in chunk:
                    ref = e.order_ref or ""
                    writer.writerow((e.id, as_utc(e.created_at).isoformat(), e.kind, _cell(orders.get(ref, ref)),
                                     _cell(ref), _cell(customers.get(e.customer_id, "")), e.coins_delta,
                                     e.pending_delta, e.shortfall_delta, _cell(e.reason),
                                     _cell(e.explanation)))  # fmt: skip
                session.expunge_all()  # a long export holds one chunk at a time
                yield flush()

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(stream_with_context(rows()), 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="clawback-activity-{stamp}.csv"',
    })  # fmt: skip


# --- customers -----------------------------------------------------------------------------------


@bp.get("/customers")
@signed_in
def customers() -> ResponseReturnValue:
    shop = current_shop()
    session = get_session()
    try:
        before = _before(request.args)
    except InvalidInput as exc:
        return _render("customers.html", 400, rows=[], older=None, q="", error=_message(exc), page="customers")
    q = request.args.get("q", "").strip()[:320]
    query = select(Customer).where(Customer.shop_id == shop.id)
    if q:
        query = query.where((Customer.platform_customer_id == q) | (Customer.email == q))
    if before is not None:
        query = query.where(col(Customer.id) < before)
    rows = list(session.exec(query.order_by(col(Customer.id).desc()).limit(PAGE + 1)))
    older = rows[PAGE - 1].id if len(rows) > PAGE else None
    return _render("customers.html", rows=rows[:PAGE], older=older, q=q, error=None, page="customers")


def _find_customer(session: Session, shop: Shop, platform_customer_id: str) -> Customer | None:
    return session.exec(
        select(Customer).where(Customer.shop_id == shop.id, Customer.platform_customer_id == platform_customer_id)
    ).first()


def _customer_page(person: Customer, *, status: int = 200, form: Mapping[str, Any] | None = None,
                   error: InvalidInput | None = None) -> ResponseReturnValue:  # fmt: skip
    shop = current_shop()
    session = get_session()
    try:
        before = _before(request.args)
    except InvalidInput:
        before = None
    query = select(LedgerEntry).where(LedgerEntry.shop_id == shop.id, LedgerEntry.customer_id == person.id)
    if before is not None:
        query = query.where(col(LedgerEntry.id) < before)
    rows = list(session.exec(query.order_by(col(LedgerEntry.id).desc()).limit(PAGE + 1)))
    entries = rows[:PAGE]
    older = entries[-1].id if len(rows) > PAGE else None
    assert shop.id is not None
    _, orders = _names(session, shop.id, entries)
    errors = {(error.field or ""): _message(error)} if error else {}
    return _render("customer.html", status, customer=person, entries=entries, orders=orders, older=older,
                   form=form, errors=errors, kind_labels=KIND_LABELS, page="customers")  # fmt: skip


@bp.get("/customers/<customer_id>")
@signed_in
def customer(customer_id: str) -> ResponseReturnValue:
    person = _find_customer(get_session(), current_shop(), customer_id)
    if person is None:
        return _not_found(f"customer {customer_id}")
    return _customer_page(person)


@bp.post("/customers/<customer_id>/adjust")
@signed_in
def adjust(customer_id: str) -> ResponseReturnValue:
    """A manual adjustment, with a required reason, through `app.wallet.adjust`."""
    shop = current_shop()
    session = get_session()
    person = _find_customer(session, shop, customer_id)
    if person is None:
        return _not_found(f"customer {customer_id}")
    raw = request.form.get("coins", "").strip().replace("+", "", 1)
    try:
        try:
            coins = int(raw)
        except ValueError:
            raise InvalidInput(f"'{raw[:20]}' is not a whole number of coins", field="coins") from None
        wallet.adjust(session, shop, customer_id, coins, reason=request.form.get("reason", ""),
                      source=f"admin:{g.signed.via}", key=f"adjust:{uuid4()}")  # fmt: skip
    except InvalidInput as exc:
        session.rollback()
        return _customer_page(person, status=400, form=request.form, error=exc)
    except NotFound:
        session.rollback()
        return _not_found(f"customer {customer_id}")
    session.commit()
    return _redirect_saved("admin.customer", customer_id=customer_id)
