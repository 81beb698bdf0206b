"""WooCommerce's settings page: what the store's custom order statuses mean, and what counts as an
order's tags. Other platforms' shops get a 404 here, as for a page that does not exist."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from app.domain.shop_settings import ShopSettings
from web.admin._common import bp, not_found
from web.admin.forms import SettingsPage, Values, checkbox, render_settings, save
from web.session import current_shop, signed_in


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
            "woocommerce.coupon_tags": checkbox(form, "coupon_tags")}  # fmt: skip


WOOCOMMERCE = SettingsPage("admin.woocommerce", "woocommerce.html", _woo_values, _woo_changes)


@bp.get("/features/woocommerce")
@signed_in
def woocommerce() -> ResponseReturnValue:
    if current_shop().platform != "woocommerce":
        return not_found("WooCommerce settings")
    return render_settings(WOOCOMMERCE)


@bp.post("/features/woocommerce")
@signed_in
def woocommerce_save() -> ResponseReturnValue:
    if current_shop().platform != "woocommerce":
        return not_found("WooCommerce settings")
    return save(WOOCOMMERCE)
