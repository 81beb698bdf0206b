"""`clawback serve`'s job worker, kept running: started beside gunicorn, restarted when it dies.

gunicorn replaces a web worker that dies; this does the same for the job worker: a worker that
exits without being asked to (killed, crashed) is logged (a WARNING with its exit status or
signal), counted (`clawback_worker_restarts_total` in /metrics) and started again after a backoff
(1 s, doubling to a minute; back to 1 s once a worker has stayed up a minute), for as long as
serve runs. Stopping serve stops the worker as before (web/cli/processes.py `_stop_worker`).

Why gunicorn's arbiter drives it (web/server.py `_Arbiter`), not a thread watching the process:
serve is the arbiter, so the job worker is the arbiter's child, and the arbiter reaps its
children with waitpid(-1) as soon as SIGCHLD arrives. A watching thread would race it for the
exit status and nearly always lose it (and a thread is a hazard in a process that forks web
workers). So the arbiter's own loop does the work, in its one thread: when a child exits, the
arbiter reaps the job worker with a waitpid of its pid before its own waitpid(-1) (gunicorn does
the same for its "dirty arbiter"), and after every turn of its loop (at least once a second) it
calls `tick`, which restarts a dead worker once its backoff is over. (Were the worker to die in
the microseconds between those two waitpids, gunicorn's would take its status, logged at debug
as an unknown child's, and Popen would report status 0: it is restarted all the same.)

Counting a restart is a write to the queue's storage from the arbiter's loop: a local file by
default; on Redis or PostgreSQL a queue that does not answer holds the loop until it fails (the
worker has been restarted by then, and the web workers keep answering meanwhile).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)
RESTART_MAX_S = 60.0  # the backoff doubles up to this
STABLE_S = 60.0  # a worker that stayed up this long died of something new: the backoff starts over


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class JobWorker:
    """One job worker process (`argv`), restarted with backoff whenever it dies.

    `count_restart` records each restart where every process can read it (the queue's storage:
    app/jobs.py `count_worker_restart`); `clock` is for the tests.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        first_delay_s: float = 1.0,
        count_restart: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.argv = list(argv)
        self.first_delay_s = first_delay_s
        self.delay_s = first_delay_s  # the next restart's delay
        self.count_restart = count_restart
        self.clock = clock
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None  # set while a dead worker waits for its restart
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv)  # noqa: S603 - our own interpreter and module
        self.started_at = self.clock()
        self.restart_at = None
        log.info("job worker started (pid %d)", self.process.pid)

    def reap(self) -> int | None:
        """The worker's exit status once it has exited (its zombie reaped), else None. Popen's
        waitpid names the pid: it never takes another child's status."""
        return None if self.process is None else self.process.poll()

    def tick(self) -> None:
        """Notice that the worker died; restart it once its backoff is over. Never raises: an
        exception here would stop gunicorn's arbiter."""
        now = self.clock()
        if self.restart_at is None:
            code = self.reap()
            if code is None or self.process is None:
                return  # running (or never started)
            ran_s = now - self.started_at
            delay_s = self._backoff(ran_s)
            self.restart_at = now + delay_s
            log.warning(
                "job worker (pid %d) %s after %.1f s; starting another in %.0f s",
                self.process.pid, describe(code), ran_s, delay_s,
            )  # fmt: skip
        if now < self.restart_at:
            return
        try:
            self.start()
        except Exception:  # fork failed (memory, process limits): try again later
            delay_s = self._backoff(0.0)
            self.restart_at = now + delay_s
            log.exception("could not start a job worker; trying again in %.0f s", delay_s)
            return
        self.restarts += 1
        try:
            if self.count_restart is not None:
                self.count_restart()
        except Exception:
            log.warning("could not count the job worker's restart", exc_info=True)

    def _backoff(self, ran_s: float) -> float:
        """The delay before this restart; the next one waits twice as long (up to a minute)."""
        if ran_s >= STABLE_S:
            self.delay_s = self.first_delay_s
        delay_s, self.delay_s = self.delay_s, min(self.delay_s * 2, max(RESTART_MAX_S, self.first_delay_s))
        return delay_s
