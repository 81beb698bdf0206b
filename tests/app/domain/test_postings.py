"""What a posting may do to a customer's balances (app/domain/postings.py), without a database."""

from __future__ import annotations

import pytest

from app.domain.postings import Balances, Posting, after
from app.errors import InvariantViolation


def posting(**deltas: int) -> Posting:
    return Posting("revert", "refunded", "a sentence", source="test", key="k", **deltas)


def test_a_posting_moves_the_balances_by_its_deltas() -> None:
    assert after(Balances(100, 0, 0), posting(coins_delta=-30), who="c1") == Balances(70, 0, 0)
    assert after(Balances(10, 0, 0), posting(coins_delta=-30), who="c1") == Balances(-20, 0, 0)  # policy: negative
    assert after(Balances(0, 50, 0), posting(coins_delta=50, pending_delta=-50), who="c1") == Balances(50, 0, 0)


@pytest.mark.parametrize(
    ("before", "deltas", "message"),
    [
        (Balances(5, 5, 5), {}, "moves nothing"),
        (Balances(0, 10, 0), {"pending_delta": -11}, "pending -1"),
        (Balances(0, 0, 3), {"shortfall_delta": -4}, "shortfall -1"),
    ],
)
def test_a_posting_that_breaks_an_invariant_is_refused(before: Balances, deltas: dict[str, int], message: str) -> None:
    with pytest.raises(InvariantViolation, match=message):
        after(before, posting(**deltas), who="customer c1")
