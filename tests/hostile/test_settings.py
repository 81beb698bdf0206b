"""Hostile settings: `app.domain.shop_settings.apply_changes` refuses with InvalidInput or returns settings
that survive the database and work for an ordinary order; `clawback settings set` exits 0 with the
stored settings or 2 with a message and nothing written, never a traceback."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from flask.testing import FlaskCliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from app.domain import rules
from app.domain.shop_settings import KEYS, ShopSettings, apply_changes
from app.errors import InvalidInput
from app.models import Shop
from tests.factories import snap
from tests.hostile.strategies import LONG_TEXT, NUMERIC_STRINGS, TAGS, TEXT, VALUE, sweep_settings
from tests.hostile.world import MARKS, OTHER, SHOP, STRANGER, TRIED, World, fingerprint
from web.cli import cli

pytestmark = MARKS

NUMERIC_KEYS = ("earn.rate", "earn.min_order", "redeem.coin_value", "earn.delay_days")
SETTING_KEYS = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(
        [
            "earn",
            "earn.",
            ".rate",
            "earn.rate.x",
            "__class__",
            "earn.__dict__",
            "EARN.RATE",
            "earn.rate ",
            "earn\u202e.rate",
            "earn.exclude_tags\x00",
            "revert..enabled",
            "redeem.coin_value\n",
            "..",
            "",
            "earn.model_config",
            "earn._tags",
            "earn.model_fields",
            "shop.domain",
            "credentials.access_token",
        ]
    ),
    st.builds(lambda a, b: f"{a}.{b}", TEXT, TEXT),
)


# fmt: off
SETTING_WORDS = st.sampled_from([
    "true", "false", "yes", "no", "on", "off", "1", "0", "TRUE", " yes ", "maybe", "", "per_unit", "percent", "fixed",
    "paid", "fulfilled", "delivered", "down", "half_up", "up", "refunded,cancelled", "returned, returned", "negative",
    "floor_and_flag", "full", "proportional", "Fraud", ",,,", "a,b,c", "x" * 41, ",".join(["t"] * 51),
    ",".join(f"t{i}" for i in range(5000)),
])
SETTING_STRINGS = st.one_of(SETTING_WORDS, TEXT, LONG_TEXT.map(lambda s: s[:3000]), NUMERIC_STRINGS,
                            TAGS.map(lambda s: s[:20000]))
TYPED_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.decimals(),
                         st.lists(TEXT, max_size=5), st.dictionaries(TEXT, TEXT, max_size=3), VALUE)
# fmt: on


_VALUES = st.one_of(SETTING_STRINGS, SETTING_STRINGS, TYPED_VALUES)


def setting_strings(key: str) -> st.SearchStrategy[str]:
    """What a form field or a CLI argument carries."""
    return SETTING_STRINGS


def setting_values(key: str) -> st.SearchStrategy[Any]:
    """Strings as a form or the CLI sends them, and typed values as an API might."""
    return _VALUES


def check_usable(result: ShopSettings) -> None:
    """Accepted settings survive the database's JSON and work for an ordinary order."""
    assert ShopSettings.from_stored(json.loads(json.dumps(result.to_stored()))) == result
    rule = rules.EarnRule.from_settings(result.earn, "USD")
    assert rule.coins_for(Decimal("123.45")) >= 0
    rules.earn_target(snap(total="123.45"), rule, result.revert, booked=0, held=True)
    rules.redeem_target(snap(refunds={"r1": "12.34"}, statuses=("paid",)), 10_000, result.redeem)


def test_apply_changes_refuses_with_invalid_input_or_returns_usable_settings() -> None:
    current = ShopSettings()
    stored = current.to_stored()

    @sweep_settings(1200)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        changes: dict[str, Any] = {}
        for _ in range(data.draw(st.integers(1, 4))):
            key = data.draw(SETTING_KEYS, label="key")
            changes[key] = data.draw(setting_values(key), label=f"value for {key!r}")
        TRIED["apply_changes"] += 1
        try:
            result = apply_changes(current, changes)
        except InvalidInput as exc:
            assert str(exc).strip(), "InvalidInput without a message"
            assert exc.field is not None
        else:
            assert set(changes) <= set(KEYS)
            check_usable(result)
        assert current.to_stored() == stored, "apply_changes changed the settings it was given"

    sweep()


CLI_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    | st.sampled_from(["\udcff", "\udc80", "\u202e", "é", "="]),
    max_size=40,
)


def test_cli_settings_set(world: World) -> None:
    """`clawback settings set --shop S KEY=VALUE ...`: exit 0 with the stored settings, or exit 2
    with a message and nothing written; never a traceback. Arguments are what argv can carry (no
    NUL; undecodable bytes arrive as surrogate escapes)."""
    world.seed()
    runner: FlaskCliRunner = world.app.test_cli_runner()
    cli_keys = SETTING_KEYS.filter(lambda k: "\x00" not in k and not re.search(r"[\ud800-\udfff]", k))

    @sweep_settings(150)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        world.ensure_shops()
        refs = [SHOP, OTHER, SHOP.upper(), f" {SHOP} ", STRANGER, "1", "http://[::1", "https://evil.com", "../", "j:"]
        shop_ref = data.draw(st.sampled_from(refs) | CLI_TEXT, label="--shop")
        pairs = []
        for _ in range(data.draw(st.integers(1, 4))):
            key = data.draw(cli_keys, label="key")
            value = data.draw(st.one_of(setting_strings(key), CLI_TEXT), label=f"value for {key!r}")
            value = re.sub(r"[\x00\ud800-\udc7f\udd00-\udfff]", "?", value)  # argv: no NUL, surrogateescape only
            pairs.append(data.draw(st.sampled_from([f"{key}={value}", f"{key}={value}", key, f"={value}", value])))
        before = fingerprint(world.db)
        TRIED["clawback settings set"] += 1
        result = runner.invoke(cli, ["settings", "set", "--shop", shop_ref, *pairs])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{result.exception!r}\n{result.output}"
        )
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            assert result.output.strip(), "refused without a message"
            assert "Traceback" not in result.output
            assert fingerprint(world.db) == before
        else:
            shown = json.loads(result.stdout)
            with world.db.session() as session:
                shop = session.exec(select(Shop).where(Shop.domain == shop_ref.strip().lower())).one()
                assert ShopSettings.from_stored(shop.settings).flat() == shown
        for name, secret in world.secrets.items():
            assert secret not in result.output, f"clawback settings set printed {name}"
        world.check_logs_and_network("clawback settings set")

    sweep()
