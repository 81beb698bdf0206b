"""The `clawback` command. Names, options and output formats are a contract (README).

`cli` is the group the console script runs (pyproject.toml: `web.cli:cli`). Each module here
declares its commands on an AppGroup of its own, `commands`, and they are added to `cli` below:
the modules import only `web.cli.common`, never this package's `cli`, so nothing imports in a
circle. An AppGroup, like `cli` itself, runs each command inside the app's context.

    common.py      CliError, refuses_bad_input, unit_of_work, emit, parse_time
    processes.py   db upgrade, serve, worker
    shops.py       demo, shop add|disconnect, settings show|set, reconcile
    coins.py       balance, ledger, redeem, adjust, release-due, check
    deliveries.py  deliveries, replay, writebacks list|run|replay
    api_keys.py    api-key create|list|revoke
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from app.errors import ConfigError
from web import create_app
from web.cli import api_keys, coins, deliveries, processes, shops


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        # A clear sentence, not a traceback: the operator has a variable to set.
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


cli = FlaskGroup(
    name="clawback",
    create_app=_create_app,
    add_default_commands=False,
    load_dotenv=False,
    help="Clawback: loyalty coins that follow the order.",
)

for _module in (processes, shops, coins, deliveries, api_keys):
    for _command in _module.commands.commands.values():
        cli.add_command(_command)
