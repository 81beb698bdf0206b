"""Shop settings (`app.domain.shop_settings`): values that once broke parsing or what comes after it.

The regression tests of the settings bugs the hostile-input sweep (tests/hostile) found; each
docstring names the bug's letter. The sweep itself is tests/hostile/test_settings.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.domain import rules
from app.domain.shop_settings import ShopSettings, apply_changes
from app.errors import InvalidInput
from tests.factories import snap


def test_a_huge_delay_days_exponent_is_refused_at_once() -> None:
    """Bug E of the hostile-input sweep (tests/hostile).

    earn.delay_days='1e100000000' became an int of 10^8 digits before the range check (a hang)."""
    code = (
        "from app.domain.shop_settings import ShopSettings, apply_changes\nfrom app.errors import InvalidInput\n"
        "try:\n    apply_changes(ShopSettings(), {'earn.delay_days': '1e100000000'})\nexcept InvalidInput:\n    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[3], timeout=20, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("apply_changes did not answer within 20 s")


def test_a_tiny_coin_value_is_refused() -> None:
    """Bug H of the hostile-input sweep (tests/hostile).

    redeem.coin_value='1e-999999999' was accepted (gt=0 only), then every refund of an order
    coins were spent on overflowed in rules.redeem_target."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {"redeem.coin_value": "1e-999999999"})
    smallest = apply_changes(ShopSettings(), {"redeem.coin_value": "0.000001"})
    rules.redeem_target(snap(refunds={"r1": "1.00"}, statuses=("paid",)), 100, smallest.redeem)


@pytest.mark.parametrize("key", ["earn.exclude_tags", "revert.tags", "revert.flag_tag"])
def test_a_long_tag_with_undecodable_bytes_is_refused(key: str) -> None:
    """Bug P of the hostile-input sweep (tests/hostile).

    `clawback settings set --shop S earn.exclude_tags=<41 bytes that are not UTF-8>` exited with a
    traceback (clean_tag echoed the surrogates into its message; pydantic-core could not encode it)."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {key: "\udcff" * 41})


@pytest.mark.parametrize(("key", "value"), [("woocommerce.tag_meta_keys", "\ud800" * 41),
                                            ("woocommerce.status_map", "\udcff=paid")])  # fmt: skip
def test_woocommerce_settings_with_undecodable_text_are_refused(key: str, value: str) -> None:
    """Bug R of the hostile-input sweep (tests/hostile).

    A meta key or status slug of lone surrogates was echoed into the refusal, which pydantic
    could not encode (a traceback instead of InvalidInput)."""
    with pytest.raises(InvalidInput):
        apply_changes(ShopSettings(), {key: value})
