"""In-process profile of webhook intake and processing: `python -m bench.profile [--count N]`.

No HTTP server and no second process: the Flask test client posts the load generator's signed
deliveries one after another, then the job worker's code drains them, each half timed and, with
`--cprofile`, profiled (the top functions by cumulative time are printed). Useful to see where
the milliseconds of one delivery go; `python -m bench.run` is the figure of record.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import deliveries
from bench.run import SECRET, SHOP


def _headers(topic: str, body: bytes, webhook_id: str) -> dict[str, str]:
    import base64
    import hashlib
    import hmac

    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-API-Version": "2026-07",
    }


def _timed(label: str, profile: bool, fn: Any, count: int, sort: str = "cumulative") -> None:
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    fn()
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{label}: {count} in {elapsed:.2f} s = {count / elapsed:.0f}/s, {elapsed / count * 1000:.2f} ms each "
        f"({cpu / count * 1000:.2f} ms of CPU: this process's, whatever else the machine runs)"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(sort).print_stats(45)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="with --cprofile: cumulative or tottime")
    parser.add_argument("--queue", default="", help="CLAWBACK_QUEUE_URL (default: a SQLite file beside the db)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawback-profile-") as tmp:
        os.environ.update({
            "CLAWBACK_ENV": "development",
            "CLAWBACK_DATABASE_URL": f"sqlite:///{Path(tmp) / 'profile.db'}",
            "CLAWBACK_QUEUE_URL": args.queue,
            "SHOPIFY_API_SECRET": SECRET,
        })  # fmt: skip
        from app import migrate
        from web import create_app
        from web.cli import cli

        migrate.upgrade(os.environ["CLAWBACK_DATABASE_URL"])
        app = create_app()
        runner = app.test_cli_runner()
        for argv in (
            ["shop", "add", "--platform", "shopify", "--domain", SHOP],
            ["settings", "set", "--shop", SHOP, "revert.enabled=true"],
        ):
            result = runner.invoke(cli, argv)
            assert result.exit_code == 0, result.output
        work = deliveries(args.count, 0.05, seed=7)
        client = app.test_client()

        def post_all() -> None:
            for topic, body, webhook_id in work:
                response = client.post("/webhooks/shopify", data=body, headers=_headers(topic, body, webhook_id))
                assert response.status_code == 200, response.get_data(as_text=True)

        _timed("intake", args.cprofile, post_all, len(work), args.sort)
        jobs = app.extensions["clawback"].jobs
        unique = len({w[2] for w in work})

        def drain() -> None:
            while jobs.poll_deliveries():  # what a worker does first: the stored deliveries, in batches
                pass
            _drain_huey(jobs.huey)  # then whatever was queued (retries)

        _timed("process", args.cprofile, drain, unique, args.sort)
        from sqlalchemy import text

        with app.extensions["clawback"].db.engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")).all())
            entries = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
        print(f"deliveries {statuses}, ledger entries {entries}")
        print(runner.invoke(cli, ["check"]).output.strip())


def _drain_huey(huey: Any) -> None:
    while (task := huey.dequeue()) is not None:
        huey.execute(task)


if __name__ == "__main__":
    main()
