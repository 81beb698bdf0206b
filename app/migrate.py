"""Run Alembic from code (`clawback db upgrade`, tests) against a given database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db import normalize_url

# The migration scripts, found by path rather than by importing the `migrations` package: it is
# installed beside `app` (pyproject.toml's packages), and its modules are Alembic's to load.
SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Alembic's ini interpolation treats '%' specially; URLs may contain escaped passwords.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
