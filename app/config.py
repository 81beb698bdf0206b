"""One typed settings object, read from the environment (`CLAWBACK_*`, `SHOPIFY_*`).

Outside development and tests, missing or default secrets stop the app at start with a message
that names the variable to set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigError

DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105 - the known default we refuse in production
DEV_ENCRYPTION_KEY = "dev-encryption-key-not-for-production"


def default_database_url() -> str:
    """SQLite in `./instance/`, created on demand: the zero-install default."""
    return f"sqlite:///{Path.cwd() / 'instance' / 'clawback.db'}"


class Settings(BaseSettings):
    """Everything the app reads from its environment. Names are a contract (see README)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = Field("development", alias="CLAWBACK_ENV")
    database_url: str = Field(default_factory=default_database_url, alias="CLAWBACK_DATABASE_URL")
    secret_key: str = Field(DEV_SECRET_KEY, alias="CLAWBACK_SECRET_KEY")
    # One key, or several separated by commas (newest first) while rotating.
    encryption_key: str = Field(DEV_ENCRYPTION_KEY, alias="CLAWBACK_ENCRYPTION_KEY")
    app_url: str = Field("http://127.0.0.1:8000", alias="CLAWBACK_APP_URL")
    shopify_api_key: str = Field("", alias="SHOPIFY_API_KEY")
    shopify_api_secret: str = Field("", alias="SHOPIFY_API_SECRET")
    # The previous secret, accepted for webhooks and session tokens while the secret is rotated.
    shopify_old_api_secret: str = Field("", alias="SHOPIFY_OLD_API_SECRET")
    shopify_scopes: str = Field("read_orders,read_customers,write_customers,write_discounts", alias="SHOPIFY_SCOPES")
    max_body_bytes: int = Field(1_000_000, alias="CLAWBACK_MAX_BODY_BYTES")
    # redis://…, postgresql://… or sqlite:///path; empty: beside the database. memory:// keeps the
    # queue in this process only (tests, which run the worker's steps themselves).
    queue_url: str = Field("", alias="CLAWBACK_QUEUE_URL")
    # GET /dev/login opens the demo shop's pages without a store admin. Never in production.
    dev_login: bool = Field(False, alias="CLAWBACK_DEV_LOGIN")
    # The job worker's liveness (docs/operations.md, "Health, metrics and logs"): how often a worker
    # records that it is alive, how long without one before /readyz says "degraded" (when
    # deliveries wait), and the first delay before `clawback serve` restarts a worker that died
    # (doubling to a minute). The defaults suit production; the tests shorten them.
    worker_heartbeat_s: float = Field(5.0, alias="CLAWBACK_WORKER_HEARTBEAT_S", gt=0)
    worker_stale_s: float = Field(60.0, alias="CLAWBACK_WORKER_STALE_S", gt=0)
    worker_restart_s: float = Field(1.0, alias="CLAWBACK_WORKER_RESTART_S", gt=0)

    def check(self) -> Settings:
        """Refuse unsafe values outside development; return self so it chains."""
        if self.env != "production":
            return self
        problems = []
        if self.secret_key in ("", DEV_SECRET_KEY) or len(self.secret_key) < 32:
            problems.append("CLAWBACK_SECRET_KEY must be set to a random value of 32+ characters")
        if self.encryption_key in ("", DEV_ENCRYPTION_KEY):
            problems.append("CLAWBACK_ENCRYPTION_KEY must be set (a Fernet key, or several comma-separated)")
        if self.dev_login:
            problems.append("CLAWBACK_DEV_LOGIN must not be set in production")
        if not self.app_url.startswith("https://"):
            problems.append("CLAWBACK_APP_URL must be the app's public https:// address")
        if problems:
            raise ConfigError("Refusing to start in production: " + "; ".join(problems) + ".")
        return self


def load_settings(**overrides: object) -> Settings:
    """Read the environment, apply overrides (tests), and check the result."""
    return Settings(**overrides).check()  # type: ignore[arg-type]
