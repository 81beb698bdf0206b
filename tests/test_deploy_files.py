"""The deployment files (Procfile, deploy/compose.yaml, deploy/Dockerfile, deploy/systemd/*) cannot
drift from the code: they parse, have the shape documented in them, and every `clawback` command
they run exists in `web.cli.cli` with the options they pass (click parses each one, as it would
at run time, without running it). Docker is not available here, so nothing is built or started.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from web.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROCFILE = ROOT / "Procfile"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNITS = {"web": DEPLOY / "systemd" / "clawback-web.service", "worker": DEPLOY / "systemd" / "clawback-worker@.service"}
CLAWBACK_SERVICES = ("migrate", "web", "worker")


def check_command(argv: list[str]) -> list[str]:
    """Parse `clawback …` as click would; return the command path (e.g. ['db', 'upgrade']).

    Unknown subcommands, unknown options and values of the wrong type fail here.
    """
    assert argv and Path(argv[0]).name == "clawback", f"not a clawback command: {argv}"
    words = [re.sub(r"^\$\{?PORT\}?$", "8000", w) for w in argv[1:]]  # the platform fills in $PORT
    command: click.Command = cli
    path: list[str] = []
    parent = click.Context(cli, info_name="clawback")
    while isinstance(command, click.Group):
        assert words, f"`clawback {' '.join(path)}` needs a subcommand"
        name = words.pop(0)
        found = command.commands.get(name)
        assert found is not None, f"`clawback {' '.join([*path, name])}` does not exist"
        path.append(name)
        command = found
        if isinstance(command, click.Group):
            parent = click.Context(command, info_name=name, parent=parent)
    try:
        command.make_context(path[-1], words, parent=parent)
    except click.ClickException as exc:
        raise AssertionError(f"`clawback {' '.join(path)}` refuses {words}: {exc.format_message()}") from None
    return path


def procfile() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, command = line.partition(":")
            assert sep and re.fullmatch(r"[a-z][a-z0-9_-]*", name), f"not 'type: command': {line!r}"
            assert name not in entries, f"{name} twice"
            entries[name] = command.strip()
    return entries


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    return parser


# --- the checker itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["clawback", "nonexistent"],
        ["clawback", "db"],
        ["clawback", "db", "downgrade-everything"],
        ["clawback", "serve", "--no-such-option"],
        ["clawback", "serve", "--port", "not-a-port"],
        ["clawback", "worker", "--workers", "0"],
        ["gunicorn", "web:app"],
    ],
)
def test_the_checker_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_command(argv)


def test_the_checker_accepts_what_the_cli_accepts() -> None:
    assert check_command(["clawback", "db", "upgrade"]) == ["db", "upgrade"]
    assert check_command(["/opt/x/bin/clawback", "serve", "--port", "$PORT", "--job-workers", "0"]) == ["serve"]


# --- Procfile -------------------------------------------------------------------------------------


def test_procfile_runs_web_worker_and_release_with_real_commands() -> None:
    entries = procfile()
    assert set(entries) == {"web", "worker", "release"}
    paths = {name: check_command(shlex.split(command)) for name, command in entries.items()}
    assert paths == {"web": ["serve"], "worker": ["worker"], "release": ["db", "upgrade"]}
    web = shlex.split(entries["web"])
    assert web[web.index("--port") + 1] == "$PORT"
    assert web[web.index("--host") + 1] == "0.0.0.0"
    assert web[web.index("--job-workers") + 1] == "0"  # jobs run in the worker process type


# --- compose.yaml ---------------------------------------------------------------------------------


def test_compose_has_the_documented_services() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *CLAWBACK_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]


def test_compose_runs_only_real_clawback_commands() -> None:
    services = compose()["services"]
    paths = {name: check_command(services[name]["command"]) for name in CLAWBACK_SERVICES}
    assert paths == {"migrate": ["db", "upgrade"], "web": ["serve"], "worker": ["worker"]}
    web = services["web"]["command"]
    assert web[web.index("--job-workers") + 1] == "0"
    assert web[web.index("--host") + 1] == "0.0.0.0"  # reachable from outside its container


def test_compose_configures_every_clawback_service_alike() -> None:
    services = compose()["services"]
    for name in CLAWBACK_SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["CLAWBACK_ENV"] == "production"
        assert env["CLAWBACK_DATABASE_URL"].startswith("postgresql://clawback:")
        assert env["CLAWBACK_DATABASE_URL"].endswith("@postgres:5432/clawback")  # the postgres service
        assert env["CLAWBACK_QUEUE_URL"] == "redis://redis:6379/0"  # the redis service
        assert service["env_file"] == ".env"  # the secrets, never in this file
        assert not any(k.endswith(("_SECRET", "_KEY")) for k in env), "secrets belong in the env file"
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, args = line.strip().partition(" ")
            found.append((instruction.upper(), args.strip()))
    return found


def test_dockerfile_builds_the_package_and_runs_as_a_user() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert any(i == "RUN" and re.search(r"\bpip install \.(\s|$)", a) for i, a in steps)
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _target = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    copied = {s.rstrip("/") for i, a in steps if i == "COPY" for s in a.split()[:-1]}
    assert copied >= {"pyproject.toml", "README.md", "app", "connectors", "web", "migrations"}
    (cmd,) = [a for i, a in steps if i == "CMD"]
    assert check_command(json.loads(cmd)) == ["serve"]


# --- systemd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", UNITS)
def test_systemd_units_restart_always_read_the_env_file_and_run_real_commands(role: str) -> None:
    parsed = unit(UNITS[role])
    service = parsed["Service"]
    assert service["EnvironmentFile"] == "/etc/clawback/env"
    assert service["Restart"] == "always"
    assert service["User"] not in ("root", "0")
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).is_absolute()  # systemd wants the full path
    assert check_command(argv) == {"web": ["serve"], "worker": ["worker"]}[role]
    if role == "web":
        assert argv[argv.index("--job-workers") + 1] == "0"
    else:
        assert service["KillSignal"] == "SIGINT"  # Huey's graceful stop


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("role", UNITS)
def test_systemd_accepts_the_units(role: str, tmp_path: Path) -> None:
    """systemd's own parser, with the (absent) installed script replaced by /bin/true."""
    source = UNITS[role]
    copy = tmp_path / source.name
    copy.write_text(source.read_text().replace("/opt/clawback/venv/bin/clawback", "/bin/true"))
    target = copy
    if source.name.endswith("@.service"):  # a template is verified through an instance
        target = tmp_path / source.name.replace("@.", "@1.")
        target.symlink_to(copy.name)
    done = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True, text=True, timeout=30)
    messages = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert (done.returncode, messages) == (0, [])


# --- what `pip install .` (the Dockerfile's) ships --------------------------------------------


def test_a_non_editable_install_ships_every_template(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building writes an egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("app", "connectors", "web", "migrations"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = tmp_path / "build"
    done = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build", "--build-base", str(build)],
        cwd=source, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "web" / "templates").rglob("*") if p.is_file()}
    wanted |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "migrations" / "versions").glob("*.py")}
    shipped = {p.relative_to(build / "lib").as_posix() for p in (build / "lib").rglob("*") if p.is_file()}
    assert sorted(wanted - shipped) == []
