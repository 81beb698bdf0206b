"""Load generator, run as its own process: signed Shopify deliveries of realistic size (5–15 KB
order payloads; create, paid, updated with refunds, cancelled; a share of exact duplicates) sent
over `concurrency` connections for a fixed count. Prints one JSON object with the figures."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import random
import threading
import time
import uuid
from typing import Any

TOPICS = ("orders/create", "orders/paid", "orders/updated", "orders/cancelled")


def order(order_id: int, customer_id: int, step: int, rng: random.Random) -> dict[str, Any]:
    """A Shopify-shaped order at `step` of create → paid → refunded → cancelled."""
    lines = [
        {
            "id": order_id * 100 + i,
            "title": f"Item {i} " + "x" * rng.randint(40, 120),
            "quantity": 1,
            "price": "25.00",
            "sku": f"SKU-{i:05d}",
            "vendor": "Bench Co",
            "properties": [],
            "price_set": {
                "shop_money": {"amount": "25.00", "currency_code": "USD"},
                "presentment_money": {"amount": "25.00", "currency_code": "USD"},
            },
            "tax_lines": [],
            "discount_allocations": [],
        }
        for i in range(rng.randint(14, 36))
    ]
    total = 25 * len(lines)
    refunds = []
    if step >= 2:
        refunds = [
            {
                "id": order_id * 10 + 1,
                "created_at": "2026-11-20T10:00:00Z",
                "transactions": [{"id": order_id * 10 + 2, "kind": "refund", "status": "success", "amount": "25.00"}],
            }
        ]
    current = total - (25 if step >= 2 else 0)
    money = {
        "shop_money": {"amount": f"{current}.00", "currency_code": "USD"},
        "presentment_money": {"amount": f"{current}.00", "currency_code": "USD"},
    }
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "email": f"c{customer_id}@example.com",
        "currency": "USD",
        "financial_status": ["pending", "paid", "partially_refunded", "refunded"][step],
        "cancelled_at": "2026-11-20T11:00:00Z" if step == 3 else None,
        "updated_at": f"2026-11-20T10:{step:02d}:00Z",
        "created_at": "2026-11-20T09:00:00Z",
        "current_total_price_set": money,
        "total_price_set": money,
        "tags": "bench, vip",
        "customer": {"id": customer_id, "email": f"c{customer_id}@example.com", "tags": ""},
        "line_items": lines,
        "refunds": refunds,
        "discount_codes": [],
        "shipping_address": {"address1": "1 Bench Street", "city": "Loadville", "zip": "00000", "country": "US"},
    }


def deliveries(count: int, duplicate_share: float, seed: int) -> list[tuple[str, bytes, str]]:
    rng = random.Random(seed)
    out: list[tuple[str, bytes, str]] = []
    n = 0
    while len(out) < count:
        n += 1
        for step, topic in enumerate(TOPICS):
            body = json.dumps(order(10_000 + n, 500 + n % 2000, step, rng), separators=(",", ":")).encode()
            out.append((topic, body, str(uuid.uuid4())))
            if rng.random() < duplicate_share and len(out) < count:
                out.append(out[-1])  # the same delivery again: the same webhook id
            if len(out) >= count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duplicates", type=float, default=0.05)
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--shop", default="bench.myshopify.com")
    args = parser.parse_args()
    work = deliveries(args.count, args.duplicates, seed=7)
    sizes = [len(body) for _, body, _ in work]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[str, int] = {}
    cursor = iter(range(len(work)))

    def sender() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            topic, body, webhook_id = work[i]
            signature = base64.b64encode(hmac.new(args.secret.encode(), body, hashlib.sha256).digest()).decode()
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature,
                "X-Shopify-Shop-Domain": args.shop,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-API-Version": "2026-07",
            }
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
                conn.request("POST", "/webhooks/shopify", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                conn.close()
                elapsed = time.perf_counter() - started
                status = json.loads(answer).get("status", str(response.status)) if answer else str(response.status)
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
                    if response.status != 200:
                        errors.append(f"{response.status}")
            except Exception as exc:
                with lock:
                    errors.append(type(exc).__name__)

    threads = [threading.Thread(target=sender) for _ in range(args.concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    print(
        json.dumps(
            {
                "sent": len(work),
                "unique": len({w[2] for w in work}),
                "wall_s": round(wall, 3),
                "per_s": round(len(latencies) / wall, 1),
                "p50_ms": round(q(0.5), 2),
                "p99_ms": round(q(0.99), 2),
                "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
                "errors": len(errors),
                "error_kinds": sorted(set(errors))[:5],
                "statuses": statuses,
                "body_kb_min": round(min(sizes) / 1024, 1),
                "body_kb_max": round(max(sizes) / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
