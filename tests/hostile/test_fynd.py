"""Hostile input at Fynd's door: POST /webhooks/fynd, signed with the sales channel's secret, with
hostile text and numbers in the event's own fields (id, name, type, version, category, its time),
which reach a column or a hash (issue #18), and hostile shipments."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.shops import register_shop
from tests.helpers import post_webhook
from tests.hostile.payloads import to_json
from tests.hostile.strategies import LONG_TEXT, NUMERIC_STRINGS, RAW_NUMBERS, TEXT, VALUE, sweep_settings
from tests.hostile.world import MARKS, OUTCOMES, TRIED, World, fingerprint
from tests.platforms.fynd import CANNED, SECRET, SHOP, headers

pytestmark = MARKS
EVENT_FIELDS = ("id", "name", "type", "version", "category")


def fynd_shop(world: World) -> int:
    with world.db.session() as session:
        shop, _ = register_shop(session, world.vault, platform="fynd", domain=SHOP, credentials={"api_secret": SECRET})
        assert shop.id is not None
        return shop.id


@st.composite
def fynd_events(draw: st.DrawFn) -> bytes:
    """The documented shipment event with hostile values in the event's fields and its time."""
    body: Any = copy.deepcopy(CANNED)
    for field in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=3, unique=True)):
        body["event"][field] = draw(TEXT | LONG_TEXT | VALUE, label=f"event.{field}")
    if draw(st.booleans()):
        stamp = st.one_of(NUMERIC_STRINGS, RAW_NUMBERS, st.floats(), st.integers(-(2**70), 2**70))
        body["event"]["created_timestamp"] = draw(stamp, label="event.created_timestamp")
    return to_json(body, ascii_only=draw(st.booleans())).encode("utf-8")


def test_fynd_webhooks(world: World) -> None:
    """Signed, with any event fields: never a 500; a refusal writes nothing; an accepted delivery
    settles (processed, ignored or failed) on its first attempt, never 'received' for a retry."""
    world.secrets["the Fynd API secret"] = SECRET
    shop_id = fynd_shop(world)

    @sweep_settings(150)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        body = data.draw(fynd_events(), label="body")
        before = fingerprint(world.db)
        TRIED["POST /webhooks/fynd"] += 1
        response = post_webhook(world.client, "fynd", body, headers(body))
        world.check_answer(response, "POST /webhooks/fynd")
        world.check_logs_and_network("POST /webhooks/fynd")
        if response.status_code != 200:
            assert response.status_code in (400, 404, 413), response.status_code
            assert fingerprint(world.db) == before
            return
        if response.get_json().get("status") != "accepted":
            return  # a duplicate, or a ping answered without storing
        stored = world.latest_delivery(shop_id)
        assert stored is not None and stored.status in ("processed", "ignored", "failed"), stored
        assert stored.attempts == 1, stored  # settled at once: nothing left for a retry
        OUTCOMES[stored.status] += 1
        assert world.violations() == []

    sweep()
