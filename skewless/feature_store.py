"""``FeatureStore``: the Python SDK over a feature repo, with shapes close to Feast's."""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import redis
from sqlalchemy import delete

from skewless._errors import ConfigError, DefinitionError, ExecutionError
from skewless.metadata import Database, open_database
from skewless.metadata.models import MaterializationRun, Watermark, utcnow
from skewless.offline.backfill import BackfillResult, backfill_view
from skewless.offline.entity_rows import as_polars
from skewless.offline.historical import get_historical_features
from skewless.offline.landed import CompactionResult, compact_landed
from skewless.offline.training_set import TrainingSet, check_output, record_training_set, write_frame
from skewless.online.dead_letters import DeadLetters, read_dead_letters
from skewless.online.ingest import StreamIngestor
from skewless.online.materialize import MaterializeResult, check_alone, check_start, materialize_view
from skewless.online.push import push_events
from skewless.online.read import OnlineRead, OnlineResult, prepare_read, read_online
from skewless.repo.loader import Repo, load_repo
from skewless.settings import Settings
from skewless.stores.redis_connection import connect_redis, resolve_redis_url
from skewless.stores.stream_trim import entry_position, first_needed
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import ViewPlan, compile_view
from skewless.transforms.services import FeatureService
from skewless.transforms.sources import EventSource
from skewless.transforms.views import FeatureView

#: Features to read: "view:feature" references, or a feature service (its object or its name).
Features = Sequence[str] | FeatureService | str

__all__ = ["FeatureStore"]


def _to_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _zoned(name: str, moment: object) -> datetime:
    """``moment`` when it is a datetime with a time zone (a naive one is not guessed)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        shown = moment.isoformat() if isinstance(moment, datetime) else repr(moment)
        raise ConfigError(
            f"{name} {shown} is not a datetime with a time zone; pass a UTC time, "
            "e.g. datetime(2026, 11, 1, tzinfo=UTC)."
        )
    return moment


def _range_us(
    start: datetime | None, end: datetime | None, incremental: bool
) -> tuple[int | None, int | None]:
    """A materialization's (or a backfill's) event-time range in µs, checked."""
    if incremental and (start is not None or end is not None):
        raise ConfigError(
            "an incremental run resumes from the watermark, so it takes no start or end: give one or the other."
        )
    for name, moment in (("start", start), ("end", end)):
        if moment is not None:
            _zoned(name, moment)
    if start is not None and end is not None and start > end:
        raise ConfigError(f"start {start.isoformat()} is after end {end.isoformat()}; swap them.")
    return (None if start is None else _to_us(start)), (None if end is None else _to_us(end))


@dataclass
class _RunTally:
    """What a recorded run's body reports: the rows it wrote."""

    rows_written: int = 0


def _tell(message: str) -> None:
    print(message, file=sys.stderr)


class FeatureStore:
    """A feature repo, its metadata database, its stores and its executors.

    ``FeatureStore("feature_repo").get_historical_features(entity_df, ["card_activity:count_1h"])``
    builds training data; ``get_online_features`` serves; ``materialize``, ``push`` and
    ``ingestor`` fill the online store. Connections open on first use.
    """

    def __init__(self, repo: str | Path | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load(repo)
        self.repo: Repo = load_repo(self.settings.repo)
        #: Compiled plans of every view, resolved once (not per request or per event).
        self.plans = {name: compile_view(view) for name, view in self.repo.views.items()}
        self._database: Database | None = None
        self._batch: BatchExecutor | None = None
        self._redis: redis.Redis | None = None
        self._project = self.settings.project

    @property
    def database(self) -> Database:
        """The metadata database (opened and migrated on first use)."""
        if self._database is None:
            self._database = open_database(self.settings.database_url)
        return self._database

    @property
    def batch(self) -> BatchExecutor:
        """The batch executor for this repo's history."""
        if self._batch is None:
            self._batch = BatchExecutor(self.settings.repo)
        return self._batch

    @functools.cached_property
    def redis_url(self) -> str:
        """The online store's URL: REDIS_URL, or the repo's local redis-server, started if needed."""
        return resolve_redis_url(self.settings, notify=_tell)

    @property
    def redis(self) -> redis.Redis:
        """A client for the online store (checked reachable on first use)."""
        if self._redis is None:
            self._redis = connect_redis(self.redis_url)
        return self._redis

    def feature_refs(self, features: Features) -> Sequence[str]:
        """The "view:feature" references ``features`` stand for (a feature service is looked up
        in this repo by name, so a stale object cannot serve another list)."""
        if isinstance(features, FeatureService):
            return self.repo.service(features.name).refs
        if isinstance(features, str):
            return self.repo.service(features).refs
        return features

    def get_online_features(
        self,
        features: Features,
        entity_rows: Mapping[str, Sequence[Any]],
        *,
        full_feature_names: bool = False,
        at: datetime | None = None,
    ) -> OnlineResult:
        """Current values of ``features`` for columnar ``entity_rows`` (``{"card_id": [...]}``),
        with a status per value; ``at`` reads as of another time (tests, replays). ``features``
        are "view:feature" references, or a feature service (its object or its name)."""
        read = self.prepare_online_read(features, entity_rows, full_feature_names=full_feature_names, at=at)
        return read_online(self.redis, read)

    def prepare_online_read(
        self,
        features: Features,
        entity_rows: Mapping[str, Sequence[Any]],
        *,
        full_feature_names: bool = False,
        at: datetime | None = None,
    ) -> OnlineRead:
        """The Redis commands of an online read and how to decode them, without I/O (the API runs
        them on its asyncio client); bad features or entity rows raise here."""
        return prepare_read(
            self.repo,
            self.plans,
            self._project,
            self.feature_refs(features),
            entity_rows,
            at_us=_to_us(datetime.now(UTC) if at is None else _zoned("at", at)),
            full_feature_names=full_feature_names,
        )

    def materialize(
        self,
        views: Sequence[str] = (),
        *,
        incremental: bool = False,
        start: datetime | None = None,
        end: datetime | None = None,
        on_progress: Callable[[str, int, int], None] = lambda view, done, total: None,
    ) -> list[MaterializeResult]:
        """Load history into Redis for ``views`` (default: all): every event up to now, only those
        of event time ``start`` to ``end`` (both included, like Feast's ``materialize``), or, with
        ``incremental``, those ingested since the watermark (docs/semantics.md §9)."""
        now = datetime.now(UTC)
        start_us, end_us = _range_us(start, end, incremental)
        named = dict.fromkeys(self.repo.view(v).name for v in views)  # each once, in order
        plans = [self.plans[name] for name in named] or list(self.plans.values())
        watermarks = {plan.name: self._watermark(plan.name) if incremental else None for plan in plans}
        for plan in plans:  # every view's checks, before anything is written
            if start_us is not None:
                check_start(plan, start_us, _to_us(now))
            if watermarks[plan.name] is None:  # a full run or a range: it clears windowed views
                check_alone(self.redis, plan)
        ranged = start_us is not None or end_us is not None
        results = []
        for plan in plans:
            watermark = watermarks[plan.name]
            mode = "incremental" if watermark else "range" if ranged else "full"
            with self._recorded_run(plan, "online", mode, start=start, end=min(end or now, now)) as run:
                result = materialize_view(
                    self.batch,
                    self.redis,
                    plan,
                    self._project,
                    now_us=_to_us(now),
                    watermark_us=watermark,
                    start_us=start_us,
                    end_us=end_us,
                    on_progress=functools.partial(on_progress, plan.name),
                )
                run.rows_written = result.written
            if result.watermark_us is not None:
                self._set_watermark(plan.name, result.watermark_us)
            elif ranged and plan.kind == "feature_view":
                self._drop_watermark(plan.name)  # its state no longer holds every event up to it
            results.append(result)
        return results

    def push(self, source: str, events: Any) -> int:
        """Send events (a polars or pandas DataFrame, or a list of dicts) to ``source``'s stream for `skewless ingest`."""
        if source not in self.repo.sources:
            raise DefinitionError(
                f"Unknown source '{source}'; this repo declares: {', '.join(sorted(self.repo.sources))}."
            )
        return push_events(self.redis, self.repo.sources[source], events)

    def ingestor(self, sources: Sequence[str] = (), **options: Any) -> StreamIngestor:
        """A stream consumer for ``sources`` (default: every source with a stream)."""
        streamed = self._streamed(sources)
        chosen: dict[str, tuple[EventSource, list[ViewPlan]]] = {}
        for view in self.repo.views.values():
            if view.source.name in streamed:
                chosen.setdefault(view.source.name, (view.source, []))[1].append(self.plans[view.name])
        unread = sorted(set(sources) - set(chosen))
        if unread:
            raise DefinitionError(
                f"No view reads source(s) {', '.join(unread)}; nothing of theirs to ingest."
            )
        if not chosen:
            raise DefinitionError("No view reads a source with a stream=; nothing to ingest.")
        return StreamIngestor(self.redis, self.settings.repo, chosen, project=self._project, **options)

    def compact(
        self,
        sources: Sequence[str] = (),
        *,
        settle: timedelta = timedelta(minutes=1),
        on_file: Callable[[str, int, int], None] = lambda source, done, total: None,
    ) -> dict[str, CompactionResult]:
        """Merge the files `ingest` landed for ``sources`` (default: every streamed source) into
        few large ones (offline/landed.py): only files older than ``settle`` holding entries
        every consumer group has acknowledged. What readers see does not change."""
        results = {}
        for name, source in self._streamed(sources).items():
            needed = first_needed(self.redis, str(source.stream))
            results[name] = compact_landed(
                self.settings.repo / source.stream_history,
                acknowledged_before=None if needed is None else entry_position(needed),
                settled_before=time.time() - settle.total_seconds(),
                on_file=functools.partial(on_file, name),
            )
        return results

    def dead_letters(self, sources: Sequence[str] = (), *, last: int = 10) -> dict[str, DeadLetters]:
        """For ``sources`` (default: every streamed source), the events `ingest` could not apply:
        counted by kind of reason, and the ``last`` newest with their reason and fields."""
        return {
            name: read_dead_letters(self.redis, str(source.stream), last=last)
            for name, source in self._streamed(sources).items()
        }

    def _streamed(self, sources: Sequence[str]) -> dict[str, EventSource]:
        """``sources`` (default: every source with a stream) by name, each checked to have one."""
        streamed = {name: source for name, source in self.repo.sources.items() if source.stream}
        unknown = sorted(set(sources) - set(streamed))
        if unknown:
            raise DefinitionError(
                f"No stream for source(s) {', '.join(unknown)}; streamed sources: {', '.join(sorted(streamed)) or 'none'}."
            )
        return {name: streamed[name] for name in sources or sorted(streamed)}

    def _watermark(self, view: str) -> int | None:
        with self.database.session() as session:
            row = session.get(Watermark, (view, "online"))
            return _to_us(row.watermark) if row else None

    def _drop_watermark(self, view: str) -> None:
        with self.database.session() as session:
            session.execute(delete(Watermark).where(Watermark.view == view, Watermark.target == "online"))

    def _set_watermark(self, view: str, watermark_us: int) -> None:
        moment = datetime.fromtimestamp(watermark_us / 1e6, UTC)
        with self.database.session() as session:
            row = session.get(Watermark, (view, "online"))
            if row is None:
                session.add(Watermark(view=view, target="online", watermark=moment))
            else:
                row.watermark = moment

    def get_historical_features(
        self,
        entity_df: Any,
        features: Features,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        as_available: bool = False,
    ) -> pl.DataFrame:
        """Point-in-time correct values of ``features`` ("view:feature") for each entity row.

        ``entity_df`` (polars or pandas) holds the join keys and a UTC timestamp column. With
        ``as_available`` only events ingested by each row's time count (docs/semantics.md §7).
        """
        return get_historical_features(
            self.repo,
            self.batch,
            as_polars(entity_df),
            self.feature_refs(features),
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            as_available=as_available,
        )

    def create_training_set(
        self,
        entity_df: Any,
        features: Features,
        out: str | Path,
        *,
        name: str | None = None,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        as_available: bool = False,
    ) -> TrainingSet:
        """Build a training set, write it to ``out`` (.parquet or .csv) and record it."""
        path = Path(out)
        name = name or path.stem
        check_output(path, name)
        frame = self.get_historical_features(
            entity_df,
            features,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            as_available=as_available,
        )
        write_frame(frame, path)
        return record_training_set(
            self.database,
            self.repo,
            frame,
            self.feature_refs(features),
            name=name,
            path=path,
            timestamp_column=timestamp_column,
            as_available=as_available,
        )

    def backfill(
        self,
        views: Sequence[str] = (),
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        on_day: Callable[[str, datetime, int, int], None] = lambda view, day, rows, days: None,
    ) -> list[BackfillResult]:
        """Write the offline tables of ``views`` (default: every FeatureView) for [start, end).

        ``on_day(view, day, rows, days)`` is called after each daily partition is written.
        """
        _range_us(start, end, incremental=False)  # times with a zone, start not after end
        windowed = [view for view in self.repo.views.values() if isinstance(view, FeatureView)]
        named = {view.name: view for view in map(self.repo.view, views)}  # each once, in order
        plain = [name for name, view in named.items() if not isinstance(view, FeatureView)]
        if plain:  # read from its source by training sets and materialization alike
            raise ExecutionError(
                f"'{plain[0]}' is a plain view: its rows are its source's, with nothing to backfill; "
                f"name feature views ({', '.join(view.name for view in windowed)})."
            )
        chosen = list(named.values()) or windowed
        results = []
        for view in chosen:
            plan = self.plans[view.name]
            with self._recorded_run(plan, "offline", "full", start=start, end=end) as run:
                result = backfill_view(
                    self.batch,
                    plan,
                    self.settings.repo,
                    start=start,
                    end=end,
                    on_day=functools.partial(on_day, view.name),
                )
                run.rows_written = result.rows
            results.append(result)
        return results

    @contextlib.contextmanager
    def _recorded_run(
        self,
        plan: ViewPlan,
        target: str,
        mode: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[_RunTally]:
        """A materialization_runs row for the work inside: "running", then "succeeded" with the
        rows the body counted, or "failed" with the error, or "interrupted" (re-raised).

        The "running" row is written from a thread while the work starts: opening the database
        and committing the row took 0.02 s, a tenth of materializing 100,000 rows, and the work's
        first steps (opening DuckDB, reading) leave the GIL free for it. A database error still
        surfaces, once the work is done."""
        row = {
            "view": plan.name,
            "target": target,
            "mode": mode,
            "start": start,
            "end": end,
            "definition_version": plan.version,
            "started_at": utcnow(),
        }
        tally, status, error = _RunTally(), "failed", None
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = pool.submit(self._add_run, row)
            try:
                yield tally
                status = "succeeded"
            except BaseException as exc:  # Ctrl-C too: the row must not stay "running"
                error = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
                raise
            finally:
                run_id = started.result()
                with self.database.session() as session:
                    run = session.get_one(MaterializationRun, run_id)
                    run.status, run.error, run.finished_at = status, error, utcnow()
                    run.rows_written = tally.rows_written if status == "succeeded" else 0

    def _add_run(self, row: dict[str, Any]) -> int:
        """Insert a "running" materialization_runs row; returns its id."""
        with self.database.session() as session:
            run = MaterializationRun(**row)
            session.add(run)
            session.flush()
            return run.id

    def close(self) -> None:
        """Release database, Redis and DuckDB connections."""
        if self._redis is not None:
            self._redis.close()
        if self._database is not None:
            self._database.close()
        if self._batch is not None:
            self._batch.close()
