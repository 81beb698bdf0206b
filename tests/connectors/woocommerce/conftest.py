"""The WooCommerce tests' shared fixture: the test store, registered as a merchant would."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.platforms.woocommerce import install


@pytest.fixture
def store(app: Flask, runner: FlaskCliRunner) -> None:
    """The store registered by hand (`clawback shop add`), reverting on every status it offers."""
    install(runner)
