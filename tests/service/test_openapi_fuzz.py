"""schemathesis against the OpenAPI spec: generated requests never get a 5xx (Redis is up), an
undocumented status, or a response that contradicts the documented schema."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from skewless.feature_store import FeatureStore
from skewless.service.app import create_app


@pytest.fixture
def api_app(make_store: Callable[..., FeatureStore]) -> FastAPI:
    store = make_store(events=1_000, cards=20, days=1)
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
