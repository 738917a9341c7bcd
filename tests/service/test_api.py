"""The serving API on real Redis: Feast's request and response shapes, values equal to what
Feast's SDK reads, honest statuses, clear 4xx, push, health, metrics, and the serving log."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient

from skewless._errors import ExecutionError
from skewless.feature_store import FeatureStore
from skewless.metadata import open_database
from skewless.repo.feast_store import feast_store
from skewless.repo.plan import apply_plan, make_plan
from skewless.service.app import create_app
from skewless.service.serving_log import LOG_DEAD, LOG_STREAM, drain_serving_log
from skewless.settings import Settings
from skewless.stores.redis_connection import _free_port
from tests.service.processes import fill_redis, redis_server

PLAIN = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]


@pytest.fixture
def store(make_store: Callable[..., FeatureStore]) -> FeatureStore:
    store = make_store(events=5_000, cards=50, days=2)
    store.materialize()
    return store


@pytest.fixture
def client(store: FeatureStore) -> TestClient:
    return TestClient(create_app(store, auth=False))


def _cards(store: FeatureStore) -> list[str]:
    return (
        pl.read_parquet(store.settings.repo / "data" / "card_profiles.parquet")["card_id"]
        .unique(maintain_order=True)
        .head(10)
        .to_list()
    )


def _applied_feast(store: FeatureStore) -> Any:
    """Feast's store for the repo, after `skewless apply` registered it."""
    database = open_database(store.settings.database_url)
    feast = feast_store(store.settings, str(store.settings.redis_url))
    apply_plan(make_plan(store.repo, database), store.repo, database, feast)
    return feast


def test_feast_request_gets_feast_response_with_the_values_feast_reads(
    store: FeatureStore, client: TestClient
) -> None:
    feast = _applied_feast(store)
    cards = _cards(store) + ["c999999"]
    response = client.post("/get-online-features", json={"features": PLAIN, "entities": {"card_id": cards}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metadata"]["feature_names"] == ["card_id", "credit_limit", "country", "card_type"]
    assert body["results"][0]["values"] == cards and body["results"][0]["statuses"] == ["PRESENT"] * len(
        cards
    )
    with contextlib.chdir(store.settings.repo):
        theirs = feast.get_online_features(
            features=PLAIN, entity_rows=[{"card_id": c} for c in cards]
        ).to_dict()
    for name, result in zip(body["metadata"]["feature_names"][1:], body["results"][1:], strict=True):
        assert result["values"] == theirs[name], name
        assert (
            result["statuses"][-1] == "NOT_FOUND" and result["event_timestamps"][-1] == "1970-01-01T00:00:00Z"
        )


def test_windowed_features_and_statuses(store: FeatureStore, client: TestClient) -> None:
    cards = _cards(store)
    response = client.post(
        "/get-online-features",
        json={
            "features": ["card_activity:count_24h", "card_activity:amount_usd_mean_7d"],
            "entities": {"card_id": [*cards, "nope"]},
            "full_feature_names": True,
        },
    )
    body = response.json()
    assert body["metadata"]["feature_names"] == [
        "card_id",
        "card_activity__count_24h",
        "card_activity__amount_usd_mean_7d",
    ]
    expected = store.get_historical_features(
        pl.DataFrame({"card_id": cards, "event_timestamp": [datetime.now(UTC)] * len(cards)}),
        ["card_activity:count_24h"],
        as_available=True,
    )
    assert body["results"][1]["values"][:-1] == expected["count_24h"].to_list()
    assert body["results"][1]["statuses"][-1] == "NOT_FOUND"


def test_the_sdk_refuses_entity_rows_that_are_not_lists(store: FeatureStore) -> None:
    with pytest.raises(ExecutionError, match="'card_id' must be a list with a value per entity row"):
        store.get_online_features(["card_profile:country"], {"card_id": "c000001"})  # not 7 rows of a letter


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (
            {"features": ["card_activity:nope"], "entities": {"card_id": ["c1"]}},
            "view 'card_activity' has no feature 'nope'",
        ),
        (
            {"features": ["card_activity:count_1h"], "entities": {"merchant_id": ["m1"]}},
            "view 'card_activity' needs join key 'card_id'",
        ),
        (
            {"features": ["card_activity:count_1h"], "entities": {"card_id": [1]}},
            "join key 'card_id' must be String values; got 1.",
        ),
        (
            {"features": ["card_activity:count_1h"], "entities": {"card_id": ["a"], "x": []}},
            "'entities' must map each join key to a list, all of the same length.",
        ),
        (
            {"entities": {"card_id": ["a"]}},
            "give either 'features' (a list of 'view:feature' references) or 'feature_service'",
        ),
    ],
)
def test_bad_requests_get_a_clear_400(client: TestClient, payload: dict[str, object], detail: str) -> None:
    response = client.post("/get-online-features", json=payload)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_malformed_json_is_422(client: TestClient) -> None:
    assert client.post("/get-online-features", json={"features": "card_activity:count_1h"}).status_code == 422


def test_every_served_vector_is_logged_and_moved_offline(store: FeatureStore, client: TestClient) -> None:
    cards = _cards(store)[:3]
    served = client.post(
        "/get-online-features",
        json={
            "features": ["card_profile:country"],
            "entities": {"card_id": cards},
            "request_id": "r-1",
            "client_features": {"country": ["GB", "GB", "GB"]},
        },
    )
    client.post(
        "/get-online-features",
        json={"features": ["card_activity:count_1h"], "entities": {"card_id": cards[:1]}},
    )
    assert store.redis.xlen(LOG_STREAM) == 2
    assert drain_serving_log(store, "test") == 2
    logged = pl.read_parquet(
        store.settings.repo / "data" / "serving_log" / "**" / "*.parquet", hive_partitioning=False
    )
    assert logged.height == 4
    first = logged.filter(pl.col("request_id") == "r-1").sort("entity")
    assert [orjson.loads(e)["card_id"] for e in first["entity"]] == sorted(cards)
    assert orjson.loads(first["client_features"][0]) == {"country": "GB"}
    # The worker decodes the logged replies into exactly the values the API answered.
    answered = dict(
        zip(served.json()["results"][0]["values"], served.json()["results"][1]["values"], strict=True)
    )
    assert {
        orjson.loads(e)["card_id"]: orjson.loads(f)["country"]
        for e, f in zip(first["entity"], first["features"], strict=True)
    } == answered
    assert orjson.loads(first["versions"][0]) == {"card_profile": store.repo.views["card_profile"].version}
    assert store.redis.xpending(LOG_STREAM, "log-worker")["pending"] == 0
    assert store.redis.xlen(LOG_STREAM) == 1  # what was moved is trimmed, but for the last given


def test_push_health_metrics_and_dead_letters(store: FeatureStore, client: TestClient) -> None:
    now = datetime.now(UTC).isoformat()
    pushed = client.post(
        "/push",
        json={
            "push_source_name": "transactions",
            "df": {
                "event_id": ["x1"],
                "card_id": ["c000001"],
                "amount": [5.0],
                "currency": ["USD"],
                "event_time": [now],
            },
        },
    )
    assert pushed.status_code == 200 and pushed.json() == {"pushed": 1}
    assert store.redis.xlen("transactions") == 1
    bad = client.post("/push", json={"push_source_name": "nope", "df": {"a": [1]}})
    assert bad.status_code == 400 and "Unknown source 'nope'" in bad.json()["detail"]
    bad = client.post("/push", json={"push_source_name": "transactions", "df": {"event_time": ["yesterday"]}})
    assert bad.status_code == 400 and "'event_time' holds 'yesterday', not a time" in bad.json()["detail"]
    for empty in ({}, {"event_time": [], "card_id": []}):
        bad = client.post("/push", json={"push_source_name": "transactions", "df": empty})
        assert bad.status_code == 400 and bad.json()["detail"] == "no events to push."
    bad = client.post("/push", json={"push_source_name": "nope", "df": {}})
    assert bad.status_code == 400 and "Unknown source 'nope'" in bad.json()["detail"]
    assert store.redis.xlen("transactions") == 1
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    client.post(
        "/get-online-features",
        json={"features": ["card_profile:country"], "entities": {"card_id": ["c000001"]}},
    )
    metrics = client.get("/metrics").text
    assert 'skewless_requests_total{code="200",endpoint="get-online-features"}' in metrics
    assert "skewless_serving_log_backlog" in metrics
    # The pushed event waits for `skewless ingest` (no consumer group yet): lag 1.
    assert 'skewless_ingest_lag{stream="transactions"} 1.0' in metrics
    assert 'skewless_ingest_consumers{stream="transactions"} 0.0' in metrics
    store.redis.xadd("transactions", {"card_id": "c000001", "event_time": "soon"})
    ingestor = store.ingestor()
    while ingestor.step():
        pass
    metrics = client.get("/metrics").text
    assert 'skewless_dead_letters{reason="malformed",stream="transactions"} 1.0' in metrics
    assert 'skewless_ingest_consumers{stream="transactions"} 1.0' in metrics


def test_redis_down_is_503_and_recovers(store: FeatureStore, tmp_path: Path) -> None:
    port = _free_port()
    server = redis_server(port, tmp_path)
    env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "SKEWLESS_DATABASE_URL": store.settings.database_url}
    own = FeatureStore(settings=Settings.load(store.settings.repo, env=env))
    own.materialize(["card_profile"])
    client = TestClient(create_app(own, auth=False))
    request = {"features": ["card_profile:country"], "entities": {"card_id": _cards(own)[:1]}}
    assert client.post("/get-online-features", json=request).status_code == 200
    server.kill()
    server.wait()
    response = client.post("/get-online-features", json=request)
    assert response.status_code == 503 and "online store unavailable" in response.json()["detail"]
    assert client.get("/health").status_code == 503
    server = redis_server(port, tmp_path)  # it came back (empty): the same app answers again
    try:
        recovered = client.post("/get-online-features", json=request)
        assert recovered.status_code == 200
        assert recovered.json()["results"][1]["statuses"] == ["NOT_FOUND"]
    finally:
        server.kill()


def test_a_full_redis_still_serves_and_counts_what_it_could_not_log(
    store: FeatureStore, tmp_path: Path
) -> None:
    """Redis refuses the log entry when it is full: the vector is served all the same (before,
    the request failed with a 503), and the refusal is counted."""
    port = _free_port()
    server = redis_server(port, tmp_path)
    try:
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "SKEWLESS_DATABASE_URL": store.settings.database_url,
        }
        own = FeatureStore(settings=Settings.load(store.settings.repo, env=env))
        own.materialize(["card_profile"])
        client = TestClient(create_app(own, auth=False))
        request = {"features": ["card_profile:country"], "entities": {"card_id": _cards(own)[:1]}}
        served = client.post("/get-online-features", json=request).json()
        filler = fill_redis(own.redis)
        response = client.post("/get-online-features", json=request)
        assert response.status_code == 200 and response.json()["results"] == served["results"]
        assert "skewless_serving_log_refused_total 1.0" in client.get("/metrics").text
        assert own.redis.xlen(LOG_STREAM) == 1  # the first request only
        own.redis.delete(*filler)
        assert client.post("/get-online-features", json=request).status_code == 200
        assert own.redis.xlen(LOG_STREAM) == 2  # logged again
    finally:
        server.kill()
        server.wait()


def test_api_keys_401_403_and_revocation(store: FeatureStore) -> None:
    from skewless.service.auth import ApiKeys

    secured = TestClient(create_app(store))
    keys = ApiKeys(store.database)
    reader, writer = keys.create("checkout", ["read"]), keys.create("ingest", ["write"])
    request = {"features": ["card_profile:country"], "entities": {"card_id": ["c000001"]}}
    missing = secured.post("/get-online-features", json=request)
    assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
    assert (
        secured.post(
            "/get-online-features", json=request, headers={"Authorization": "Bearer skl_nope_x"}
        ).status_code
        == 401
    )
    assert (
        secured.post(
            "/get-online-features", json=request, headers={"Authorization": f"Bearer {reader}"}
        ).status_code
        == 200
    )
    assert (
        secured.post("/get-online-features", json=request, headers={"X-API-Key": reader}).status_code == 200
    )
    denied = secured.post("/get-online-features", json=request, headers={"Authorization": f"Bearer {writer}"})
    assert denied.status_code == 403 and "lacks the 'read' scope" in denied.json()["detail"]
    assert secured.get("/health").status_code == 200  # health and metrics stay open
    assert keys.revoke(reader.split("_")[1])
    fresh = TestClient(create_app(store))  # a new process has no cache: revocation applies
    assert (
        fresh.post(
            "/get-online-features", json=request, headers={"Authorization": f"Bearer {reader}"}
        ).status_code
        == 401
    )
    stored = {k.prefix: k.key_hash for k in keys.list()}
    assert reader not in stored.values() and len(stored) == 2


def test_oversized_request_is_413(client: TestClient) -> None:
    body = (
        '{"features": ["card_profile:country"], "entities": {"card_id": ['
        + ",".join(['"c000001"'] * 120_000)
        + "]}}"
    )
    response = client.post("/get-online-features", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "request body over" in response.json()["detail"]


def _chunked(head: bytes, item: bytes, count: int, tail: bytes) -> Iterator[bytes]:
    """A request body sent in pieces, its size declared nowhere (Transfer-Encoding: chunked)."""
    yield head
    for _ in range(count):
        yield item
    yield tail


def test_a_chunked_body_over_the_limit_is_413_on_every_route(client: TestClient) -> None:
    """Before, only /get-online-features counted the bytes of a body without a declared size:
    /push read 2.5 MB and more, as much as a client sent."""
    head, tail = b'{"push_source_name": "transactions", "df": {"event_id": [', b'"e"]}}'
    json = {"content-type": "application/json"}
    big = client.post("/push", content=_chunked(head, b'"e1234567",', 200_000, tail), headers=json)
    assert big.status_code == 413 and "request body over" in big.json()["detail"]
    small = client.post("/push", content=_chunked(head, b'"e1",', 3, tail), headers=json)
    assert small.status_code == 400 and "event time column" in small.json()["detail"]  # read whole


def test_http_client_matches_the_in_process_sdk(store: FeatureStore) -> None:
    from skewless.client import Client, ClientError
    from skewless.service.auth import ApiKeys

    key = ApiKeys(store.database).create("sdk", ["read"])
    client = Client(api_key=key, http=TestClient(create_app(store)))
    cards = _cards(store)[:4] + ["nope"]
    features = ["card_activity:count_24h", "card_profile:country"]
    over_http = client.get_online_features(features, {"card_id": cards})
    in_process = store.get_online_features(features, {"card_id": cards})
    assert (over_http.names, over_http.values, over_http.statuses) == (
        in_process.names,
        in_process.values,
        in_process.statuses,
    )
    with pytest.raises(ClientError, match="403: this API key lacks the 'write' scope"):
        client.push("transactions", {"card_id": ["c1"]})
    # A string is not a column: it was sent as one entity row per character.
    with pytest.raises(ExecutionError, match="'card_id' must be a list with a value per entity row"):
        client.get_online_features(features, {"card_id": "c000001"})


def test_http_client_pushes_what_the_sdk_pushes(store: FeatureStore) -> None:
    """``Client.push`` took only columns, and failed on a datetime (not JSON) or a list of dicts."""
    from skewless.client import Client
    from skewless.service.auth import ApiKeys

    client = Client(
        api_key=ApiKeys(store.database).create("push", ["write"]), http=TestClient(create_app(store))
    )
    now = datetime.now(UTC)
    event = {"event_id": "h1", "card_id": "c1", "amount": 2.5, "currency": "USD", "event_time": now}
    assert client.push("transactions", [event]) == 1
    assert client.push("transactions", pl.DataFrame([{**event, "event_id": "h2"}])) == 1
    assert client.push("transactions", {k: [v] for k, v in {**event, "event_id": "h3"}.items()}) == 1
    sent = [fields for _, fields in store.redis.xrange("transactions")]
    assert [f[b"event_id"] for f in sent] == [b"h1", b"h2", b"h3"]
    assert {f[b"event_time"] for f in sent} == {now.isoformat().encode()}
    with pytest.raises(ExecutionError, match="cannot send"):
        client.push("transactions", {"event_id": [object()]})


def test_http_client_says_when_the_server_cannot_be_reached() -> None:
    from skewless.client import Client, ClientError

    client = Client(f"http://127.0.0.1:{_free_port()}", api_key="k")
    with pytest.raises(
        ClientError, match="cannot reach http://127.0.0.1:.*is `skewless serve` running there"
    ) as caught:
        client.get_online_features(["card_activity:count_1h"], {"card_id": ["c1"]})
    assert caught.value.status is None


def test_client_features_need_a_value_per_entity_row(store: FeatureStore, client: TestClient) -> None:
    request = {"features": ["card_profile:country"], "entities": {"card_id": _cards(store)[:2]}}
    response = client.post("/get-online-features", json={**request, "client_features": {"country": ["GB"]}})
    assert response.status_code == 400
    assert response.json()["detail"] == "'client_features' 'country' must have one value per entity row (2)."
    assert store.redis.xlen(LOG_STREAM) == 0


def test_a_log_entry_the_worker_cannot_read_is_kept_with_the_reason_and_the_rest_move(
    store: FeatureStore, client: TestClient
) -> None:
    """An unreadable entry (another writer's, an older server's) once stopped the worker at every
    start, and every entry after it waited."""
    request = {"features": ["card_profile:country"], "entities": {"card_id": _cards(store)[:2]}}
    assert client.post("/get-online-features", json=request).status_code == 200
    ((_, served),) = store.redis.xrange(LOG_STREAM)
    uneven = orjson.loads(served[b"h"]) | {"client_features": {"country": ["GB"]}}  # one value, two rows
    store.redis.xadd(LOG_STREAM, {b"h": orjson.dumps(uneven), b"r": served[b"r"]})
    store.redis.xadd(LOG_STREAM, {b"h": served[b"h"], b"r": b"\x93\x01"})  # replies cut short
    store.redis.xadd(LOG_STREAM, {b"note": b"not a log entry"})
    assert client.post("/get-online-features", json=request).status_code == 200
    kept: list[str] = []
    assert drain_serving_log(store, "test", on_dead_letter=lambda _, reason: kept.append(reason)) == 5
    assert [reason.split(":")[:2] for reason in kept] == [
        ["malformed log entry", " IndexError"],
        ["malformed log entry", " ValueError"],  # msgpack's
        ["malformed log entry", " KeyError"],
    ]
    assert [dead[b"reason"].decode() for _, dead in store.redis.xrange(LOG_DEAD)] == kept
    logged = pl.read_parquet(store.settings.repo / "data" / "serving_log" / "**" / "*.parquet")
    assert logged.height == 4  # both good requests' two rows
    assert store.redis.xpending(LOG_STREAM, "log-worker")["pending"] == 0


def test_a_logged_request_whose_definition_changed_is_kept_with_the_reason(
    store: FeatureStore, client: TestClient
) -> None:
    request = {"features": ["card_profile:country"], "entities": {"card_id": _cards(store)[:1]}}
    assert client.post("/get-online-features", json=request).status_code == 200
    definitions = store.settings.repo / "fraud.py"
    definitions.write_text(definitions.read_text().replace('"country", "card_type"]', '"country"]'))
    changed = FeatureStore(settings=store.settings)  # the worker restarted on the new definitions
    assert drain_serving_log(changed, "test") == 1
    ((_, dead),) = store.redis.xrange(LOG_DEAD)
    assert (
        b"definition changed" in dead[b"reason"]
        and orjson.loads(dead[b"h"])["entities"] == request["entities"]
    )
    assert store.redis.xpending(LOG_STREAM, "log-worker")["pending"] == 0


def test_log_sample_rate_per_view(store: FeatureStore) -> None:
    definitions = store.settings.repo / "fraud.py"
    definitions.write_text(
        definitions.read_text().replace(
            'description="The latest profile of a card.",',
            'description="The latest profile of a card.",\n    log_sample_rate=0,',
        )
    )
    sampled = FeatureStore(settings=store.settings)
    assert (
        sampled.plans["card_profile"].version == store.plans["card_profile"].version
    )  # not a new definition
    client = TestClient(create_app(sampled, auth=False))
    cards = {"card_id": _cards(store)[:2]}
    for _ in range(5):  # only a view that logs nothing: no log entry at all
        assert (
            client.post("/get-online-features", json={"features": PLAIN, "entities": cards}).status_code
            == 200
        )
    assert sampled.redis.xlen(LOG_STREAM) == 0
    both = {
        "features": ["card_profile:country", "card_activity:count_1h"],
        "entities": cards,
        "request_id": "m",
    }
    assert client.post("/get-online-features", json=both).status_code == 200
    assert drain_serving_log(sampled, "test") == 1
    logged = pl.read_parquet(
        store.settings.repo / "data" / "serving_log" / "**" / "*.parquet", hive_partitioning=False
    )
    assert logged.height == 2  # the sampled view's features only, with its version only
    assert all(set(orjson.loads(f)) == {"count_1h"} for f in logged["features"])
    assert orjson.loads(logged["versions"][0]) == {"card_activity": store.plans["card_activity"].version}


def test_a_feature_service_serves_its_features_and_feast_knows_it(
    store: FeatureStore, client: TestClient
) -> None:
    from skewless.client import Client

    feast = _applied_feast(store)
    service = store.repo.service("fraud_model")
    cards = _cards(store)[:5] + ["c999999"]
    by_name = client.post(
        "/get-online-features", json={"feature_service": "fraud_model", "entities": {"card_id": cards}}
    )
    listed = client.post(
        "/get-online-features", json={"features": service.refs, "entities": {"card_id": cards}}
    )
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["metadata"] == listed.json()["metadata"]
    assert [r["values"] for r in by_name.json()["results"]] == [r["values"] for r in listed.json()["results"]]
    # Feast registered the same service, and its SDK reads the plain-view part alike.
    with contextlib.chdir(store.settings.repo):
        assert [p.name for p in feast.get_feature_service("fraud_model").feature_view_projections] == [
            "card_activity",
            "card_profile",
        ]
        theirs = feast.get_online_features(
            features=["card_profile:credit_limit", "card_profile:country"],
            entity_rows=[{"card_id": c} for c in cards],
        ).to_dict()
    served = dict(zip(by_name.json()["metadata"]["feature_names"], by_name.json()["results"], strict=True))
    assert served["credit_limit"]["values"] == theirs["credit_limit"]
    assert served["country"]["values"] == theirs["country"]
    # The SDK and the HTTP client take the service by name or as the object.
    in_process = store.get_online_features(service, {"card_id": cards})
    over_http = Client(http=client).get_online_features("fraud_model", {"card_id": cards})
    assert in_process.values == over_http.values == [r["values"] for r in by_name.json()["results"][1:]]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"feature_service": "nope", "entities": {"card_id": ["c1"]}}, "Unknown feature service 'nope'"),
        (
            {
                "feature_service": "fraud_model",
                "features": ["card_profile:country"],
                "entities": {"card_id": ["c1"]},
            },
            "give either 'features'",
        ),
    ],
)
def test_feature_service_requests_that_cannot_be_served(
    client: TestClient, payload: dict[str, object], detail: str
) -> None:
    response = client.post("/get-online-features", json=payload)
    assert response.status_code == 400 and detail in response.json()["detail"]
