"""gunicorn, embedded: `clawback serve` runs the app factory under gunicorn's own arbiter."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from web import create_app
from web.supervisor import JobWorker

log = logging.getLogger(__name__)


class _Arbiter(Arbiter):
    """gunicorn's arbiter, also keeping `clawback serve`'s job worker running: see web/supervisor.py
    for why here. Both hooks run in the arbiter's one thread, in its main loop."""

    job_worker: JobWorker | None = None

    def reap_workers(self) -> None:
        if self.job_worker is not None:
            self.job_worker.reap()  # before gunicorn's waitpid(-1), which would take its exit status
        super().reap_workers()

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.job_worker is not None:
            self.job_worker.tick()


class _Server(BaseApplication):
    def __init__(self, options: dict[str, Any], job_worker: JobWorker | None = None) -> None:
        self.options = options
        self.job_worker = job_worker
        super().__init__()

    def run(self) -> None:
        """BaseApplication.run, with our arbiter."""
        try:
            arbiter = _Arbiter(self)
            arbiter.job_worker = self.job_worker
            arbiter.run()
        except RuntimeError as exc:
            print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
            sys.exit(1)

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


def run(host: str, port: int, workers: int, job_worker: JobWorker | None = None) -> None:
    """gunicorn until it stops; meanwhile its arbiter restarts `job_worker` (started already) if it dies."""
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
    }, job_worker).run()  # fmt: skip
