"""Settings come from documented environment variables; production refuses unsafe ones by name.
Credentials are encrypted at rest with a rotatable key ring (app.crypto.Vault)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from app.config import DEV_ENCRYPTION_KEY, DEV_SECRET_KEY, Settings, load_settings
from app.crypto import Vault
from app.db import Database
from app.errors import ConfigError
from app.models import Shop
from app.shops import read_credentials
from web import create_app
from web.cli import cli

ENV_NAMES = (
    "CLAWBACK_ENV", "CLAWBACK_DATABASE_URL", "CLAWBACK_SECRET_KEY", "CLAWBACK_ENCRYPTION_KEY", "CLAWBACK_APP_URL",
    "CLAWBACK_MAX_BODY_BYTES", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "SHOPIFY_SCOPES", "SHOPIFY_OLD_API_SECRET",
    "CLAWBACK_QUEUE_URL", "CLAWBACK_DEV_LOGIN", "CLAWBACK_WORKER_HEARTBEAT_S", "CLAWBACK_WORKER_STALE_S",
    "CLAWBACK_WORKER_RESTART_S",
)  # fmt: skip
GOOD_SECRET = "s" * 32
PRODUCTION = {
    "CLAWBACK_ENV": "production",
    "CLAWBACK_SECRET_KEY": GOOD_SECRET,
    "CLAWBACK_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "CLAWBACK_APP_URL": "https://loyalty.example.com",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of our variables set, in an empty working directory."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# --- settings -------------------------------------------------------------------------------------


def test_every_setting_is_read_from_its_documented_variable(environ: pytest.MonkeyPatch) -> None:
    set_env(environ, {
        "CLAWBACK_ENV": "test", "CLAWBACK_DATABASE_URL": "postgresql://u:p@db/clawback",
        "CLAWBACK_SECRET_KEY": "k" * 40, "CLAWBACK_ENCRYPTION_KEY": "new,old", "CLAWBACK_APP_URL": "https://a.example",
        "CLAWBACK_MAX_BODY_BYTES": "2048", "SHOPIFY_API_KEY": "api-key", "SHOPIFY_API_SECRET": "api-secret",
        "SHOPIFY_SCOPES": "read_orders", "SHOPIFY_OLD_API_SECRET": "old-secret",
        "CLAWBACK_QUEUE_URL": "redis://127.0.0.1:6379/0", "CLAWBACK_DEV_LOGIN": "true",
        "CLAWBACK_WORKER_HEARTBEAT_S": "2", "CLAWBACK_WORKER_STALE_S": "30", "CLAWBACK_WORKER_RESTART_S": "0.5",
    })  # fmt: skip
    assert Settings().model_dump() == {
        "env": "test", "database_url": "postgresql://u:p@db/clawback", "secret_key": "k" * 40,
        "encryption_key": "new,old", "app_url": "https://a.example", "max_body_bytes": 2048,
        "shopify_api_key": "api-key", "shopify_api_secret": "api-secret", "shopify_scopes": "read_orders",
        "shopify_old_api_secret": "old-secret", "queue_url": "redis://127.0.0.1:6379/0", "dev_login": True,
        "worker_heartbeat_s": 2.0, "worker_stale_s": 30.0, "worker_restart_s": 0.5,
    }  # fmt: skip


def test_development_defaults_need_no_configuration(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.env == "development"
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'clawback.db'}"
    assert (settings.secret_key, settings.encryption_key) == (DEV_SECRET_KEY, DEV_ENCRYPTION_KEY)
    assert settings.app_url == "http://127.0.0.1:8000"
    environ.setenv("CLAWBACK_ENV", "test")
    assert load_settings().secret_key == DEV_SECRET_KEY
    environ.delenv("CLAWBACK_ENV")
    app = create_app()
    assert app.config["SECRET_KEY"] == DEV_SECRET_KEY
    app.extensions["clawback"].db.dispose()


def test_production_starts_with_proper_secrets(environ: pytest.MonkeyPatch) -> None:
    set_env(environ, PRODUCTION)
    assert load_settings().env == "production"


UNSAFE = [
    pytest.param("CLAWBACK_SECRET_KEY", None, id="secret-key-missing"),
    pytest.param("CLAWBACK_SECRET_KEY", "", id="secret-key-empty"),
    pytest.param("CLAWBACK_SECRET_KEY", DEV_SECRET_KEY, id="secret-key-default"),
    pytest.param("CLAWBACK_SECRET_KEY", "s" * 31, id="secret-key-short"),
    pytest.param("CLAWBACK_ENCRYPTION_KEY", None, id="encryption-key-missing"),
    pytest.param("CLAWBACK_ENCRYPTION_KEY", "", id="encryption-key-empty"),
    pytest.param("CLAWBACK_ENCRYPTION_KEY", DEV_ENCRYPTION_KEY, id="encryption-key-default"),
    pytest.param("CLAWBACK_APP_URL", None, id="app-url-missing"),
    pytest.param("CLAWBACK_APP_URL", "http://loyalty.example.com", id="app-url-http"),
]


@pytest.mark.parametrize(("name", "value"), UNSAFE)
def test_production_refuses_an_unsafe_value_and_names_the_variable(
    environ: pytest.MonkeyPatch, name: str, value: str | None
) -> None:
    set_env(environ, PRODUCTION)
    if value is None:
        environ.delenv(name)
    else:
        environ.setenv(name, value)
    with pytest.raises(ConfigError, match="Refusing to start in production") as refused:
        load_settings()
    assert name in str(refused.value)
    assert str(refused.value).count("CLAWBACK_") == 1, "only the unsafe variable is named"


def test_production_lists_every_problem_at_once(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("CLAWBACK_ENV", "production")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    for name in ("CLAWBACK_SECRET_KEY", "CLAWBACK_ENCRYPTION_KEY", "CLAWBACK_APP_URL"):
        assert name in str(refused.value)


def test_create_app_refuses_production_with_default_secrets(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("CLAWBACK_ENV", "production")
    environ.setenv("CLAWBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    with pytest.raises(ConfigError, match="CLAWBACK_SECRET_KEY"):
        create_app()


def test_create_app_refuses_explicit_production_settings_with_default_secrets(tmp_path: Path) -> None:
    settings = Settings(env="production", database_url=f"sqlite:///{tmp_path / 'app.db'}")
    with pytest.raises(ConfigError, match="CLAWBACK_SECRET_KEY"):
        create_app(settings)


# --- the vault --------------------------------------------------------------------------------------

FERNET_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize("key", [FERNET_KEY, "a long passphrase, not a Fernet key"], ids=["fernet-key", "passphrase"])
def test_vault_round_trip(key: str) -> None:
    vault = Vault(key)
    token = vault.encrypt("shpat_secret")
    assert token != "shpat_secret"
    assert "shpat_secret" not in token
    assert vault.decrypt(token) == "shpat_secret"
    assert Vault(key).decrypt(token) == "shpat_secret", "a new vault with the same key reads it"


def test_a_fernet_key_is_used_as_it_is() -> None:
    token = Vault(FERNET_KEY).encrypt("x")
    assert Fernet(FERNET_KEY.encode()).decrypt(token.encode()) == b"x"


def test_key_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_token = Vault(old).encrypt("secret")
    ring = Vault(f" {new} , {old} ")  # newest first; spaces around the commas are fine
    assert ring.decrypt(old_token) == "secret"
    assert Vault(new).decrypt(ring.encrypt("fresh")) == "fresh", "the ring encrypts with the newest key"
    rotated = ring.rotate(old_token)
    assert Vault(new).decrypt(rotated) == "secret"
    with pytest.raises(ConfigError):
        Vault(old).decrypt(rotated)


@pytest.mark.parametrize(
    "token", [Vault("the right key").encrypt("secret"), "not a token at all"], ids=["another-key", "garbage"]
)
def test_a_token_the_key_cannot_open_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError, match="CLAWBACK_ENCRYPTION_KEY"):
        Vault("the wrong key").decrypt(token)


@pytest.mark.parametrize("keys", ["", " ", " , "])
def test_an_empty_key_ring_is_a_config_error(keys: str) -> None:
    with pytest.raises(ConfigError, match="CLAWBACK_ENCRYPTION_KEY"):
        Vault(keys)


WOO_SECRETS = {"webhook_secret": "whsec_plain", "consumer_key": "ck_plain_123", "consumer_secret": "cs_plain_456"}
SHOP_ADDS = [
    pytest.param(
        "--platform shopify --domain plain.myshopify.com --token shpat_0123456789abcdef",
        {"access_token": "shpat_0123456789abcdef"},
        id="shopify-token",
    ),
    pytest.param(
        "--platform woocommerce --url https://woo.example.com --webhook-secret whsec_plain"
        " --key ck_plain_123 --secret cs_plain_456",
        WOO_SECRETS,
        id="woocommerce-secrets",
    ),
]


@pytest.mark.parametrize(("args", "credentials"), SHOP_ADDS)
def test_shop_credentials_are_not_stored_in_plaintext(
    runner: FlaskCliRunner, db: Database, app, args: str, credentials: dict[str, str]
) -> None:
    result = runner.invoke(cli, ["shop", "add", *args.split()])
    assert result.exit_code == 0, result.output
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM shops"))]
    assert len(rows) == 1
    stored = json.dumps(rows, default=str)
    for secret in credentials.values():
        assert secret not in stored
    with db.session() as session:
        shop = session.get(Shop, rows[0]["id"])
        assert read_credentials(app.extensions["clawback"].vault, shop) == credentials


def test_cli_reports_unsafe_production_settings_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from web.cli import cli

    monkeypatch.setenv("CLAWBACK_ENV", "production")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 2
    assert "CLAWBACK_SECRET_KEY" in result.output
    assert "Traceback" not in result.output
