"""A feature's settings form: shown from the saved settings (or the refused form, echoed back), and
saved all or nothing through `app.shops.change_settings`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from app.domain.shop_settings import REDEEM_STATUSES, REVERT_STATUSES, ShopSettings
from app.errors import InvalidInput
from app.shops import change_settings, shop_settings
from web.admin._common import errors, redirect_saved, render
from web.admin.catalog import STATUS_LABELS
from web.extensions import get_session
from web.session import current_shop

Values = dict[str, Any]


@dataclass(frozen=True)
class SettingsPage:
    """One feature's settings form: what it shows (from the settings, or the refused form echoed
    back) and the dotted-key changes it asks for."""

    endpoint: str
    template: str
    values: Callable[[ShopSettings, MultiDict[str, str] | None], Values]
    changes: Callable[[MultiDict[str, str], ShopSettings], dict[str, Any]]


def render_settings(page: SettingsPage, form: MultiDict[str, str] | None = None,
                    error: InvalidInput | None = None) -> ResponseReturnValue:  # fmt: skip
    settings = shop_settings(current_shop())
    return render(page.template, 400 if error else 200, settings=settings, v=page.values(settings, form),
                  errors=errors(error), labels=STATUS_LABELS, revert_statuses=REVERT_STATUSES,
                  redeem_statuses=REDEEM_STATUSES, page="features")  # fmt: skip


def save(page: SettingsPage, changes: dict[str, Any] | None = None, *, echo: bool = True) -> ResponseReturnValue:
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
        return render_settings(page, request.form if echo else None, exc)
    session.commit()
    return redirect_saved(page.endpoint)


def _split_tags(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def tag_values(current: list[str], form: MultiDict[str, str] | None) -> Values:
    if form is None:
        return {"tags": current, "remove_tags": [], "add_tags": ""}
    return {"tags": current, "remove_tags": form.getlist("remove_tags"), "add_tags": form.get("add_tags", "")}


def tag_list(form: MultiDict[str, str], current: list[str]) -> list[str]:
    """Existing tags minus those ticked for removal, plus those typed (comma-separated)."""
    removed = set(form.getlist("remove_tags"))
    return [tag for tag in current if tag not in removed] + _split_tags(form.get("add_tags", ""))


def checkbox(form: MultiDict[str, str], name: str) -> str:
    return "true" if form.get(name) else "false"
