"""The JSON API under /api/v1, for a storefront widget's backend and for integrations.

Who is asking: `Authorization: Bearer <token>`, where the token is either

* a shop's API key (`cbk_…`, `clawback api-key create`): only its SHA-256 is stored; scope `read`
  (shop, balances, history) or `redeem` (also spends coins); revoked at once by `api-key revoke`;
* or an admin token minted by web/session.py (the merchant pages' `t`, one hour): everything.

Either names exactly one shop, and that is the only shop a request can reach: no route takes a shop
from the URL or the body, and every query is filtered by the authenticated shop's id, so a
customer id of another shop is simply not found. Tokens are read from the header only (never the
URL, so they stay out of logs and browser history).

Every refusal is a 4xx with `{"error": "…"}` and writes nothing; success answers JSON with
`Cache-Control: no-store`. A redemption is idempotent by the caller's key: the key, the request it
was used for and the answer are stored in the redemption's own transaction, so a retry gets the
same answer (200) and spends nothing again, and the same key for a different request is a 422.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn, TypeVar, cast

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import api_keys, wallet
from app.domain.text import whole_number
from app.errors import InsufficientCoins, InvalidInput, NotFound
from app.history import balances, find_customer, ledger_page, order_names
from app.models import ApiRequest, Customer, Shop, as_utc
from app.shops import shop_settings
from web import session as admin_session
from web.bodies import read_body
from web.extensions import get_session

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_BODY_BYTES = 16 * 1024  # a redemption is a few dozen bytes
MAX_ID_CHARS = 64  # the platform id columns
MAX_IDEMPOTENCY_KEY_CHARS = 200
HISTORY_DEFAULT, HISTORY_MAX = 50, 200
MAX_ROW_ID = 2**31 - 1  # ids are INTEGER: a larger `before` is "from the newest"
REDEEM_FIELDS = ("coins", "order_id", "code", "idempotency_key")
F = TypeVar("F", bound=Callable[..., Any])


class ApiError(Exception):
    """A refusal: its status and the sentence for `{"error": …}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    raise ApiError(status, message, headers)


def _answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> ResponseReturnValue:
    get_session().rollback()  # nothing a refused request did is kept
    return _answer({"error": exc.message}, exc.status, exc.headers)


@bp.errorhandler(InvalidInput)
def _invalid(exc: InvalidInput) -> ResponseReturnValue:
    get_session().rollback()
    return _answer({"error": str(exc), "field": exc.field}, 400)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound) -> ResponseReturnValue:
    get_session().rollback()
    return _answer({"error": str(exc)}, 404)


@bp.errorhandler(InsufficientCoins)
def _insufficient(exc: InsufficientCoins) -> ResponseReturnValue:
    get_session().rollback()
    return _answer({"error": str(exc)}, 409)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _routing(exc: HTTPException) -> ResponseReturnValue:
    """Unknown paths and methods under /api/ answer JSON too; elsewhere the default pages stand."""
    if not request.path.startswith("/api/"):
        return exc
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}  # type: ignore[attr-defined]
    message = "no such endpoint" if exc.code == 404 else f"{request.method} is not allowed here"
    return _answer({"error": message}, exc.code or 404, headers)


# --- who is asking -------------------------------------------------------------------------------

CHALLENGE = 'Bearer realm="clawback"'


@dataclass(frozen=True)
class Caller:
    shop: Shop
    via: str  # api_key | admin
    scope: str  # read | redeem | admin
    source: str  # what the ledger records as the source of a redemption

    def may(self, scope: str) -> bool:
        return scope == "read" or self.scope in ("redeem", "admin")


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        refuse(401, "send Authorization: Bearer <API key or admin token>", {"WWW-Authenticate": CHALLENGE})
    return value.strip()


def _caller(session: Session) -> Caller:
    token = _bearer()
    invalid = {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'}
    if api_keys.looks_like_key(token):
        key = api_keys.find(session, token)
        if key is None:
            refuse(401, "the API key is not valid or has been revoked", invalid)
        shop = session.get(Shop, key.shop_id)
        caller = Caller(shop, "api_key", key.scope, f"api:key:{key.id}") if shop else None
    else:
        try:
            signed = admin_session.read(token)
        except (BadSignature, ValueError, UnicodeError):  # read() already maps these; belt and braces
            signed = None
        if signed is None:
            refuse(401, "the token is not valid or has expired", invalid)
        shop = session.get(Shop, signed.shop_id)
        caller = Caller(shop, "admin", "admin", f"api:admin:{signed.via}") if shop else None
    if caller is None:
        refuse(401, "the token names no shop", invalid)
    if caller.shop.uninstalled_at is not None:
        refuse(401, f"shop {caller.shop.domain} has uninstalled Clawback", invalid)
    return caller


def authenticated(scope: str) -> Callable[[F], F]:
    """Route decorator: the caller's shop is `g.api_caller.shop`; `scope` is what the route needs."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = _caller(get_session())
            if not caller.may(scope):
                refuse(403, f"this API key may only read; `clawback api-key create --scope {scope}` makes one "
                            f"that may {scope}")  # fmt: skip
            g.api_caller = caller
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def caller() -> Caller:
    return cast(Caller, g.api_caller)


# --- reading what was sent -----------------------------------------------------------------------


def _text(value: Any, field: str, max_chars: int) -> str:
    if not isinstance(value, str):
        refuse(400, f"{field} must be a string, not {_type(value)}")
    if not value.strip() or len(value) > max_chars or not value.isprintable():
        refuse(400, f"{field} must be 1 to {max_chars} printable characters")
    return value


def _type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
             dict: "an object", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _customer_ref(raw: str) -> str:
    if not raw.strip() or len(raw) > MAX_ID_CHARS or not raw.isprintable():
        refuse(400, f"a customer id is 1 to {MAX_ID_CHARS} printable characters")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key '{key[:40]}' appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _json_object() -> dict[str, Any]:
    """The body as one JSON object, at most MAX_BODY_BYTES, strictly parsed."""
    mimetype = request.mimetype
    if mimetype != "application/json":
        refuse(415, "send the body as JSON with Content-Type: application/json")
    request.max_content_length = MAX_BODY_BYTES
    try:
        raw = read_body(request)
    except RequestEntityTooLarge:
        refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except UnicodeDecodeError:
        refuse(400, "the body is not UTF-8")
    except (ValueError, RecursionError) as exc:
        refuse(400, f"the body is not valid JSON: {str(exc)[:100]}")
    if not isinstance(data, dict):
        refuse(400, f"the body must be a JSON object, not {_type(data)}")
    return data


# --- the shop ------------------------------------------------------------------------------------


@bp.get("/shop")
@authenticated("read")
def shop() -> ResponseReturnValue:
    who = caller()
    found = who.shop
    return _answer({
        "shop": {"platform": found.platform, "domain": found.domain, "name": found.name, "currency": found.currency},
        "settings": shop_settings(found).flat(),
        "auth": {"via": who.via, "scope": who.scope},
    })  # fmt: skip


# --- a customer's balance and history ------------------------------------------------------------


def _customer(session: Session, raw: str) -> Customer:
    ref = _customer_ref(raw)
    found = find_customer(session, caller().shop, ref)
    if found is None:
        refuse(404, f"no customer '{ref}' in this shop")
    return found


@bp.get("/customers/<customer_id>/balance")
@authenticated("read")
def balance(customer_id: str) -> ResponseReturnValue:
    found = _customer(get_session(), customer_id)
    return _answer({"customer_id": found.platform_customer_id, **balances(found)})


def _whole(name: str, low: int, high: int, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    number = whole_number(raw, 18)
    if number is None or not low <= number <= high:
        refuse(400, f"'{name}' must be a whole number from {low} to {high}")
    return number


@bp.get("/customers/<customer_id>/history")
@authenticated("read")
def history(customer_id: str) -> ResponseReturnValue:
    """The customer's ledger entries, newest first, `limit` at a time (keyset on the entry id: pass
    `next_before` back as `before` for the next page)."""
    limit = _whole("limit", 1, HISTORY_MAX, HISTORY_DEFAULT)
    before = _whole("before", 1, 10**18 - 1, None)
    assert limit is not None
    if before is not None and before > MAX_ROW_ID:
        before = None  # no id is that large: the page starts from the newest
    session = get_session()
    found = _customer(session, customer_id)
    listed = ledger_page(session, found.shop_id, customer_id=found.id, limit=limit, before=before)
    names = order_names(session, found.shop_id, listed.entries)
    return _answer({
        "customer_id": found.platform_customer_id,
        "entries": [{
            "id": e.id, "kind": e.kind, "coins_delta": e.coins_delta, "pending_delta": e.pending_delta,
            "shortfall_delta": e.shortfall_delta, "order_id": e.order_ref,
            "order_name": names.get(e.order_ref) if e.order_ref else None, "reason": e.reason,
            "explanation": e.explanation, "created_at": as_utc(e.created_at).isoformat(),
        } for e in listed.entries],
        "next_before": listed.next_before,
    })  # fmt: skip


# --- spending coins ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedeemRequest:
    customer_id: str
    coins: int
    order_id: str | None
    code: str | bool  # a code to create, True for one made up here, False for none
    idempotency_key: str

    def fingerprint(self) -> str:
        what = {"customer_id": self.customer_id, "coins": self.coins, "order_id": self.order_id, "code": self.code}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()


def _redeem_request(customer_ref: str, data: dict[str, Any]) -> RedeemRequest:
    unknown = [name for name in data if name not in REDEEM_FIELDS]
    if unknown:
        refuse(400, f"unknown field '{unknown[0][:40]}'; the fields are {', '.join(REDEEM_FIELDS)}")
    coins = data.get("coins")
    if "coins" not in data:
        refuse(400, "coins is required")
    if not isinstance(coins, int) or isinstance(coins, bool):
        refuse(400, f"coins must be a whole number, not {_type(coins)}")
    if not 0 < coins <= wallet.MAX_COINS:
        refuse(400, f"coins must be between 1 and {wallet.MAX_COINS}")
    order_id = data.get("order_id")
    if isinstance(order_id, int) and not isinstance(order_id, bool) and 0 < order_id < 10**MAX_ID_CHARS:
        order_id = str(order_id)  # platforms' order ids are numbers as often as strings
    if order_id is not None:
        order_id = _text(order_id, "order_id", MAX_ID_CHARS)
    code = data.get("code", False)
    if code is None:
        code = False
    if not isinstance(code, bool):
        code = _text(code, "code", 64)
    in_body = data.get("idempotency_key")
    in_header = request.headers.get("Idempotency-Key")
    if in_body is None and in_header is None:
        refuse(400, "idempotency_key is required (in the body, or the Idempotency-Key header)")
    if in_body is not None and in_header is not None and in_body != in_header:
        refuse(400, "idempotency_key and the Idempotency-Key header differ")
    key = _text(in_body if in_body is not None else in_header, "idempotency_key", MAX_IDEMPOTENCY_KEY_CHARS)
    return RedeemRequest(customer_ref, coins, order_id, code, key)


def _stored(session: Session, shop_id: int, key: str) -> ApiRequest | None:
    return session.exec(
        select(ApiRequest).where(ApiRequest.shop_id == shop_id, ApiRequest.idempotency_key == key)
    ).first()


def _replay(stored: ApiRequest, asked: RedeemRequest) -> Response:
    if stored.request_hash != asked.fingerprint():
        refuse(422, f"idempotency_key '{asked.idempotency_key[:40]}' was already used for a different request")
    # The customer's id is not kept with the answer (privacy erasure need not look here): it is the
    # one asked for, since the request matches.
    return _answer({**stored.response, "customer_id": asked.customer_id}, 200, {"Idempotent-Replayed": "true"})


def _made_up_code() -> str:
    return "CB-" + secrets.token_hex(5).upper()


@bp.post("/customers/<customer_id>/redeem")
@authenticated("redeem")
def redeem(customer_id: str) -> ResponseReturnValue:
    """Spend a customer's coins through `app.wallet.redeem` (what `clawback redeem` does): on an
    order, or as a single-use discount code whose write-back to the platform is recorded with it."""
    asked = _redeem_request(_customer_ref(customer_id), _json_object())
    session = get_session()
    shop_row = caller().shop
    assert shop_row.id is not None
    stored = _stored(session, shop_row.id, asked.idempotency_key)
    if stored is not None:
        return _replay(stored, asked)
    # The key first: a concurrent request with the same key waits on its UNIQUE index until this
    # transaction ends, then finds the answer instead of spending a second time.
    claim = ApiRequest(shop_id=shop_row.id, idempotency_key=asked.idempotency_key, request_hash=asked.fingerprint())
    session.add(claim)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        stored = _stored(session, shop_row.id, asked.idempotency_key)
        if stored is None:
            raise
        return _replay(stored, asked)
    code = _made_up_code() if asked.code is True else (asked.code or None)
    try:
        redemption, entry = wallet.redeem(session, shop_row, asked.customer_id, asked.coins, source=caller().source,
                                          order_ref=asked.order_id, code=code)  # fmt: skip
    except IntegrityError:  # a concurrent request took the same code first
        session.rollback()
        refuse(409, "a concurrent request changed this customer's coins or took the code; try again")
    customer = session.get(Customer, redemption.customer_id)
    assert customer is not None
    body = {
        "redemption": redemption.id,
        "coins": asked.coins,
        "order_id": asked.order_id,
        "code": redemption.code,
        "explanation": entry.explanation,
        "balance": balances(customer),
        "idempotency_key": asked.idempotency_key,
    }
    claim.redemption_id, claim.response = redemption.id, body
    session.add(claim)
    session.commit()
    return _answer({**body, "customer_id": asked.customer_id}, 201)
