"""gunicorn, embedded: `clawback serve` runs the app factory under gunicorn's own arbiter."""

from __future__ import annotations

import gc
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from web import create_app

log = logging.getLogger(__name__)


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app()


def on_ready(host: str, port: int) -> Any:
    def announce(_server: Any) -> None:
        print(f"Clawback is running: open http://{host}:{port}/  (Ctrl+C to stop)", flush=True)

    return announce


def ready_worker(worker: Any) -> None:
    """gunicorn's post_worker_init, once a web worker has loaded the app: its webhook path warmed
    (`Deliveries.warm`), then its start-up objects frozen."""
    svc = worker.wsgi.extensions["clawback"]
    try:
        svc.deliveries.warm()
    except Exception:  # the database may be away at start; the first webhook then opens what it needs
        log.warning("could not warm the webhook path", exc_info=True)
    freeze_startup_objects(worker)


def freeze_startup_objects(_worker: Any) -> None:
    """After a worker has loaded the app: the objects of its start-up (modules, the app, SQLAlchemy's
    mappers; some hundred thousand) go to the collector's permanent generation. They live as long
    as the worker, and a full collection no longer walks them: one took 120 ms in each web worker
    of a benchmark run (2.5 ms frozen), a pause every connection of that worker waited through."""
    gc.freeze()


def run(host: str, port: int, workers: int) -> None:
    _Server({
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-",
        # The path without its query and no referer: the merchant pages carry their session token
        # in `t`, and no token may reach a log.
        "access_log_format": '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"',
        # gunicorn's control socket defaults to one path per user: two servers would share it.
        "control_socket_disable": True,
        "when_ready": on_ready(host, port),
        "post_worker_init": ready_worker,
    }).run()  # fmt: skip
