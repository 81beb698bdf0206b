"""app/history.py: a customer's ledger a page at a time, and the names shown beside its entries."""

from __future__ import annotations

import pytest

from app import history
from app.history import customer_refs, find_customer, ledger_page, order_names
from app.models import Shop
from tests.factories import Books, snap


@pytest.fixture
def shop(books: Books) -> Books:
    shop = books.open()
    for n in range(5):
        shop.apply(snap(f"10{n}", at=n))  # c1 earns on five orders
    shop.apply(snap("2000", customer="c2", at=9))
    return shop


def test_pages_walk_a_customers_history_newest_first(shop: Books) -> None:
    with shop.db.session() as session:
        row = session.get(Shop, shop.shop_id)
        assert row is not None
        c1 = find_customer(session, row, "c1")
        assert c1 is not None and c1.id is not None
        whole = ledger_page(session, shop.shop_id, customer_id=c1.id)
        ids = [e.id for e in whole.entries]
        assert len(ids) == 5 and ids == sorted(ids, reverse=True) and whole.next_before is None
        assert {e.customer_id for e in whole.entries} == {c1.id}
        walked, before = [], None
        while True:
            page = ledger_page(session, shop.shop_id, customer_id=c1.id, limit=2, before=before)
            walked += [e.id for e in page.entries]
            if page.next_before is None:
                break
            assert page.next_before == page.entries[-1].id
            before = page.next_before
        assert walked == ids
        forwards = ledger_page(session, shop.shop_id, customer_id=c1.id, oldest_first=True)
        assert [e.id for e in forwards.entries] == ids[::-1]
        assert [e.order_ref for e in ledger_page(session, shop.shop_id, order_ref="102").entries] == ["102"]
        with pytest.raises(ValueError, match="paged"):
            ledger_page(session, shop.shop_id, oldest_first=True, limit=2)


def test_another_shops_customer_is_not_found(shop: Books, books: Books) -> None:
    other = books.open("other.myshopify.com")
    with shop.db.session() as session:
        row = session.get(Shop, other.shop_id)
        assert row is not None
        assert find_customer(session, row, "c1") is None
        assert ledger_page(session, other.shop_id).entries == []


def test_names_beside_the_entries_are_read_in_chunks(shop: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "IN_CHUNK", 2)
    with shop.db.session() as session:
        entries = ledger_page(session, shop.shop_id).entries
        assert sorted(customer_refs(session, shop.shop_id, entries).values()) == ["c1", "c2"]
        assert order_names(session, shop.shop_id, entries) == {
            ref: f"#{ref}" for ref in (*(f"10{n}" for n in range(5)), "2000")
        }
        assert customer_refs(session, shop.shop_id, []) == {} and order_names(session, shop.shop_id, []) == {}
