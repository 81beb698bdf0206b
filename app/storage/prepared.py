"""The job worker's hottest statements, compiled once per dialect and run on the driver's cursor.

A Core statement executed through `Connection.execute` costs about 0.1 ms of SQLAlchemy before
and after the driver's own work (the compiled-cache lookup, an execution context, the processing
of each parameter, a result object): for the two or three statements a worker runs per delivery
that was a fifth of its time, more than SQLite took to run them. A `Prepared` statement asks
SQLAlchemy once per dialect for what it would send (the SQL text, the order of the parameters and
each one's bind processor, as `Connection.execute` would apply them), then hands the driver that
text and the processed values on the cursor of the caller's own connection: the same transaction,
savepoint and locks (ask the session for it where the statement runs: a savepoint is begun when
its block first asks). Driver errors come back as SQLAlchemy's (`DBAPIError.instance`), so callers
catch the same `IntegrityError` as before. Only for plain statements: no expanding IN, no
literal binds, constant column defaults only, no result processing (the rows come back as the
driver returns them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class Compiled:
    """A statement as one dialect's driver takes it: the text, and how to turn values into its
    parameters (a list in the text's order for positional drivers, a dict otherwise)."""

    sql: str
    positional: bool
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # (name, bind processor) in the text's order
    fixed: dict[str, Any]  # the statement's own values (`attempts + 1`: the 1), by name

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        if self.fixed:
            values = {**self.fixed, **values}
        processed = [(n, values[n] if p is None else p(values[n])) for n, p in self.binds]
        return [v for _, v in processed] if self.positional else dict(processed)


class Prepared:
    """`statement` (a Core statement whose values are all bind parameters), ready to run on any
    dialect's driver. `column_keys`: for an INSERT given no VALUES, the columns it sets."""

    def __init__(self, statement: ClauseElement, column_keys: Iterable[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = None if column_keys is None else list(column_keys)
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        """What `dialect`'s driver is given (compiled on first use, then kept)."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            c: Any = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            names = list(c.positiontup) if c.positional else list(dict.fromkeys(c.bind_names.values()))
            binds, fixed = [], {}
            for name in names:
                bind = c.binds[name]
                assert not bind.expanding and not bind.literal_execute, f"{name}: not a plain parameter"
                binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect)))
                if not bind.required:
                    fixed[name] = bind.effective_value
            for column in [*c.insert_prefetch, *c.update_prefetch]:  # Python-side column defaults
                if not column.default.is_scalar:
                    raise ValueError(f"{column.key}: only a constant default can be prepared; give its value")
                fixed[column.key] = column.default.arg
            compiled = self._compiled[dialect.name] = Compiled(str(c), bool(c.positional), tuple(binds), fixed)
        return compiled

    def _run(self, conn: Connection, values: Mapping[str, Any], fetch: bool) -> tuple[Any, ...] | None:
        compiled = self.compiled(conn.dialect)
        parameters = compiled.parameters(values)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, parameters)
            row = cursor.fetchone() if fetch else None
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _error(conn, compiled.sql, parameters, exc, cursor) from exc
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run it and return the first row it returns (RETURNING), or None."""
        return self._run(conn, values, fetch=True)

    def run(self, conn: Connection, values: Mapping[str, Any]) -> None:
        """Run it for its effect."""
        self._run(conn, values, fetch=False)

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run it once per row of values (the driver's executemany)."""
        compiled = self.compiled(conn.dialect)
        parameters = [compiled.parameters(values) for values in rows]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, parameters)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _error(conn, compiled.sql, parameters, exc, cursor) from exc
        finally:
            cursor.close()


def _error(conn: Connection, sql: str, parameters: Any, exc: Any, cursor: Any) -> StatementError:
    """The driver's error as SQLAlchemy reports it; a lost connection (a server restarted or
    dropped it) invalidated, as SQLAlchemy does, so the pool opens a new one and the caller can
    tell (`connection_invalidated`)."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(
        sql, parameters, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
    )
