"""The Features page, and the settings pages of the features every platform has: Revert Earned
Coins, Revert Spent Coins, Earn on Orders, Delayed Rewards."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from app.domain.shop_settings import ShopSettings
from app.shops import shop_settings
from web.admin._common import bp, render
from web.admin.catalog import Feature, shown_to
from web.admin.forms import SettingsPage, Values, checkbox, render_settings, save, tag_list, tag_values
from web.session import current_shop, signed_in


def features_page() -> ResponseReturnValue:
    """The Features page for the current shop (also what GET /app opens on)."""
    settings = shop_settings(current_shop())
    sections: dict[str, list[tuple[Feature, bool, str]]] = {}
    for feature in shown_to(current_shop()):
        sections.setdefault(feature.section, []).append(
            (feature, feature.is_on(settings), feature.summary(settings, current_shop()))
        )
    return render("features.html", sections=sections, page="features")


@bp.get("/features")
@signed_in
def features() -> ResponseReturnValue:
    return features_page()


# Revert Earned Coins


def _revert_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    r = s.revert
    if form is None:
        return {"statuses": list(r.statuses), "partial": r.partial, "keep_on_return": r.keep_on_return,
                "shortfall": r.shortfall, "flag_tag": r.flag_tag, "exclude_flagged": r.exclude_flagged,
                **tag_values(list(r.tags), None)}  # fmt: skip
    return {"statuses": form.getlist("statuses"), "partial": form.get("partial", ""),
            "keep_on_return": bool(form.get("keep_on_return")), "shortfall": form.get("shortfall", ""),
            "flag_tag": form.get("flag_tag", ""), "exclude_flagged": bool(form.get("exclude_flagged")),
            **tag_values(list(r.tags), form)}  # fmt: skip


def _revert_changes(form: MultiDict[str, str], current: ShopSettings) -> dict[str, Any]:
    return {
        "revert.statuses": form.getlist("statuses"),
        "revert.tags": tag_list(form, list(current.revert.tags)),
        "revert.partial": form.get("partial", ""),
        "revert.keep_on_return": checkbox(form, "keep_on_return"),
        "revert.shortfall": form.get("shortfall", ""),
        "revert.flag_tag": form.get("flag_tag", ""),
        "revert.exclude_flagged": checkbox(form, "exclude_flagged"),
    }


REVERT_EARNED = SettingsPage("admin.revert_earned", "revert_earned.html", _revert_values, _revert_changes)


@bp.get("/features/revert-earned")
@signed_in
def revert_earned() -> ResponseReturnValue:
    return render_settings(REVERT_EARNED)


@bp.post("/features/revert-earned")
@signed_in
def revert_earned_save() -> ResponseReturnValue:
    return save(REVERT_EARNED)


@bp.post("/features/revert-earned/status")
@signed_in
def revert_earned_status() -> ResponseReturnValue:
    """The status toggle: only `revert.enabled` changes; the other settings are kept."""
    return save(REVERT_EARNED, {"revert.enabled": request.form.get("enabled", "")}, echo=False)


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
    return render_settings(REVERT_SPENT)


@bp.post("/features/revert-spent")
@signed_in
def revert_spent_save() -> ResponseReturnValue:
    return save(REVERT_SPENT)


# Earn on Orders

EARN_FIELDS = ("mode", "rate", "trigger", "min_order", "rounding")


def _earn_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    e = s.earn
    if form is None:
        return {"mode": e.mode, "rate": f"{e.rate.normalize():f}", "trigger": e.trigger,
                "min_order": f"{e.min_order.normalize():f}", "rounding": e.rounding,
                **tag_values(list(e.exclude_tags), None)}  # fmt: skip
    return {**{name: form.get(name, "") for name in EARN_FIELDS}, **tag_values(list(e.exclude_tags), form)}


def _earn_changes(form: MultiDict[str, str], current: ShopSettings) -> dict[str, Any]:
    return {
        **{f"earn.{name}": form.get(name, "") for name in EARN_FIELDS},
        "earn.exclude_tags": tag_list(form, list(current.earn.exclude_tags)),
    }


EARN = SettingsPage("admin.earn", "earn.html", _earn_values, _earn_changes)


@bp.get("/features/earn")
@signed_in
def earn() -> ResponseReturnValue:
    return render_settings(EARN)


@bp.post("/features/earn")
@signed_in
def earn_save() -> ResponseReturnValue:
    return save(EARN)


# Delayed Rewards


def _delayed_values(s: ShopSettings, form: MultiDict[str, str] | None) -> Values:
    return {"delay_days": str(s.earn.delay_days) if form is None else form.get("delay_days", "")}


DELAYED = SettingsPage("admin.delayed", "delayed.html", _delayed_values,
                       lambda form, _current: {"earn.delay_days": form.get("delay_days", "")})  # fmt: skip


@bp.get("/features/delayed")
@signed_in
def delayed() -> ResponseReturnValue:
    return render_settings(DELAYED)


@bp.post("/features/delayed")
@signed_in
def delayed_save() -> ResponseReturnValue:
    return save(DELAYED)
