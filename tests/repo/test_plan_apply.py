"""Plan and apply on the example repo, against each metadata backend and the real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from skewless import DefinitionError
from skewless.metadata import open_database
from skewless.repo.feast_store import feast_store
from skewless.repo.loader import load_repo
from skewless.repo.plan import apply_plan, make_plan
from skewless.settings import Settings

FEAST = str(Path(sys.executable).with_name("feast"))


def _apply(settings: Settings) -> None:
    repo = load_repo(settings.repo)
    database = open_database(settings.database_url)
    apply_plan(make_plan(repo, database), repo, database, feast_store(settings, str(settings.redis_url)))
    database.close()


def _plan(settings: Settings) -> list[tuple[str, str, str, tuple[str, ...]]]:
    database = open_database(settings.database_url)
    plan = make_plan(load_repo(settings.repo), database)
    database.close()
    return [(c.action, c.kind, c.name, c.details) for c in plan.changes]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_first_plan_adds_everything(repo_settings: Settings) -> None:
    changes = _plan(repo_settings)
    assert {(action, kind, name) for action, kind, name, _ in changes} == {
        ("add", "entity", "card"),
        ("add", "entity", "merchant"),
        ("add", "source", "transactions"),
        ("add", "source", "card_profiles"),
        ("add", "feature_view", "card_activity"),
        ("add", "feature_view", "merchant_activity"),
        ("add", "plain_view", "card_profile"),
        ("add", "feature_service", "fraud_model"),
    }


def test_replanning_an_applied_repo_reports_nothing(repo_settings: Settings) -> None:
    _apply(repo_settings)
    assert _plan(repo_settings) == []


def test_edited_transform_body_is_a_change(repo_settings: Settings) -> None:
    _apply(repo_settings)
    _edit(repo_settings.repo / "fraud.py", ".round(2)", ".round(3)")
    assert _plan(repo_settings) == [
        ("change", "feature_view", "card_activity", ("transform body changed",)),
        ("change", "feature_view", "merchant_activity", ("transform body changed",)),
    ]


def test_edited_window_is_a_change_naming_the_field(repo_settings: Settings) -> None:
    _apply(repo_settings)
    _edit(
        repo_settings.repo / "fraud.py",
        'Aggregation("mean", "amount_usd", window="7d")',
        'Aggregation("mean", "amount_usd", window="3d")',
    )
    assert _plan(repo_settings) == [
        (  # the service that reads the whole view reads the renamed feature
            "change",
            "feature_service",
            "fraud_model",
            (
                "features: added card_activity:amount_usd_mean_3d",
                "features: removed card_activity:amount_usd_mean_7d",
            ),
        ),
        (
            "change",
            "feature_view",
            "card_activity",
            ("aggregations: added amount_usd_mean_3d", "aggregations: removed amount_usd_mean_7d"),
        ),
    ]


def test_edited_granularity_shows_old_and_new(repo_settings: Settings) -> None:
    _apply(repo_settings)
    _edit(
        repo_settings.repo / "fraud.py",
        'Aggregation("count", window="1h"),\n        Aggregation("count", window="24h")',
        'Aggregation("count", window="1h", granularity="10m"),\n        Aggregation("count", window="24h")',
    )
    assert _plan(repo_settings) == [
        ("change", "feature_view", "card_activity", ("aggregations[count_1h].granularity: 5m → 10m",))
    ]


def test_apply_records_one_current_version_per_definition(repo_settings: Settings) -> None:
    _apply(repo_settings)
    _edit(repo_settings.repo / "fraud.py", 'ttl="1d"', 'ttl="2d"')
    _apply(repo_settings)
    from sqlalchemy import select

    from skewless.metadata.models import DefinitionVersion

    database = open_database(repo_settings.database_url)
    with database.session() as session:
        rows = session.scalars(
            select(DefinitionVersion).where(DefinitionVersion.name == "merchant_activity")
        ).all()
    database.close()
    assert len(rows) == 2
    assert [r.retired_at is None for r in sorted(rows, key=lambda r: r.id)] == [False, True]
    assert rows[-1].version == load_repo(repo_settings.repo).views["merchant_activity"].version


def test_removed_view_is_planned_as_removal_and_leaves_feast(repo_settings: Settings) -> None:
    _apply(repo_settings)
    _edit(repo_settings.repo / "fraud.py", "card_profile = PlainView(", "_unused = (")
    _edit(repo_settings.repo / "fraud.py", "\n    features=[", "\n    dict(features=[")
    _edit(
        repo_settings.repo / "fraud.py",
        '    description="The latest profile of a card.",\n)',
        '    description="The latest profile of a card."),\n)',
    )
    text = (repo_settings.repo / "fraud.py").read_text()
    start = text.index("_unused = (")
    end = text.index("expose_to_feast(globals())")
    (repo_settings.repo / "fraud.py").write_text(text[:start] + text[end:])
    planned = _plan(repo_settings)
    assert ("remove", "plain_view", "card_profile", ()) in planned
    assert ("remove", "feature_service", "fraud_model", ()) in planned  # it read card_profile: cut too
    _apply(repo_settings)
    store = feast_store(repo_settings, str(repo_settings.redis_url))
    assert sorted(fv.name for fv in store.list_feature_views()) == ["card_activity", "merchant_activity"]
    assert store.list_feature_services() == []


def test_a_service_of_a_view_no_file_declares_is_a_clear_error(repo_settings: Settings) -> None:
    _edit(
        repo_settings.repo / "fraud.py",
        "expose_to_feast(globals())",
        "def _hidden() -> PlainView:\n"
        "    return PlainView(name='hidden', entities=[card], source=card_profiles, features=['country'])\n\n"
        "broken = FeatureService(name='broken', features=[_hidden()])\n"
        "expose_to_feast(globals())",
    )
    with pytest.raises(
        DefinitionError,
        match=r"fraud.py: feature service 'broken' uses view 'hidden', which no repo file declares at module level",
    ):
        load_repo(repo_settings.repo)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_feast_cli_agrees_after_skewless_apply(repo_settings: Settings) -> None:
    _apply(repo_settings)
    plan = subprocess.run(
        [FEAST, "plan"], cwd=repo_settings.repo, capture_output=True, text=True, timeout=300
    )
    assert plan.returncode == 0, plan.stderr
    assert "No changes to registry" in plan.stdout
    listed = subprocess.run(
        [FEAST, "feature-views", "list"], cwd=repo_settings.repo, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    for name in ("card_activity", "merchant_activity", "card_profile"):
        assert name in listed.stdout
    described = subprocess.run(
        [FEAST, "feature-views", "describe", "card_activity"],
        cwd=repo_settings.repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    features = {f["name"]: f["valueType"] for f in yaml.safe_load(described.stdout)["spec"]["features"]}
    view = load_repo(repo_settings.repo).views["card_activity"]
    assert features == {
        name: "INT64" if dtype == pl.Int64 else "DOUBLE" for name, dtype in view.schema.items()
    }
