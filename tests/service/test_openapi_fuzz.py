"""schemathesis against the OpenAPI spec: generated requests never get a 5xx (Redis is up), an
undocumented status, or a response that contradicts the documented schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from skewless.service.app import create_app
from skewless.settings import Settings


@pytest.fixture
def api_app(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> FastAPI:
    write_example_data(
        example_repo / "data",
        FraudDataSpec(events=1_000, cards=20, days=1, end=datetime.now(UTC) - timedelta(minutes=1)),
    )
    store = FeatureStore(
        settings=Settings.load(
            example_repo,
            env={"REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"},
        )
    )
    store.materialize(["card_profile"])
    return create_app(store, auth=False)


@pytest.fixture
def api_schema(api_app: FastAPI) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


def test_api_conforms_to_its_spec(api_schema: schemathesis.schemas.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/get-online-features", "/push", "/health", "/metrics"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # Every check but "schema-valid requests are accepted": a well-formed request for a
            # feature that does not exist is rightly a 400.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
