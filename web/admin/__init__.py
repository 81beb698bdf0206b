"""The merchant's pages: Features (each feature's settings), Activity, Customers.

Every route is `@signed_in`: the shop comes from the token `t` only (never from the URL), every
query is filtered by that shop's id, and every link and form carries a fresh `t` (it is also the
forms' CSRF token). `host` and `shop` ride along on links for App Bridge; they choose nothing.

Saves go through `app.shops.change_settings` (so through `apply_changes`, the one validation):
all or nothing, POST-redirect-GET with `saved=1` on success, the page again with the message next
to its field (400) on refusal. The pages need no JavaScript and no external asset to render.

The blueprint and what every page shares are in `_common`; each area's routes are in a module of
its own, imported here so that they are on `bp` before the app registers it.
"""

from __future__ import annotations

from web.admin import activity, customers, features, woocommerce  # noqa: F401  (registers their routes)
from web.admin._common import bp
from web.admin.features import features_page

__all__ = ["bp", "features_page"]
