"""End to end: the installed `clawback` script seeds the demo, then serves it under gunicorn.

Always SQLite (a file in tmp_path), whatever CLAWBACK_TEST_DATABASE_URL says: this is the
zero-install path a new user takes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

CLAWBACK = Path(sys.executable).parent / "clawback"
STARTUP_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clawback_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWBACK_", "SHOPIFY_"))}
    return env | {
        "CLAWBACK_ENV": "development",
        "CLAWBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'clawback.db'}",
        # gunicorn's control socket goes here rather than replacing the one in ~/.gunicorn of a running server.
        "XDG_RUNTIME_DIR": str(tmp_path),
    }


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(ready: Callable[[], bool], server: subprocess.Popen[bytes], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"clawback serve exited with {server.returncode}:\n{log()}")
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"clawback serve was not ready in {STARTUP_SECONDS}s:\n{log()}")


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


def test_demo_then_serve(tmp_path: Path) -> None:
    assert CLAWBACK.exists(), f"the console script is not installed next to {sys.executable}"
    env = clawback_env(tmp_path)
    demo = subprocess.run([CLAWBACK, "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert demo.returncode == 0, demo.stderr
    assert "Demo shop 'demo.clawback.test' is ready" in demo.stdout

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"

    def log() -> str:
        return f"--- stdout\n{stdout.read_text()}\n--- stderr\n{stderr.read_text()}"

    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [CLAWBACK, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path, stdout=out, stderr=err
        )
    try:
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, server, log)
        assert json.loads(get(f"{base}/healthz")[1]) == {"status": "ok", "database": "ok"}
        status, index = get(f"{base}/")
        assert status == 200
        assert "Clawback Demo Store" in index
        assert f"Clawback is running: open {base}/" in stdout.read_text()
        wait_for(lambda: stderr.read_text().count("Booting worker with pid") == 2, server, log)
        # The merchant pages carry their session token in `t`: the access log keeps the path only.
        assert get(f"{base}/healthz?t=secret-session-token")[0] == 200
        wait_for(lambda: '"GET /healthz HTTP/1.1" 200' in log(), server, log)
    finally:
        stop(server)
    assert server.returncode == 0, f"clawback serve did not stop cleanly on SIGTERM:\n{log()}"
    assert "secret-session-token" not in log()


@pytest.mark.parametrize(
    ("ignores", "returncode"),
    [((), -signal.SIGINT), (("SIGINT",), -signal.SIGTERM), (("SIGINT", "SIGTERM"), -signal.SIGKILL)],
)
def test_serve_stops_its_worker_even_when_it_misses_a_signal(
    monkeypatch: pytest.MonkeyPatch, ignores: tuple[str, ...], returncode: int
) -> None:
    """A worker still starting (at idle priority, on a busy machine) may miss the graceful SIGINT:
    serve then sends SIGTERM, then SIGKILL, within its bound."""
    from web.cli import processes as cli_module

    monkeypatch.setattr(cli_module, "WORKER_STOP", ((signal.SIGINT, 5.0), (signal.SIGTERM, 5.0)))
    code = (
        "import signal, sys, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        + "".join(f"signal.signal(signal.{name}, signal.SIG_IGN)\n" for name in ignores)
        + "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    started = time.monotonic()
    cli_module._stop_worker(child)
    assert child.returncode == returncode
    assert time.monotonic() - started < 16


def test_a_web_worker_freezes_its_start_up_objects() -> None:
    """gunicorn's post_worker_init: what the worker loaded is out of the collector's full passes."""
    import gc

    from web import server

    gc.unfreeze()
    try:
        server.freeze_startup_objects(None)
        assert gc.get_freeze_count() > 10_000  # the modules and the app: far more than a few
    finally:
        gc.unfreeze()


def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` as bytes on a socket of its own; the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_broken_or_oversized_chunked_bodies_are_4xx_under_gunicorn(tmp_path: Path) -> None:
    """Issue #18, classes 4 and 5, on the real server (gunicorn decodes chunked bodies, the test client
    does not): a chunk size that is not hex raised inside the body's read, a 500; a chunked body over
    the limit was cut to the limit and answered 401. Now 400 and 413, on the webhook's fast path, on
    its Flask route and on the WooCommerce callback, with nothing stored."""
    env = clawback_env(tmp_path) | {"CLAWBACK_MAX_BODY_BYTES": "1000"}
    demo = subprocess.run([CLAWBACK, "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert demo.returncode == 0, demo.stderr
    port = free_port()
    log_file = tmp_path / "serve.log"

    def log() -> str:
        return log_file.read_text()

    with log_file.open("wb") as out:
        server = subprocess.Popen(
            [CLAWBACK, "serve", "--port", str(port), "--workers", "1", "--job-workers", "0"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, server, log)
        head = (
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Shopify-Topic: orders/paid\r\n"
            "X-Shopify-Shop-Domain: demo.clawback.test\r\nX-Shopify-Hmac-Sha256: c2ln\r\nX-Shopify-Webhook-Id: w-1\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        broken = b"zz\r\n{}\r\n0\r\n\r\n"
        oversized = b"".join(b"1f4\r\n" + b" " * 500 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        for path in ("/webhooks/shopify", "/webhooks/shopify?via=route", "/auth/woocommerce/callback"):
            request = head.format(path=path).encode()
            status, body = _raw(port, request + broken)
            assert status == 400 and b"transfer encoding" in body, (path, status, body)
            status, body = _raw(port, request + oversized)
            assert status == 413 and b"larger than 1000 bytes" in body, (path, status, body)
    finally:
        stop(server)
    listed = subprocess.run([CLAWBACK, "deliveries"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", ""), listed
    assert "Traceback" not in log() and '" 500 ' not in log()


def test_the_job_worker_is_restarted_with_a_backoff_that_doubles_to_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """web/supervisor.py on a clock of its own: real processes (which exit at once), invented time.
    The real `clawback serve` and a SIGKILL: tests/test_crash_safety.py."""
    from web import supervisor

    now = [100.0]
    counted: list[int] = []
    worker = supervisor.JobWorker([sys.executable, "-c", "import sys; sys.exit(3)"], first_delay_s=1.0,
                                  count_restart=lambda: counted.append(1), clock=lambda: now[0])  # fmt: skip
    worker.tick()
    assert worker.process is None  # nothing started, nothing to restart
    worker.start()

    def dies_after(ran_s: float) -> float:
        """The worker exits `ran_s` after its start: the delay before the next one starts."""
        assert worker.process is not None
        worker.process.wait(timeout=10)
        now[0] = worker.started_at + ran_s
        dead = worker.process
        worker.tick()  # notices, logs, schedules
        assert worker.restart_at is not None
        delay = worker.restart_at - now[0]
        now[0] += delay - 0.01
        worker.tick()
        assert worker.process is dead  # not yet
        now[0] += 0.01
        worker.tick()
        assert worker.process is not dead and worker.restart_at is None  # started again
        return delay

    with caplog.at_level(logging.WARNING, logger="web.supervisor"):
        assert [dies_after(0.5) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
        assert dies_after(supervisor.STABLE_S) == 1  # it stayed up a minute: from the start again
        assert dies_after(0.5) == 2
    assert worker.restarts == len(counted) == 10
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 10
    assert warnings[0].endswith(") exited with status 3 after 0.5 s; starting another in 1 s")

    # A worker killed by a signal says which; a worker that cannot even start is tried again later.
    assert worker.process is not None
    worker.process.wait(timeout=10)
    worker.argv = [str(Path(sys.executable).parent / "no-such-program")]
    now[0] += 1
    worker.tick()
    assert worker.restart_at is not None
    now[0] = worker.restart_at
    with caplog.at_level(logging.WARNING, logger="web.supervisor"):
        worker.tick()  # the start fails: logged, tried again later, never raised into gunicorn's loop
    assert worker.restart_at is not None and worker.restart_at > now[0]
    assert "could not start a job worker; trying again in 8 s" in caplog.messages
    assert worker.restarts == 10
    assert supervisor.describe(-signal.SIGKILL) == "was killed by SIGKILL"
    assert supervisor.describe(0) == "exited with status 0"
