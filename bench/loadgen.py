"""Load generator, run as its own process: signed Shopify deliveries of realistic size (5–15 KB
order payloads; create, paid, updated with refunds, cancelled; a share of exact duplicates) sent
over `concurrency` connections for a fixed count. Prints one JSON object with the figures."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import selectors
import socket
import time
import uuid
from pathlib import Path
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


def request_bytes(port: int, topic: str, body: bytes, webhook_id: str, secret: str, shop: str) -> bytes:
    """One signed delivery as the bytes on the wire, built before the clock starts: the platform
    signs on its own machine, so signing is not part of what the server's answer costs."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    head = (
        f"POST /webhooks/shopify HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Shopify-Topic: {topic}\r\n"
        f"X-Shopify-Hmac-Sha256: {signature}\r\n"
        f"X-Shopify-Shop-Domain: {shop}\r\n"
        f"X-Shopify-Webhook-Id: {webhook_id}\r\n"
        f"X-Shopify-API-Version: 2026-07\r\n"
        f"Connection: close\r\n\r\n"
    )
    return head.encode() + body


class Slot:
    """One of the `concurrency` connections: connect, send the whole request, read the answer."""

    __slots__ = ("answer", "out", "sent", "sock", "started")

    def __init__(self, sock: socket.socket, out: bytes) -> None:
        self.sock, self.out = sock, out
        self.sent = 0
        self.answer = bytearray()
        self.started = time.perf_counter()


def run(
    port: int, wire: list[bytes], concurrency: int, timeout_s: float = 30
) -> tuple[list[tuple[float, float]], list[bytes], list[str], float]:
    """Send every request in `wire` over at most `concurrency` connections at once, each a new
    connection as a platform's webhook delivery is. One thread and a selector: the load generator
    shares the machine with the servers, and threads waiting for the GIL would both take CPU from
    them and add their own waits to the answer times measured."""
    selector = selectors.DefaultSelector()
    timeline: list[tuple[float, float]] = []  # per answer: (connected at, answered at), on the clock
    answers: list[bytes] = []
    errors: list[str] = []
    pending = iter(wire)
    open_slots = 0

    def start() -> bool:
        out = next(pending, None)
        if out is None:
            return False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        slot = Slot(sock, out)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE, slot)
        return True

    def finish(slot: Slot, error: str | None) -> None:
        selector.unregister(slot.sock)
        slot.sock.close()
        if error:
            errors.append(error)
        else:
            timeline.append((slot.started, time.perf_counter()))
            answers.append(bytes(slot.answer))

    began = time.perf_counter()
    for _ in range(concurrency):
        open_slots += start()
    while open_slots:
        events = selector.select(timeout=timeout_s)
        if not events:
            for key in list(selector.get_map().values()):
                finish(key.data, "timeout")
            break
        for key, mask in events:
            slot = key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    slot.sent += slot.sock.send(memoryview(slot.out)[slot.sent :])
                    if slot.sent == len(slot.out):
                        selector.modify(slot.sock, selectors.EVENT_READ, slot)
                    continue
                chunk = slot.sock.recv(65536)
            except OSError as exc:
                finish(slot, type(exc).__name__)
            else:
                if chunk:
                    slot.answer += chunk
                    if not complete(slot.answer):
                        continue
                # Closed as soon as the whole answer is in, as an HTTP client does: gunicorn
                # holds its worker until the client closes (it drains the socket to EOF).
                finish(slot, None if slot.answer else "empty answer")
            open_slots -= 1
            open_slots += start()
    return timeline, answers, errors, time.perf_counter() - began


def complete(answer: bytearray) -> bool:
    """Whether `answer` holds a whole HTTP response (headers and Content-Length bytes of body)."""
    end = answer.find(b"\r\n\r\n")
    if end < 0:
        return False
    for line in bytes(answer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(answer) - end - 4 >= int(value)
    return False  # no length: the answer ends when the server closes


def status_of(answer: bytes) -> tuple[int, str]:
    """(HTTP status, the JSON answer's "status" or the HTTP status as text)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    try:
        return code, str(json.loads(body).get("status", code))
    except ValueError:
        return code, str(code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duplicates", type=float, default=0.05)
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--shop", default="bench.myshopify.com")
    parser.add_argument("--timeline", help="write each answer's connected and answered times here, one per line")
    args = parser.parse_args()
    work = deliveries(args.count, args.duplicates, seed=7)
    sizes = [len(body) for _, body, _ in work]
    wire = [request_bytes(args.port, t, body, wid, args.secret, args.shop) for t, body, wid in work]
    cpu_before = time.process_time()
    first_sent_at = time.time()  # wall clock: the end-to-end phase counts from here, in another process
    timeline, answers, errors, wall = run(args.port, wire, args.concurrency)
    cpu_s = time.process_time() - cpu_before
    statuses: dict[str, int] = {}
    for answer in answers:  # read after the clock stops: it is not the server's time
        code, status = status_of(answer)
        statuses[status] = statuses.get(status, 0) + 1
        if code != 200:
            errors.append(str(code))
    if args.timeline:  # for finding where the slow answers are: all at once (a stall) or spread
        # Seconds on the monotonic clock (time.perf_counter: CLOCK_MONOTONIC, one clock for every
        # process on Linux), so that a server's own timings can be laid beside them.
        Path(args.timeline).write_text("".join(f"{a:.6f} {b:.6f}\n" for a, b in timeline))
    latencies = sorted(b - a for a, b in timeline)

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    print(
        json.dumps(
            {
                "sent": len(work),
                "unique": len({w[2] for w in work}),
                "wall_s": round(wall, 3),
                "first_sent_at": first_sent_at,
                "per_s": round(len(answers) / wall, 1),
                "p50_ms": round(q(0.5), 2),
                "p99_ms": round(q(0.99), 2),
                "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
                "cpu_ms_per_request": round(cpu_s * 1000 / max(len(wire), 1), 3),
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
