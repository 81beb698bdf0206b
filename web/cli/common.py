"""What every `clawback` command shares: refusing bad input (exit 2), a unit of work on a migrated
database, JSON output, and ISO times on the command line."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from sqlalchemy import inspect
from sqlmodel import Session

from app.errors import ClawbackError
from web.extensions import Services, services

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """Refused input: a clear message on stderr and exit status 2. Nothing was written."""

    exit_code = 2


def refuses_bad_input(fn: F) -> F:
    """Turn domain errors into CliError; the session's rollback has already undone any write."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClawbackError as exc:
            raise CliError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A committed-or-rolled-back session on a database that has been migrated."""
    svc: Services = services()
    if "alembic_version" not in inspect(svc.db.engine).get_table_names():
        raise CliError("the database has no schema yet: run `clawback db upgrade` first")
    with svc.db.session() as session:
        yield session


def emit(data: Any) -> None:
    click.echo(json.dumps(data, sort_keys=True, default=str))


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"'{value}' is not an ISO 8601 time (e.g. 2026-11-23T12:00:00+00:00)") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
