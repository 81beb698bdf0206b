"""Running Clawback: `db upgrade` (the schema), `serve` (gunicorn, with the job worker beside it)
and `worker` (the job worker on its own)."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys

import click
from flask.cli import AppGroup
from huey import MemoryHuey

from app import migrate
from app.jobs import PRIORITIES, count_worker_restart, make_huey, set_priority
from web.cli.common import CliError
from web.extensions import services

commands = AppGroup()  # web/cli/__init__.py adds these to `clawback`


@commands.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    url = services().settings.database_url
    migrate.upgrade(url, revision)
    click.echo(f"database is at {revision}: {services().db.engine.url.render_as_string(hide_password=True)}")


@commands.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn workers")
@click.option(
    "--job-workers",
    default=2,
    show_default=True,
    type=click.IntRange(0, 64),
    help="job worker threads started beside the web app (0: run `clawback worker` elsewhere)",
)
@click.option(
    "--migrate/--no-migrate",
    "migrate_first",
    default=True,
    show_default=True,
    help="apply migrations first (turn off when a release step does it, e.g. several replicas)",
)
def serve(host: str, port: int, workers: int, job_workers: int, migrate_first: bool) -> None:
    """Run the app under gunicorn, and the job worker beside it (migrating the database first)."""
    from web.server import run
    from web.supervisor import JobWorker

    settings = services().settings
    if migrate_first:
        migrate.upgrade(settings.database_url)
    job_worker = None
    if job_workers:
        # Its restarts are counted in the queue's storage, which every web worker reads for
        # /metrics (app/jobs.py); a queue in this process only could run no worker at all.
        queue = make_huey(settings.queue_url, services().db.url)
        if isinstance(queue, MemoryHuey):
            raise CliError("CLAWBACK_QUEUE_URL=memory:// keeps jobs inside one process; a worker cannot share it")
        # The same program, in its own process, so a slow job never holds a web worker.
        # At idle CPU priority: on this machine the web's answers come first (see set_priority).
        argv = [sys.executable, "-c", "from web.cli import cli; cli()", "worker", "--workers", str(job_workers),
                "--priority", "idle"]  # fmt: skip
        # gunicorn's arbiter restarts it if it dies (web/supervisor.py).
        job_worker = JobWorker(
            argv, first_delay_s=settings.worker_restart_s, count_restart=lambda: count_worker_restart(queue)
        )
        job_worker.start()
    try:
        run(host=host, port=port, workers=workers, job_worker=job_worker)
    finally:
        if job_worker is not None and job_worker.process is not None:
            _stop_worker(job_worker.process)  # (nothing to do if it is dead, between two restarts)


WORKER_STOP = ((signal.SIGINT, 8.0), (signal.SIGTERM, 3.0))  # then SIGKILL


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGINT, Huey's graceful stop (running jobs finish first); then SIGTERM, its immediate stop
    (a job cut short is retried: processing is idempotent); then SIGKILL. A worker still starting
    at idle priority on a busy machine can miss the first signal, and the whole stop stays within
    the 15 s a process manager usually grants (a job never commits half its work)."""
    for sig, timeout_s in WORKER_STOP:
        worker.send_signal(sig)
        try:
            worker.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
    worker.kill()
    worker.wait(timeout=5)


@commands.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="worker threads")
@click.option(
    "--periodic/--no-periodic",
    default=True,
    show_default=True,
    help="run the schedules (sweep, releases, write-backs, reconciliation); one replica is enough",
)
@click.option(
    "--priority",
    type=click.Choice(PRIORITIES),
    default="normal",
    show_default=True,
    help="CPU priority: idle beside web workers on the same machine (what `serve` starts), normal alone",
)
def worker(workers: int, periodic: bool, priority: str) -> None:
    """Run the job worker: webhook processing, write-backs, releases and sweeps, with retries."""
    jobs = services().jobs
    if isinstance(jobs.huey, MemoryHuey):
        raise CliError("CLAWBACK_QUEUE_URL=memory:// keeps jobs inside one process; a worker cannot share it")
    set_priority(priority)  # before the consumer starts its threads: they inherit it
    gc.freeze()  # its start-up objects, as the web workers do (web/server.py): no full collection walks them
    click.echo(f"Clawback worker: {workers} threads on {type(jobs.huey).__name__}", err=True)
    # Poll at least every half second when idle (SQLite storage polls; Redis and PostgreSQL block),
    # so a webhook's effect shows within a second or two.
    # It records a heartbeat every few seconds, which /readyz reads (app/jobs.py _Consumer).
    jobs.huey.create_consumer(workers=workers, worker_type="thread", periodic=periodic, max_delay=0.5,
                              heartbeat_s=services().settings.worker_heartbeat_s).run()  # fmt: skip
