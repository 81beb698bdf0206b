"""GET /dev/login: open the demo shop's pages without a store admin, for development only.

It exists only when CLAWBACK_DEV_LOGIN is set and the environment is not production (the settings
refuse to start production with it set, the blueprint is not registered there, and the route
checks again), and it only ever signs in to the demo shop.
"""

from __future__ import annotations

from flask import Blueprint, Response, url_for
from flask.typing import ResponseReturnValue
from sqlmodel import select

from app.demo import DEMO_DOMAIN, SOURCE
from app.models import Shop
from web.extensions import get_session, services
from web.session import mint

bp = Blueprint("devlogin", __name__)


def enabled() -> bool:
    settings = services().settings
    return bool(settings.dev_login) and settings.env != "production"


@bp.get("/dev/login")
def dev_login() -> ResponseReturnValue:
    text = {"Content-Type": "text/plain; charset=utf-8"}
    if not enabled():
        return Response("Not found.", 404, text)
    shop = get_session().exec(select(Shop).where(Shop.platform == SOURCE, Shop.domain == DEMO_DOMAIN)).first()
    if shop is None or shop.id is None or shop.uninstalled_at is not None:
        return Response("There is no demo shop yet: run `clawback demo` first.", 404, text)
    location = url_for("admin.features", t=mint(shop.id, "dev"))
    return Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
