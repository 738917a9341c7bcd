"""docker-compose.yml (Docker does not run here): every skewless command it runs is a real CLI
command with real options, and every variable it sets is one skewless reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from skewless.cli.main import app
from skewless.settings import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _skewless_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in COMPOSE["services"].items() if s.get("build")}


def test_there_are_skewless_services_and_backing_services() -> None:
    assert {"redis", "postgres", "api", "worker", "log-worker", "scheduler"} <= set(COMPOSE["services"])
    assert (
        COMPOSE["services"]["api"]["command"][0] == "serve"
        and COMPOSE["services"]["worker"]["command"][0] == "ingest"
    )
    assert _skewless_services()
    assert 'ENTRYPOINT ["skewless"]' in DOCKERFILE


def test_every_command_is_a_real_cli_command_with_real_options() -> None:
    cli = get_command(app)
    assert hasattr(cli, "commands")
    for name, service in _skewless_services().items():
        args = service["command"]
        command = cli.commands.get(args[0])
        assert command is not None, f"{name}: '{args[0]}' is not a skewless command"
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for arg in args[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in known, f"{name}: {arg} is not an option of {args[0]}"


def test_every_variable_is_one_skewless_reads() -> None:
    for name, service in _skewless_services().items():
        for variable in service.get("environment", {}):
            assert variable in ENV_VARS, f"{name}: skewless does not read {variable}"


def test_services_wait_for_healthy_backends() -> None:
    for name in ("redis", "postgres"):
        assert COMPOSE["services"][name]["healthcheck"]
    for name, service in _skewless_services().items():
        for dependency, condition in service["depends_on"].items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
