"""Write-backs on Shopify: Admin GraphQL against recorded request and response shapes.

Intents come from the real service (a ledger post in a store-credit shop, a flag, a redemption
with a code); the runner (`app.writebacks`) carries them out through the Shopify executor, whose
httpx client is an `httpx.MockTransport` answering from a script, in order, and recording every
request. A request the script did not expect is answered 418 and fails the test.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import text
from sqlmodel import select

from app import ledger, writebacks
from app.config import Settings
from app.crypto import Vault
from app.db import Database
from app.models import Shop, Writeback, as_utc, utcnow
from app.service import flag_customer
from app.shops import read_credentials, register_shop
from connectors.shopify import client as admin
from connectors.shopify import writeback
from tests.conftest import SHOPIFY_API_KEY, SHOPIFY_API_SECRET
from tests.factories import Books, snap
from tests.helpers import clawback

SHOP = "clawback-test.myshopify.com"
CUSTOMER = "7001"
CUSTOMER_GID = f"gid://shopify/Customer/{CUSTOMER}"
TOKEN = "shpat_0123456789abcdef"
GRAPHQL = f"https://{SHOP}/admin/api/2026-07/graphql.json"
TOKEN_ENDPOINT = f"https://{SHOP}/admin/oauth/access_token"

# --- recorded Shopify answers --------------------------------------------------------------------

THROTTLED = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
             "extensions": {"cost": {"requestedQueryCost": 752, "actualQueryCost": None,
                                     "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 666,
                                                        "restoreRate": 50.0}}}}  # fmt: skip
COST = {"cost": {"requestedQueryCost": 10, "actualQueryCost": 10,
                 "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990,
                                    "restoreRate": 100.0}}}  # fmt: skip
TAGGED = {"data": {"tagsAdd": {"node": {"id": CUSTOMER_GID}, "userErrors": []}}, "extensions": COST}
TAG_REFUSED = {"data": {"tagsAdd": {"node": None, "userErrors": [
    {"field": ["id"], "message": "Customer does not exist"}]}}, "extensions": COST}  # fmt: skip


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currencyCode": "USD"}


def credited(amount: str, after: str) -> dict[str, Any]:
    transaction = {"amount": money(amount), "balanceAfterTransaction": money(after)}
    return {"data": {"storeCreditAccountCredit": {"storeCreditAccountTransaction": transaction, "userErrors": []}},
            "extensions": COST}  # fmt: skip


def debited(amount: str, after: str) -> dict[str, Any]:
    transaction = {"amount": money(f"-{amount}"), "balanceAfterTransaction": money(after)}
    return {"data": {"storeCreditAccountDebit": {"storeCreditAccountTransaction": transaction, "userErrors": []}},
            "extensions": COST}  # fmt: skip


INSUFFICIENT = {"data": {"storeCreditAccountDebit": {"storeCreditAccountTransaction": None, "userErrors": [
    {"code": "INSUFFICIENT_FUNDS", "field": ["debitInput", "debitAmount", "amount"],
     "message": "The store credit account does not have sufficient funds."}]}}, "extensions": COST}  # fmt: skip


def balance_of(*accounts: tuple[str, str]) -> dict[str, Any]:
    nodes = [{"id": f"gid://shopify/StoreCreditAccount/{i}", "balance": {"amount": amount, "currencyCode": currency}}
             for i, (amount, currency) in enumerate(accounts, 1)]  # fmt: skip
    return {"data": {"customer": {"storeCreditAccounts": {"nodes": nodes}}}, "extensions": COST}


DISCOUNT_CREATED = {"data": {"discountCodeBasicCreate": {"codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1"},
                                                         "userErrors": []}}, "extensions": COST}  # fmt: skip


class AdminAPI:
    """Shopify for one shop: answers from a script, in order; every request recorded."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, dict[str, Any]]] = deque()
        self.requests: list[httpx.Request] = []
        self.unexpected: list[str] = []

    def answer(self, body: dict[str, Any], status: int = 200, times: int = 1) -> AdminAPI:
        self.script.extend([(status, body)] * times)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            self.unexpected.append(f"{request.method} {request.url} {request.content[:200]!r}")
            return httpx.Response(418, json={"errors": "unexpected request"})
        status, body = self.script.popleft()
        return httpx.Response(status, json=body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def graphql(self, index: int = -1) -> dict[str, Any]:
        request = self.requests[index]
        assert (request.method, str(request.url)) == ("POST", GRAPHQL)
        assert request.headers["Content-Type"] == "application/json"
        return json.loads(request.content)


@pytest.fixture
def api() -> Iterator[AdminAPI]:
    server = AdminAPI()
    yield server
    assert server.unexpected == [], "requests the test did not expect"
    assert not server.script, "answers the code never asked for"


@pytest.fixture
def vault(app: Flask) -> Vault:
    return app.extensions["clawback"].vault


@pytest.fixture
def execute(settings: Settings, vault: Vault, api: AdminAPI) -> Iterator[writebacks.Executor]:
    with api.client() as http:
        yield writeback.executor(settings, vault, http=http)


def install(books: Books, vault: Vault, credentials: dict[str, Any] | None = None, **settings: Any) -> Books:
    shop = books.open(SHOP, **settings)
    with shop.db.session() as session:
        register_shop(
            session, vault, platform="shopify", domain=SHOP, credentials=credentials or {"access_token": TOKEN}
        )
    return shop


def rows(db: Database, kind: str | None = None) -> list[Writeback]:
    with db.session() as session:
        query = select(Writeback).order_by(Writeback.id)  # type: ignore[arg-type]
        if kind is not None:
            query = query.where(Writeback.kind == kind)
        return list(session.exec(query))


def only(db: Database, kind: str) -> Writeback:
    (row,) = rows(db, kind)
    return row


def run(db: Database, execute: writebacks.Executor, now: datetime) -> Counter[str]:
    return writebacks.run_due(db, execute, now)


def flag(books: Books, tag: str = "Fraud") -> None:
    with books.db.session() as session:
        customer = ledger.lock_customer(session, books.shop_id, CUSTOMER)
        flag_customer(session, customer, tag, utcnow(), why="test")


def entries(books: Books) -> list[tuple[str, str, int, int]]:
    return [(e.kind, e.reason, e.coins_delta, e.shortfall_delta) for e in books.entries()]


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


# --- the Admin client on its own -----------------------------------------------------------------


def test_tags_add_posts_the_mutation_with_the_shops_token(settings: Settings, api: AdminAPI) -> None:
    api.answer(TAGGED)
    with api.client() as http:
        admin.AdminClient(settings, SHOP, {"access_token": TOKEN}, http=http).tags_add(CUSTOMER, ["Fraud"])
    (request,) = api.requests
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert api.graphql() == {"query": admin.TAGS_ADD, "variables": {"id": CUSTOMER_GID, "tags": ["Fraud"]}}


def test_a_gid_is_passed_through(settings: Settings, api: AdminAPI) -> None:
    api.answer(TAGGED)
    with api.client() as http:
        admin.AdminClient(settings, SHOP, {"access_token": TOKEN}, http=http).tags_add(CUSTOMER_GID, ["VIP"])
    assert api.graphql()["variables"]["id"] == CUSTOMER_GID


def test_throttled_is_read_into_the_documented_wait(settings: Settings, api: AdminAPI) -> None:
    api.answer(THROTTLED)
    with api.client() as http, pytest.raises(admin.Throttled) as raised:
        admin.AdminClient(settings, SHOP, {"access_token": TOKEN}, http=http).tags_add(CUSTOMER, ["Fraud"])
    assert raised.value.retry_after_s == 2.0  # ceil((752 - 666) / 50)


@pytest.mark.parametrize("domain", ["evil.com", "x.myshopify.com.evil.com", ""])
def test_the_client_talks_to_shopify_shops_only(settings: Settings, domain: str) -> None:
    with pytest.raises(ValueError):
        admin.AdminClient(settings, domain, {"access_token": TOKEN})


def test_no_token_means_no_request(settings: Settings, api: AdminAPI) -> None:
    with api.client() as http, pytest.raises(admin.TokenRevoked):
        admin.AdminClient(settings, SHOP, {}, http=http).tags_add(CUSTOMER, ["Fraud"])
    assert api.requests == []


# --- tags ----------------------------------------------------------------------------------------


def test_a_flag_is_tagged_on_shopify(books: Books, vault: Vault, db: Database, api: AdminAPI,
                                     execute: writebacks.Executor) -> None:  # fmt: skip
    shop = install(books, vault)
    flag(shop)
    api.answer(TAGGED)
    now = utcnow()
    assert run(db, execute, now) == Counter(done=1)
    (request,) = api.requests
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert api.graphql() == {"query": admin.TAGS_ADD, "variables": {"id": CUSTOMER_GID, "tags": ["Fraud"]}}
    row = only(db, "tag_customer")
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)
    assert row.done_at is not None and as_utc(row.done_at) == now


def test_a_refused_tag_is_given_up(books: Books, vault: Vault, db: Database, api: AdminAPI,
                                   execute: writebacks.Executor) -> None:  # fmt: skip
    shop = install(books, vault)
    flag(shop)
    api.answer(TAG_REFUSED)
    now = utcnow()
    assert run(db, execute, now) == Counter(failed=1)
    row = only(db, "tag_customer")
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error == "gave up: tagsAdd: Customer does not exist"
    assert run(db, execute, now + timedelta(days=1)) == Counter()  # never retried on its own
    assert len(api.requests) == 1


def test_throttled_waits_the_restore_time_then_succeeds(books: Books, vault: Vault, db: Database, api: AdminAPI,
                                                         execute: writebacks.Executor) -> None:  # fmt: skip
    shop = install(books, vault)
    flag(shop)
    api.answer(THROTTLED)
    now = utcnow()
    assert run(db, execute, now) == Counter(pending=1)
    row = only(db, "tag_customer")
    assert as_utc(row.next_attempt_at) == now + timedelta(seconds=2)
    assert row.last_error == "retry later: THROTTLED"
    assert run(db, execute, now + timedelta(seconds=1)) == Counter()  # not yet
    api.answer(TAGGED)
    assert run(db, execute, now + timedelta(seconds=2)) == Counter(done=1)
    assert len(api.requests) == 2
    assert only(db, "tag_customer").attempts == 2


def test_a_revoked_token_waits_an_hour_and_keeps_the_intent(books: Books, vault: Vault, db: Database, api: AdminAPI,
                                                            execute: writebacks.Executor) -> None:  # fmt: skip
    shop = install(books, vault)
    flag(shop)
    api.answer({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401)
    now = utcnow()
    assert run(db, execute, now) == Counter(pending=1)
    row = only(db, "tag_customer")
    assert row.status == "pending"
    assert as_utc(row.next_attempt_at) == now + timedelta(seconds=writeback.TOKEN_RETRY_S)
    assert row.last_error is not None and row.last_error.startswith("retry later:")
    assert run(db, execute, now + timedelta(minutes=59)) == Counter()
    api.answer(TAGGED)  # the merchant reinstalled
    assert run(db, execute, now + timedelta(hours=1)) == Counter(done=1)


def test_server_errors_back_off_then_dead_letter_then_replay(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor, runner: FlaskCliRunner
) -> None:
    shop = install(books, vault)
    flag(shop)
    now = utcnow()
    for attempt in range(1, writebacks.MAX_ATTEMPTS + 1):
        api.answer({"errors": "Internal Server Error"}, 500)
        expected = "failed" if attempt == writebacks.MAX_ATTEMPTS else "pending"
        assert run(db, execute, now) == Counter({expected: 1})
        row = only(db, "tag_customer")
        assert row.attempts == attempt
        assert row.last_error is not None and "500" in row.last_error
        if expected == "pending":
            assert as_utc(row.next_attempt_at) == now + timedelta(seconds=writebacks.backoff_s(attempt))
            assert run(db, execute, as_utc(row.next_attempt_at) - timedelta(seconds=1)) == Counter()
            now = as_utc(row.next_attempt_at)
    assert [writebacks.backoff_s(n) for n in range(1, 5)] == [30.0, 60.0, 120.0, 240.0]
    assert len(api.requests) == writebacks.MAX_ATTEMPTS
    assert run(db, execute, now + timedelta(days=30)) == Counter()  # dead letters stay put

    (listed,) = lines(clawback(runner, "writebacks", "list", "--failed"))
    assert (listed["shop"], listed["kind"], listed["status"], listed["attempts"]) == (
        SHOP, "tag_customer", "failed", writebacks.MAX_ATTEMPTS
    )  # fmt: skip
    assert "500" in listed["last_error"]
    assert lines(clawback(runner, "writebacks", "replay")) == [{"requeued": 1}]
    assert lines(clawback(runner, "writebacks", "list", "--failed")) == []
    row = only(db, "tag_customer")
    assert (row.status, row.attempts) == ("pending", 0)

    api.answer(TAGGED)
    assert run(db, execute, utcnow()) == Counter(done=1)
    assert lines(clawback(runner, "writebacks", "list"))[0]["status"] == "done"


# --- store credit --------------------------------------------------------------------------------


def store_credit_shop(books: Books, vault: Vault, **settings: Any) -> Books:
    return install(books, vault, earn__mode="percent", earn__rate="5", earn__store_credit="true", **settings)


def test_an_earn_in_a_store_credit_shop_credits_shopify(books: Books, vault: Vault, db: Database, api: AdminAPI,
                                                        execute: writebacks.Executor) -> None:  # fmt: skip
    shop = store_credit_shop(books, vault)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    assert shop.balance(CUSTOMER)["available"] == 500  # 5 % of $100.00, in cents
    row = only(db, "store_credit")
    assert row.payload["minor_units"] == 500 and row.payload["currency"] == "USD"

    api.answer(credited("5.00", "5.00"))
    assert run(db, execute, utcnow()) == Counter(done=1)
    (request,) = api.requests
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert api.graphql() == {"query": admin.STORE_CREDIT_CREDIT, "variables": {
        "id": CUSTOMER_GID, "input": {"creditAmount": {"amount": "5.00", "currencyCode": "USD"}}}}  # fmt: skip


def test_a_shop_without_store_credit_writes_no_credit(books: Books, vault: Vault, db: Database) -> None:
    shop = install(books, vault, earn__mode="percent", earn__rate="5")
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    assert shop.balance(CUSTOMER)["available"] == 500
    assert rows(db) == []


@pytest.mark.parametrize("policy", ["floor_and_flag", "negative"])
def test_a_debit_beyond_the_shopify_balance_takes_what_is_left_and_records_the_rest(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor, policy: str
) -> None:
    shop = store_credit_shop(books, vault, revert__enabled="true", revert__shortfall=policy)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    api.answer(credited("5.00", "5.00"))
    assert run(db, execute, utcnow()) == Counter(done=1)

    # $3.00 of the credit was spent at checkout; then the order is cancelled.
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER, at=10, statuses=("paid", "cancelled")))
    assert shop.balance(CUSTOMER) == {"available": 0, "pending": 0, "shortfall": 0}
    debit = rows(db, "store_credit")[-1]
    assert debit.payload["minor_units"] == -500

    api.answer(INSUFFICIENT).answer(balance_of(("1.00", "EUR"), ("2.00", "USD"))).answer(debited("2.00", "0.0"))
    assert run(db, execute, utcnow()) == Counter(done=1)
    first, balance, second = (api.graphql(i) for i in (1, 2, 3))
    assert first == {"query": admin.STORE_CREDIT_DEBIT, "variables": {
        "id": CUSTOMER_GID, "input": {"debitAmount": {"amount": "5.00", "currencyCode": "USD"}}}}  # fmt: skip
    assert balance == {"query": admin.STORE_CREDIT_BALANCE, "variables": {"id": CUSTOMER_GID}}
    assert second == {"query": admin.STORE_CREDIT_DEBIT, "variables": {
        "id": CUSTOMER_GID, "input": {"debitAmount": {"amount": "2.00", "currencyCode": "USD"}}}}  # fmt: skip
    assert all(r.headers["X-Shopify-Access-Token"] == TOKEN for r in api.requests)

    assert entries(shop) == [("earn", "earned", 500, 0), ("revert", "order_cancelled", -500, 0),
                             ("adjust", "platform_shortfall", 0, 300)]  # fmt: skip
    adjust = shop.entries()[-1]
    assert adjust.source == "writeback"
    assert "300 coins were already spent" in adjust.explanation
    assert shop.balance(CUSTOMER) == {"available": 0, "pending": 0, "shortfall": 300}
    tags = rows(db, "tag_customer")
    if policy == "floor_and_flag":
        (tag,) = tags
        assert (tag.status, tag.payload["tag"], tag.payload["customer_id"]) == ("pending", "Fraud", CUSTOMER)
        assert "Fraud" in shop.customer(CUSTOMER).tags
    else:
        assert tags == []
        assert shop.customer(CUSTOMER).tags == []
    assert shop.violations() == []


def test_a_debit_with_nothing_left_on_shopify_records_it_all(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = store_credit_shop(books, vault, revert__enabled="true")
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    api.answer(credited("5.00", "5.00"))
    run(db, execute, utcnow())
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER, at=10, statuses=("paid", "cancelled")))
    api.answer(INSUFFICIENT).answer(balance_of())
    assert run(db, execute, utcnow()) == Counter(done=1)
    assert len(api.requests) == 3  # credit, refused debit, balance: no debit of nothing
    assert shop.balance(CUSTOMER)["shortfall"] == 500
    assert shop.violations() == []


def test_a_refused_credit_is_given_up_without_a_shortfall(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = store_credit_shop(books, vault)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    error = {"code": "ACCOUNT_NOT_FOUND", "field": ["id"], "message": "Store credit account does not exist"}
    refused = {"data": {"storeCreditAccountCredit": {"storeCreditAccountTransaction": None, "userErrors": [error]}}}
    api.answer(refused)
    before = entries(shop)
    assert run(db, execute, utcnow()) == Counter(failed=1)
    assert entries(shop) == before
    assert only(db, "store_credit").last_error == "gave up: store credit: Store credit account does not exist"


def test_a_failing_write_back_never_touches_the_ledger(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = store_credit_shop(books, vault)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    before, balance = entries(shop), shop.balance(CUSTOMER)
    now = utcnow()
    server_error: dict[str, Any] = {"errors": "Internal Server Error"}
    failures = [(THROTTLED, 200), (server_error, 500), ({"errors": "x"}, 401), (server_error, 500)]
    for answer, status in failures:
        api.answer(answer, status)
        assert run(db, execute, now) == Counter(pending=1)
        assert entries(shop) == before
        assert shop.balance(CUSTOMER) == balance
        now = as_utc(only(db, "store_credit").next_attempt_at)
    assert len(rows(db)) == 1  # no second intent either
    assert shop.violations() == []


def test_done_stays_done(books: Books, vault: Vault, db: Database, api: AdminAPI,
                         execute: writebacks.Executor) -> None:  # fmt: skip
    shop = store_credit_shop(books, vault)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    api.answer(credited("5.00", "5.00"))
    now = utcnow()
    assert run(db, execute, now) == Counter(done=1)
    row = only(db, "store_credit")
    assert run(db, execute, now + timedelta(days=1)) == Counter()
    assert row.id is not None and writebacks.run_one(db, row.id, execute, now + timedelta(days=2)) == "done"
    again = only(db, "store_credit")
    assert (again.status, again.attempts, again.done_at) == ("done", 1, row.done_at)
    assert len(api.requests) == 1
    # the same snapshot once more posts nothing and intends nothing new
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER, at=5))
    assert len(rows(db)) == 1


def test_an_uninstalled_shop_keeps_its_write_backs_for_a_reinstall(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = install(books, vault)
    flag(shop)
    with db.session() as session:
        row = session.get(Shop, shop.shop_id)
        assert row is not None
        row.uninstalled_at, row.credentials = utcnow(), None
        session.add(row)
    now = utcnow()
    assert run(db, execute, now) == Counter(pending=1)
    assert api.requests == []
    kept = only(db, "tag_customer")
    assert kept.status == "pending" and "uninstalled" in (kept.last_error or "")
    assert as_utc(kept.next_attempt_at) >= now + timedelta(hours=6)


# --- discount codes ------------------------------------------------------------------------------


def test_a_redemption_with_a_code_creates_a_single_use_discount_for_the_customer(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor, runner: FlaskCliRunner
) -> None:
    shop = install(books, vault, redeem__coin_value="0.05")
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    assert shop.balance(CUSTOMER)["available"] == 100
    (out,) = lines(clawback(runner, "redeem", "--shop", SHOP, "--customer", CUSTOMER, "--coins", "60",
                            "--code", "save-1"))  # fmt: skip
    assert (out["code"], out["coins"]) == ("SAVE-1", 60)
    row = only(db, "discount_code")
    assert rows(db) == [row]
    assert (row.payload["code"], row.payload["amount"], row.payload["customer_id"]) == ("SAVE-1", "3.00", CUSTOMER)

    api.answer(DISCOUNT_CREATED)
    assert run(db, execute, utcnow()) == Counter(done=1)
    (request,) = api.requests
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    sent = api.graphql()
    assert sent["query"] == admin.DISCOUNT_CODE_CREATE
    assert sent["variables"] == {"input": {
        "title": "Clawback SAVE-1", "code": "SAVE-1", "startsAt": "2020-01-01T00:00:00Z",
        "usageLimit": 1, "appliesOncePerCustomer": True,
        "context": {"customers": {"add": [CUSTOMER_GID]}},
        "customerGets": {"value": {"discountAmount": {"amount": "3.00", "appliesOnEachItem": False}},
                         "items": {"all": True}},
        "combinesWith": {"orderDiscounts": False, "productDiscounts": False, "shippingDiscounts": True},
    }}  # fmt: skip
    assert Decimal(sent["variables"]["input"]["customerGets"]["value"]["discountAmount"]["amount"]) == 60 * Decimal(
        "0.05"
    )


def test_a_refused_discount_code_is_given_up(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = install(books, vault)
    shop.apply(snap("1001", total="100.00", customer=CUSTOMER))
    shop.redeem(CUSTOMER, 50, code="SAVE-2")
    api.answer({"data": {"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [
        {"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]}}})  # fmt: skip
    assert run(db, execute, utcnow()) == Counter(failed=1)
    assert only(db, "discount_code").last_error == "gave up: discountCodeBasicCreate: Code must be unique."
    assert shop.balance(CUSTOMER)["available"] == 50  # the coins stay spent: the ledger is not the platform


# --- expiring tokens ------------------------------------------------------------------------------


def expiring(expires_in: timedelta) -> dict[str, Any]:
    def iso(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    now = datetime.now(UTC)
    return {"access_token": "shpat_old", "scope": "write_customers", "expires": iso(now + expires_in),
            "refresh_token": "shprt_old", "refresh_token_expires": iso(now + timedelta(days=60))}  # fmt: skip


REFRESHED = {"access_token": "shpat_new", "scope": "write_customers", "expires_in": 3600,
             "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000}  # fmt: skip


def test_an_expired_token_is_refreshed_stored_encrypted_and_used(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = install(books, vault, credentials=expiring(-timedelta(minutes=5)))
    flag(shop)
    api.answer(REFRESHED).answer(TAGGED)
    assert run(db, execute, utcnow()) == Counter(done=1)
    refresh, mutation = api.requests
    assert (refresh.method, str(refresh.url)) == ("POST", TOKEN_ENDPOINT)
    assert json.loads(refresh.content) == {"client_id": SHOPIFY_API_KEY, "client_secret": SHOPIFY_API_SECRET,
                                           "grant_type": "refresh_token", "refresh_token": "shprt_old"}  # fmt: skip
    assert mutation.headers["X-Shopify-Access-Token"] == "shpat_new"
    with db.session() as session:
        stored = session.get(Shop, shop.shop_id)
        assert stored is not None
        creds = read_credentials(vault, stored)
    assert (creds["access_token"], creds["refresh_token"]) == ("shpat_new", "shprt_new")
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT credentials FROM shops")).scalar_one()
    assert "shpat_new" not in raw and "shprt_new" not in raw


def test_a_refused_refresh_waits_like_a_revoked_token(
    books: Books, vault: Vault, db: Database, api: AdminAPI, execute: writebacks.Executor
) -> None:
    shop = install(books, vault, credentials=expiring(-timedelta(minutes=5)))
    flag(shop)
    api.answer({"error": "invalid_grant"}, 400)
    now = utcnow()
    assert run(db, execute, now) == Counter(pending=1)
    row = only(db, "tag_customer")
    assert as_utc(row.next_attempt_at) == now + timedelta(seconds=writeback.TOKEN_RETRY_S)
    assert len(api.requests) == 1  # no mutation with a dead token


@pytest.mark.parametrize(
    ("answer", "status", "outcome"),
    [(THROTTLED, 200, "pending"), ({"errors": "Internal Server Error"}, 500, "pending"), (TAG_REFUSED, 200, "failed")],
    ids=["throttled", "server error", "refused"],
)  # fmt: skip
def test_a_refreshed_token_is_kept_whatever_happens_to_the_write_back(
    books: Books,
    vault: Vault,
    db: Database,
    api: AdminAPI,
    execute: writebacks.Executor,
    answer: dict[str, Any],
    status: int,
    outcome: str,
) -> None:
    """Shopify rotates the refresh token on use: the new pair must survive the attempt's rollback."""
    shop = install(books, vault, credentials=expiring(-timedelta(minutes=5)))
    flag(shop)
    api.answer(REFRESHED).answer(answer, status)
    assert run(db, execute, utcnow()) == Counter({outcome: 1})
    with db.session() as session:
        stored = session.get(Shop, shop.shop_id)
        assert stored is not None
        creds = read_credentials(vault, stored)
    assert (creds["access_token"], creds["refresh_token"]) == ("shpat_new", "shprt_new")
    if outcome == "pending":  # the next attempt uses the kept token, no second refresh
        api.answer(TAGGED)
        assert run(db, execute, utcnow() + timedelta(hours=1)) == Counter(done=1)
        assert api.requests[-1].headers["X-Shopify-Access-Token"] == "shpat_new"
        assert len(api.requests) == 3


# --- the CLI runner, through the connector registry ----------------------------------------------


def test_clawback_writebacks_run_goes_through_the_registry(
    books: Books, vault: Vault, db: Database, api: AdminAPI, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clawback writebacks run` builds its own executor: shopifyapp's default client is the mock."""
    from shopify_app.utils import http_client

    mock_client = api.client()
    original = http_client.HTTPClientContext.__init__

    def init(self: Any, injected_client: httpx.Client | None = None, timeout: float = 30.0) -> None:
        original(self, injected_client if injected_client is not None else mock_client, timeout)

    monkeypatch.setattr(http_client.HTTPClientContext, "__init__", init)
    shop = install(books, vault)
    flag(shop)
    api.answer(TAGGED)
    assert lines(clawback(runner, "writebacks", "run")) == [{"done": 1}]
    assert api.graphql()["variables"] == {"id": CUSTOMER_GID, "tags": ["Fraud"]}
    assert lines(clawback(runner, "writebacks", "run")) == [{}]
    assert len(api.requests) == 1
    mock_client.close()
