"""Fixtures in the flaskr style: `app`, `client`, `runner`, plus `db` and `books` for the domain.

Every test gets a fresh, migrated database. SQLite by default (a copy of a template migrated once
per run); PostgreSQL when CLAWBACK_TEST_DATABASE_URL names a server (one database per xdist
worker, migrated once, truncated between tests). CI runs the suite once each way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import migrate
from app.config import Settings
from app.db import Database, normalize_url
from tests.factories import Books

if TYPE_CHECKING:
    from tests.hostile.world import World

PG_URL = os.environ.get("CLAWBACK_TEST_DATABASE_URL", "")
TEST_ENCRYPTION_KEY = "test-encryption-key"
SHOPIFY_API_KEY = "test-api-key"
SHOPIFY_API_SECRET = "test-api-secret"


def pytest_report_header() -> str:
    where = make_url(normalize_url(PG_URL)).render_as_string() if PG_URL else "SQLite (a fresh file per test)"
    return f"clawback database: {where}"


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    """A migrated database to clone: a SQLite file, or a PostgreSQL database for this worker."""
    if not PG_URL:
        path = tmp_path_factory.mktemp("template") / "clawback.db"
        migrate.upgrade(f"sqlite:///{path}")
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return str(path)
    server = make_url(normalize_url(PG_URL))
    name = f"{server.database or 'clawback'}_test_{worker_id}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def _fresh(template: str, folder: Path) -> str:
    """A clean, migrated database: a copy of the SQLite template, or the worker's database emptied."""
    if not PG_URL:
        target = folder / f"clawback-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    engine = create_engine(template)
    with engine.begin() as conn:
        query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        tables = [r[0] for r in conn.execute(text(query))]
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return template


@pytest.fixture
def database_url(_template: str, tmp_path: Path) -> str:
    return _fresh(_template, tmp_path)


@pytest.fixture(scope="session")
def fresh_database(_template: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """For hypothesis, whose examples cannot use function-scoped fixtures: a new database per call."""
    folder = tmp_path_factory.mktemp("examples")
    return lambda: _fresh(_template, folder)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        encryption_key=TEST_ENCRYPTION_KEY,
        shopify_api_key=SHOPIFY_API_KEY,
        shopify_api_secret=SHOPIFY_API_SECRET,
        app_url="https://clawback.example",
        # The queue in this process: a test runs the worker's steps itself (tests.helpers.work) and
        # sees what a worker process would have done.
        queue_url="memory://",
    )


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Build another app instance: the `settings` above with `changes` applied (the same database
    unless `database_url` is changed), TESTING on. Each one's database is disposed at teardown."""
    from web import create_app

    built: list[Flask] = []

    def make(**changes: Any) -> Flask:
        application = create_app(settings.model_copy(update=changes))
        application.config["TESTING"] = True
        built.append(application)
        return application

    yield make
    for application in built:
        svc = application.extensions["clawback"]
        svc.deliveries.close()
        svc.db.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def db(app) -> Database:  # type: ignore[no-untyped-def]
    return app.extensions["clawback"].db


@pytest.fixture
def books(app) -> Books:  # type: ignore[no-untyped-def]
    svc = app.extensions["clawback"]
    return Books(svc.db, svc.vault, store=svc.deliveries)


@pytest.fixture
def world(app: Flask, client: FlaskClient, db: Database, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    """The hostile-input harness (tests/hostile/world.py) over this test's app: requests and the
    checks every answer must pass, with nothing let out to the network. The sweeps in tests/hostile
    use it, and so do the regression tests of the bugs they found."""
    from tests.hostile.world import watching

    with watching(app, client, db, caplog) as found:
        yield found


@pytest.fixture
def installed(world: World) -> World:
    """`world` with its two Shopify shops installed (SHOP and OTHER, with an access token)."""
    world.ensure_shops()
    return world


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(Path.cwd() / ".hypothesis" / "tmp", ignore_errors=True)
