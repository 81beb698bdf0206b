"""The Customers page, one customer's balances and explained history, and the manual adjustment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import uuid4

from flask import g, request
from flask.typing import ResponseReturnValue
from sqlmodel import col, select

from app import wallet
from app.domain.text import whole_number
from app.errors import InvalidInput, NotFound
from app.history import find_customer, ledger_page, order_names
from app.models import Customer
from web.admin._common import KIND_LABELS, PAGE, bp, errors, message, not_found, parse_before, redirect_saved, render
from web.extensions import get_session
from web.session import current_shop, signed_in


@bp.get("/customers")
@signed_in
def customers() -> ResponseReturnValue:
    shop = current_shop()
    session = get_session()
    try:
        before = parse_before(request.args)
    except InvalidInput as exc:
        return render("customers.html", 400, rows=[], older=None, q="", error=message(exc), page="customers")
    q = request.args.get("q", "").strip()[:320]
    query = select(Customer).where(Customer.shop_id == shop.id)
    if q:
        query = query.where((Customer.platform_customer_id == q) | (Customer.email == q))
    if before is not None:
        query = query.where(col(Customer.id) < before)
    rows = list(session.exec(query.order_by(col(Customer.id).desc()).limit(PAGE + 1)))
    older = rows[PAGE - 1].id if len(rows) > PAGE else None
    return render("customers.html", rows=rows[:PAGE], older=older, q=q, error=None, page="customers")


def _customer_page(person: Customer, *, status: int = 200, form: Mapping[str, Any] | None = None,
                   error: InvalidInput | None = None) -> ResponseReturnValue:  # fmt: skip
    shop = current_shop()
    session = get_session()
    try:
        before = parse_before(request.args)
    except InvalidInput:
        before = None
    assert shop.id is not None
    listed = ledger_page(session, shop.id, customer_id=person.id, limit=PAGE, before=before)
    orders = order_names(session, shop.id, listed.entries)
    return render("customer.html", status, customer=person, entries=listed.entries, orders=orders,
                  older=listed.next_before, form=form, errors=errors(error), kind_labels=KIND_LABELS,
                  page="customers")  # fmt: skip


@bp.get("/customers/<customer_id>")
@signed_in
def customer(customer_id: str) -> ResponseReturnValue:
    person = find_customer(get_session(), current_shop(), customer_id)
    if person is None:
        return not_found(f"customer {customer_id}")
    return _customer_page(person)


@bp.post("/customers/<customer_id>/adjust")
@signed_in
def adjust(customer_id: str) -> ResponseReturnValue:
    """A manual adjustment, with a required reason, through `app.wallet.adjust`."""
    shop = current_shop()
    session = get_session()
    person = find_customer(session, shop, customer_id)
    if person is None:
        return not_found(f"customer {customer_id}")
    raw = request.form.get("coins", "").strip().replace("+", "", 1)
    try:
        magnitude = whole_number(raw.removeprefix("-"), 12)
        if magnitude is None:
            raise InvalidInput(f"'{raw[:20]}' is not a whole number of coins", field="coins")
        coins = -magnitude if raw.startswith("-") else magnitude
        wallet.adjust(session, shop, customer_id, coins, reason=request.form.get("reason", ""),
                      source=f"admin:{g.signed.via}", key=f"adjust:{uuid4()}")  # fmt: skip
    except InvalidInput as exc:
        session.rollback()
        return _customer_page(person, status=400, form=request.form, error=exc)
    except NotFound:
        session.rollback()
        return not_found(f"customer {customer_id}")
    session.commit()
    return redirect_saved("admin.customer", customer_id=customer_id)
