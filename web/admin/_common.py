"""The admin blueprint and what all its pages share: links that carry the token, rendering with the
navigation, PRG after a save, the domain's messages, the `before` paging cursor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.text import whole_number
from app.errors import InvalidInput
from web.admin.catalog import shown_to
from web.extensions import services
from web.session import current_shop, token

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE = 50  # rows per page on Activity, Customers and a customer's history
KEPT_PARAMS = ("host", "shop")  # App Bridge reads them from the URL; they select nothing here
MAX_PARAM_CHARS = 255

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


def render(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    shop = current_shop()
    page = render_template(
        f"admin/{template}",
        shop=shop,
        link=link,
        t=_token(),
        kept=kept_params(),
        api_key=services().settings.shopify_api_key,
        saved=request.args.get("saved") == "1",
        features=shown_to(shop),
        **context,
    )
    return page, status


def redirect_saved(endpoint: str, **params: Any) -> ResponseReturnValue:
    return Response(status=302, headers={"Location": link(endpoint, saved=1, **params)})


def message(exc: InvalidInput) -> str:
    """The domain's sentence without the dotted key it starts with (the field is beside it)."""
    text = str(exc)
    field = exc.field or ""
    if field and text.startswith(f"{field}: "):
        text = text.removeprefix(f"{field}: ")
    elif field and text.startswith(f"{field} "):
        text = text.removeprefix(f"{field} ")
    return text[:1].upper() + text[1:]


def errors(error: InvalidInput | None) -> dict[str, str]:
    """A refusal's message by the field it is shown beside (none when nothing was refused)."""
    return {(error.field or ""): message(error)} if error else {}


def not_found(what: str) -> ResponseReturnValue:
    return render("not_found.html", 404, what=what)


def parse_before(args: Mapping[str, Any]) -> int | None:
    """The paging cursor: pages show entries (or customers) with an id below it."""
    raw = str(args.get("before", "")).strip()
    if not raw:
        return None
    before = whole_number(raw, 18)
    if before is None:
        raise InvalidInput("'before' must be an entry number", field="before")
    return before
