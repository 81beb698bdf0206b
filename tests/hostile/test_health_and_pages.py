"""Hostile input at the read-only doors: /healthz, /readyz, /metrics and the overview pages outside
production, with hostile paths, methods, queries and headers. Never a 500, never a write."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.strategies import QUERY_KEYS, QUERY_VALUES, latin1_text, sweep_settings
from tests.hostile.world import BASE_URL, MARKS, SHOP, TRIED, World, fingerprint, has_nul

pytestmark = MARKS


def test_health_metrics_and_read_only_pages(world: World) -> None:
    world.seed()
    queries = st.lists(st.tuples(QUERY_KEYS | QUERY_VALUES, QUERY_VALUES), max_size=3)
    names = ["Accept", "X-Forwarded-For", "User-Agent", "Accept-Language", "X-Request-Id"]
    header_lists = st.lists(st.tuples(st.sampled_from(names), latin1_text(200)), max_size=3)
    path_segment = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/?#"), min_size=1, max_size=60)

    @sweep_settings(100)
    @given(data=st.data())
    def sweep(data: st.DataObject) -> None:
        paths = ["/healthz", "/readyz", "/metrics", "/", "/shops/1", "/shops/999999999999999", "/shops/-1",
                 "/shops/1/customers/501"]  # fmt: skip
        path = data.draw(st.sampled_from(paths), label="path")
        if data.draw(st.integers(0, 3)) == 0:
            path = f"/shops/{world.shop_ids[SHOP]}/customers/{data.draw(path_segment, label='customer')}"
        method = data.draw(st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]))
        query = data.draw(queries, label="query")
        headers = data.draw(header_lists, label="headers")
        before = fingerprint(world.db)
        TRIED["GET /healthz /readyz /metrics /shops"] += 1
        response = world.client.open(path, method=method, query_string=query, headers=headers, base_url=BASE_URL)
        world.check_answer(response, f"{method} {path}")
        if has_nul(path, query):
            assert response.status_code == 400
        elif path in ("/healthz", "/readyz", "/metrics") and method in ("GET", "HEAD"):
            assert response.status_code == 200
        assert fingerprint(world.db) == before
        world.check_logs_and_network(f"{method} {path}")

    sweep()
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert "clawback_deliveries" in metrics and "clawback_queue_depth" in metrics
