"""A read-only look at the books, for the demo and development (not registered in production)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from sqlmodel import col, select

from app.history import find_customer, ledger_page
from app.models import Customer, Shop
from app.shops import shop_settings
from web import devlogin
from web.extensions import get_session

bp = Blueprint("overview", __name__)
PAGE_ENTRIES = 100


@bp.get("/")
def index() -> ResponseReturnValue:
    shops = get_session().exec(select(Shop).order_by(col(Shop.id))).all()
    return render_template("overview/index.html", shops=shops, dev_login=devlogin.enabled())


@bp.get("/shops/<int(max=2147483647):shop_id>")  # an INTEGER id: anything larger is a 404
def shop(shop_id: int) -> ResponseReturnValue:
    session = get_session()
    found = session.get(Shop, shop_id) or abort(404)
    customers = session.exec(
        select(Customer).where(Customer.shop_id == shop_id).order_by(col(Customer.id)).limit(200)
    ).all()
    names = {c.id: c.platform_customer_id for c in customers}
    entries = ledger_page(session, shop_id, limit=PAGE_ENTRIES).entries
    return render_template(
        "overview/shop.html",
        shop=found,
        settings=shop_settings(found).flat(),
        customers=customers,
        entries=entries,
        names=names,
    )


@bp.get("/shops/<int(max=2147483647):shop_id>/customers/<customer_id>")
def customer(shop_id: int, customer_id: str) -> ResponseReturnValue:
    session = get_session()
    found = session.get(Shop, shop_id) or abort(404)
    person = find_customer(session, found, customer_id) or abort(404)
    entries = ledger_page(session, shop_id, customer_id=person.id).entries
    return render_template("overview/customer.html", shop=found, customer=person, entries=entries)
