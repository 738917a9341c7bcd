"""The CLI as users run it: real processes, one-line errors, --help everywhere, --debug tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from typer.main import get_command

from skewless.cli.main import app
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from tests.service.processes import fill_redis, free_port, redis_server

SKEWLESS = str(Path(sys.executable).with_name("skewless"))


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SKEWLESS, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = _run(command, "--help", cwd=tmp_path, env={"COLUMNS": "1000"})
    assert result.returncode == 0
    assert "Usage: skewless " + command in result.stdout
    assert len(result.stdout.splitlines()) > 4
    # Each paragraph of the docstring is one line on a wide terminal: wrapped to the terminal,
    # not at the source's line breaks; `code` keeps its text.
    lines = {line.strip() for line in result.stdout.splitlines()}
    for paragraph in (get_command(app).commands[command].help or "").split("\n\n"):  # type: ignore[attr-defined]
        assert " ".join(paragraph.replace("`", "").split()) in lines


def test_missing_repo_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    result = _run("plan", cwd=tmp_path, env={"SKEWLESS_REPO": ""})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or "Traceback" not in result.stderr
    assert "feature_store.yaml not found" in result.stderr and "skewless init" in result.stderr


def test_definition_error_names_file_and_line(example_repo: Path) -> None:
    fraud = example_repo / "fraud.py"
    fraud.write_text(fraud.read_text().replace('window="10m"', 'window="10 minutes"'))
    result = _run("plan", "--repo", str(example_repo), cwd=example_repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    flat = " ".join(result.stderr.split())
    assert "repo/fraud.py:" in flat and "'10 minutes' is not a duration" in flat


def test_debug_shows_the_traceback(example_repo: Path) -> None:
    fraud = example_repo / "fraud.py"
    fraud.write_text(fraud.read_text().replace('window="10m"', 'window="10 minutes"'))
    result = _run("--debug", "plan", "--repo", str(example_repo), cwd=example_repo)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DefinitionError" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--nope"], "No such option: --nope"),
        (["dead-letters", "--last", "-1"], "Invalid value for '--last'"),
        (["ingest", "nosource"], "(nosource)"),
        (["ingest", "--claim-after", "-5"], "Invalid value for '--claim-after'"),
        (["log-worker", "--claim-after", "-1"], "Invalid value for '--claim-after'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_shows_the_usage(tmp_path: Path, args: list[str], message: str | None) -> None:
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Usage:" in result.stderr and "internal error" not in result.stderr
    assert message is None or message in " ".join(result.stderr.replace("│", " ").split())


def test_init_plan_apply_plan(tmp_path: Path, redis_url: str) -> None:
    repo = tmp_path / "new_repo"
    env = {"REDIS_URL": redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    created = _run("init", str(repo), "--events", "2000", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert (repo / "fraud.py").exists() and (repo / "data" / "transactions.parquet").exists()
    planned = _run("plan", "--repo", str(repo), cwd=tmp_path, env=env)
    assert planned.returncode == 0, planned.stderr
    assert "card_activity" in planned.stdout and "add" in planned.stdout
    applied = _run("apply", "--repo", str(repo), cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    assert "Applied. 3 views, 2 entities and 2 sources" in applied.stdout
    again = _run("plan", "--repo", str(repo), cwd=tmp_path, env=env)
    assert "No changes." in again.stdout


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    result = _run("init", str(tmp_path / "taken"), cwd=tmp_path)
    assert result.returncode == 1
    assert "is not empty; pick a new directory" in result.stderr


def test_plan_rejects_data_that_contradicts_the_schema(example_repo: Path, tmp_path: Path) -> None:
    import polars as pl

    (example_repo / "data").mkdir()
    pl.DataFrame({"card_id": ["c1"], "credit_limit": ["high"]}).write_parquet(
        example_repo / "data" / "card_profiles.parquet"
    )
    result = _run(
        "plan",
        "--repo",
        str(example_repo),
        cwd=tmp_path,
        env={"SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"},
    )
    assert result.returncode == 1
    flat = " ".join(result.stderr.split())
    assert (
        "source 'card_profiles': column 'credit_limit' is String in data/card_profiles.parquet but declared Float64"
        in flat
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    (tmp_path / "feature_store.yaml").write_text("project: p\n")
    env = {"SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    created = _run(
        "keys", "create", "checkout", "--scope", "read", "--repo", str(tmp_path), cwd=tmp_path, env=env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("skl_") and "cannot be shown again" in created.stderr
    listed = _run("keys", "list", "--repo", str(tmp_path), cwd=tmp_path, env=env)
    prefix = key.split("_")[1]
    assert prefix in listed.stdout and "checkout" in listed.stdout and key not in listed.stdout
    assert _run("keys", "revoke", prefix, "--repo", str(tmp_path), cwd=tmp_path, env=env).returncode == 0
    again = _run("keys", "revoke", prefix, "--repo", str(tmp_path), cwd=tmp_path, env=env)
    assert again.returncode == 1 and f"no active key with prefix '{prefix}'" in again.stderr
    bad = _run("keys", "create", "x", "--scope", "root", "--repo", str(tmp_path), cwd=tmp_path, env=env)
    assert bad.returncode == 1 and "scopes must be some of read, write, admin; got root." in bad.stderr
    for name in ("", "k" * 201):  # 201 characters failed in PostgreSQL with "value too long"
        unnamed = _run("keys", "create", name, "--repo", str(tmp_path), cwd=tmp_path, env=env)
        assert unnamed.returncode == 1 and "a key's name says what it is for" in unnamed.stderr


def test_demo_runs_end_to_end_and_shows_statuses(
    make_store: Callable[..., FeatureStore], isolated_redis_url: str, tmp_path: Path
) -> None:
    """`make demo`'s command on a copy of the example repo (its data already generated, smaller)."""
    settings = make_store(events=20_000, cards=200, days=3).settings
    env = {"REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    result = _run("demo", "--repo", str(settings.repo), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Training set #1: 10,000 point-in-time correct rows" in result.stdout
    unknown = next(line for line in result.stdout.splitlines() if "c_unknown" in line)
    assert unknown.count("NOT_FOUND") == 4  # a card never seen: a status in every feature's cell
    streamed = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│ count_1h ") or line.startswith("│ amount_usd_sum_24h ")
    ][-2:]  # the streaming table's rows: feature, online before, after, offline now
    assert [after == offline for _, _, after, offline in streamed] == [True, True]
    assert int(streamed[0][2]) == int(streamed[0][1]) + 3  # three events in the last hour counted
    assert "Applied 3 events; dead-lettered 1 (too late)" in result.stdout
    assert "No changes." in result.stdout


def test_materialize_warns_when_redis_may_evict_its_keys(example_repo: Path, tmp_path: Path) -> None:
    """A Redis that evicts when full would silently drop online state: say so, and still run."""
    write_example_data(example_repo / "data", FraudDataSpec(events=500, cards=10, days=1))
    port = free_port()
    server = redis_server(port, tmp_path)
    try:
        redis.Redis(port=port).config_set("maxmemory", 500_000_000)
        redis.Redis(port=port).config_set("maxmemory-policy", "allkeys-lru")
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
        }
        result = _run("materialize", "card_profile", "--repo", str(example_repo), cwd=tmp_path, env=env)
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stderr
    assert "Redis evicts keys when full (maxmemory-policy allkeys-lru)" in " ".join(result.stderr.split())


def test_materialize_into_a_full_redis_says_so_in_one_line(example_repo: Path, tmp_path: Path) -> None:
    """Before: "internal error: ResponseError: OOM command not allowed …, please report it"."""
    write_example_data(example_repo / "data", FraudDataSpec(events=500, cards=10, days=1))
    port = free_port()
    server = redis_server(port, tmp_path)
    try:
        fill_redis(redis.Redis(port=port))
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
        }
        result = _run("materialize", "--repo", str(example_repo), cwd=tmp_path, env=env)
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 1
    assert " ".join(result.stderr.split()) == (
        "error: Redis is full (used memory above its maxmemory) and refuses writes; raise maxmemory "
        "or free memory. Then run the command again."
    )
