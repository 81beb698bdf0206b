"""The order snapshot and its merge: a join, so delivery order and duplicates cannot matter."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.snapshot import OrderSnapshot, Refund, Status, normalize_tags
from tests.factories import snap


def test_tags_are_trimmed_case_insensitive_and_comma_separated() -> None:
    assert normalize_tags(" VIP, Fraud ,, refunded-Order ") == {"vip", "fraud", "refunded-order"}
    assert snap(tags=("  Two  Words ",)).tags == {"two words"}


def test_statuses_imply_what_they_follow() -> None:
    assert snap(statuses=("refunded",)).has(Status.PAID)
    assert snap(statuses=("returned",)).has(Status.FULFILLED)


def test_net_is_total_less_refunds_never_negative() -> None:
    assert snap(total="100.00", refunds={"a": "20.00", "b": "30.00"}).net == Decimal("50.00")
    assert snap(total="10.00", refunds={"a": "20.00"}).net == 0


def test_invalid_snapshots_are_refused() -> None:
    with pytest.raises(ValueError, match="negative total"):
        snap(total="-1")
    with pytest.raises(ValueError, match="negative amount"):
        Refund("r", Decimal("-1"))
    with pytest.raises(ValueError, match="order_id"):
        snap("x" * 65)


def test_json_round_trip() -> None:
    original = snap(statuses=("paid", "fulfilled"), refunds={"r": "1.50"}, tags=("a",), codes=("save10",),
                    customer_tags=("vip",))  # fmt: skip
    assert OrderSnapshot.from_json(original.to_json()) == original
    assert original.discount_codes == {"SAVE10"}


snapshots = st.builds(
    lambda at, statuses, refunds, tags: snap(at=at, statuses=statuses, refunds=refunds, tags=tags),
    at=st.integers(0, 5),
    statuses=st.lists(st.sampled_from(["paid", "cancelled", "refunded", "fulfilled"]), max_size=3).map(tuple),
    refunds=st.dictionaries(st.sampled_from(["r1", "r2", "r3"]), st.sampled_from(["1.00", "5.00", "7.25"])),
    tags=st.lists(st.sampled_from(["a", "b"]), max_size=2).map(tuple),
)


@given(snapshots, snapshots, snapshots)
def test_merge_is_a_join(a: OrderSnapshot, b: OrderSnapshot, c: OrderSnapshot) -> None:
    assert a.merge(b) == b.merge(a)  # commutative
    assert a.merge(b).merge(c) == a.merge(b.merge(c))  # associative
    assert a.merge(a) == a  # idempotent
    merged = a.merge(b)
    assert {r.refund_id for r in merged.refunds} == {r.refund_id for r in a.refunds | b.refunds}


def test_merge_keeps_the_newer_state_and_every_refund() -> None:
    old = snap(at=1, statuses=("paid",), refunds={"r1": "10.00"}, tags=("x",))
    new = snap(at=2, statuses=("paid", "cancelled"), refunds={"r2": "5.00"})
    merged = old.merge(new)
    assert merged.has(Status.CANCELLED) and merged.tags == frozenset()
    assert merged.refunded == Decimal("15.00")
    with pytest.raises(ValueError, match="same order"):
        old.merge(snap("other"))
