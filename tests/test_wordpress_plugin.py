"""The companion WordPress plugin: it parses (`php -l`), and the launch address it signs is one the
app accepts, computed by the plugin's own PHP with WordPress's few functions stubbed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.shops import register_shop

PLUGIN = Path(__file__).resolve().parents[1] / "wordpress" / "clawback" / "clawback.php"
PHP = shutil.which("php")
STORE = "https://shop.example.com"

if PHP is None:
    if os.environ.get("CLAWBACK_REQUIRE_SERVICES"):
        raise RuntimeError("php is required (Debian php-cli): CLAWBACK_REQUIRE_SERVICES is set")
    pytestmark = pytest.mark.skip(reason="php is not installed (Debian php-cli); .ci/run installs it")

# Just enough of WordPress for the plugin file to load and sign a launch.
STUBS = r"""<?php
define('ABSPATH', '/');
define('CLAWBACK_APP_URL', 'https://clawback.example');
function add_action(...$a) {} function add_submenu_page(...$a) {} function register_uninstall_hook(...$a) {}
function get_option($n, $d = '') { return $d; }
function home_url($p = '') { return 'https://shop.example.com' . $p; }
function get_current_user_id() { return 7; }
function untrailingslashit($s) { return rtrim($s, '/'); }
function esc_url_raw($s) { return $s; }
require getenv('PLUGIN');
echo clawback_launch_url(getenv('SECRET'));
"""


def test_the_plugin_parses() -> None:
    result = subprocess.run([str(PHP), "-l", str(PLUGIN)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plugin_signs_launches_the_app_accepts(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    secret = "launch-secret-" + "x" * 30
    svc = app.extensions["clawback"]
    with svc.db.session() as session:
        register_shop(session, svc.vault, platform="woocommerce", domain=STORE,
                      credentials={"webhook_secret": "w", "launch_secret": secret})  # fmt: skip
    script = tmp_path / "launch.php"
    script.write_text(STUBS)
    env = {"PATH": os.environ.get("PATH", ""), "PLUGIN": str(PLUGIN), "SECRET": secret}
    result = subprocess.run([str(PHP), str(script)], capture_output=True, text=True, check=True, env=env)
    url = urlsplit(result.stdout.strip())
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://clawback.example/wordpress/launch"
    response = client.get(f"{url.path}?{url.query}")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == f"frame-ancestors {STORE}"
    forged = client.get(f"{url.path}?{url.query.replace('user=7', 'user=8')}")
    assert forged.status_code == 401
