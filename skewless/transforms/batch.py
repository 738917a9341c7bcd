"""The batch executor: computes a compiled view over event history with DuckDB and polars.

DuckDB reads the history (parquet or a table of the repo's offline database), keeps the events
that count (docs/semantics.md §3), hands them to polars through Arrow for the row-level
transform — the same function the incremental executor calls — and takes them back through
Arrow to compute every window for every entity row in one SQL statement per view.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from skewless._errors import ExecutionError
from skewless.offline.landed import landed_files
from skewless.repo.files import definition_files
from skewless.transforms.batch_sql import (
    history_reach_us,
    order_rank,
    plain_view_sql,
    quote,
    valid_events_sql,
)
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.prepared import PreparedHistory
from skewless.transforms.versioning import content_version
from skewless.transforms.window_sql import ViewQuery, feature_view_sql, join_span_us, sweep_sql

__all__ = ["OFFLINE_DATABASE", "BatchExecutor"]

#: The repo's offline DuckDB database, relative to the repo root (sources with ``table=``).
OFFLINE_DATABASE = "data/offline.duckdb"
#: Entity rows computed per DuckDB statement (bounds the join's memory).
ROW_CHUNK = 200_000
#: A windowed view is swept (window_sql.sweep_sql) when the join would meet this many times more
#: row-event pairs than the sweep has events and rows. Measured (2026-11-28): the sweep costs
#: about 1 µs per event or row, the join 0.35 µs per pair.
SWEEP_RATIO = 4.0
#: Aggregations whose windows reach this many times further back than the raw events the others
#: need come from tiles (window_sql.tiled_aggregations).
TILE_RATIO = 2.0


def first_copies(plan: ViewPlan, events: pl.DataFrame) -> pl.DataFrame:
    """The first copy of each (event id, event time, join keys) of ``events`` (in arrival order),
    and every event whose id is null: it is nobody's copy (docs/semantics.md §3).

    Copies share ``__copy_hash`` (``valid_events_sql``), so only the events whose hash repeats
    — one in a hundred in the example — are compared by identity: hashing a million identities
    in polars took 0.15-0.25 s, finding the repeated hashes by sorting them 0.02 s."""
    event_id = plan.source.event_id
    if event_id is None:
        return events
    hashes = events["__copy_hash"].sort()
    repeated = hashes.filter(hashes == hashes.shift(1))
    if repeated.is_empty():
        return events.drop("__copy_hash")
    candidates = events["__copy_hash"].is_in(repeated.implode())
    at = candidates.arg_true()
    identity = pl.struct(event_id, "__event_us", *plan.join_keys)
    first = events[at].select(pl.col(event_id).is_null() | identity.is_first_distinct()).to_series()
    return events.filter((~candidates).scatter(at, first)).drop("__copy_hash")


def _in_arrival_order(events: pl.DataFrame) -> pl.DataFrame:
    """``events`` sorted by (ingest time, arrival position). An event log is usually written in
    arrival order already: checking it costs 0.01 s, where DuckDB's ORDER BY took 0.13 s more
    than reading 1M events."""
    ingest, position = pl.col("__ingest_us"), pl.col("__ord")
    later = (ingest > ingest.shift(1)) | ((ingest == ingest.shift(1)) & (position > position.shift(1)))
    if events.select(later.slice(1).all()).item():
        return events
    return events.sort("__ingest_us", "__ord")


def _ordered_columns(plan: ViewPlan) -> list[str]:
    """The columns an ordered aggregation (``last``) reads: each gets a rank column."""
    return sorted({a.column for a in plan.aggregations if a.aggregator.ordered and a.column})


def _with_order_ranks(plan: ViewPlan, events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with, for each column an ordered aggregation (``last``) reads, each event's rank
    by (event time, ingest time, event id, value) — so the window query compares one integer per
    event where a struct with a string took a third of its time."""
    keys = ("__event_us", "__ingest_us", "__order_id")
    return events.with_columns(
        pl.arg_sort_by(*keys, column).arg_sort().alias(order_rank(column))
        for column in _ordered_columns(plan)
    )


def _prepared_columns(plan: ViewPlan) -> list[str]:
    """The columns of ``__events`` a windowed view's SQL reads (batch_sql's list): what its
    prepared history keeps of the events."""
    read = sorted({a.column for a in plan.aggregations if a.column})
    ranks = [order_rank(c) for c in _ordered_columns(plan)]
    return [*plan.join_keys, "__event_us", "__ingest_us", "__ord", *read, *ranks]


def _since_us(plan: ViewPlan, rows: pl.DataFrame) -> int | None:
    """The earliest event time any of ``rows`` can see (None: all history can matter). A
    training set of last month's rows then reads last month's events, not years of them."""
    reach = history_reach_us(plan)
    return None if reach is None or rows.is_empty() else int(rows["__t"].min()) - reach  # type: ignore[arg-type]


def _history_us(events: pl.DataFrame) -> int:
    """The stretch of event time ``events`` cover (0 for none)."""
    if events.is_empty():
        return 0
    times = events["__event_us"]
    return int(times.max()) - int(times.min())  # type: ignore[arg-type]


@contextlib.contextmanager
def _computing(plan: ViewPlan) -> Iterator[None]:
    """DuckDB's errors while computing ``plan``'s features, as the executor's."""
    try:
        yield
    except duckdb.Error as exc:
        raise ExecutionError(f"view '{plan.name}': computing features failed: {exc}") from exc


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """``frame`` for DuckDB to scan, with its strings as Arrow string views, polars' own layout:
    no copy (plain Arrow strings cost a copy of every string, 0.01-0.03 s per 1M events).

    Arrow's record batches need every column cut at the same rows, and polars copies the whole
    frame into one piece when they are not. Events come from DuckDB in pieces, and a column
    computed over all of them at once (the ranks) is one piece: cutting that column where the
    first column is cut keeps the rest as it is (1M events: 0.065 s of copying saved)."""
    lengths = frame.to_series(0).chunk_lengths() if frame.width else []
    if len(lengths) > 1:
        pieces = list(zip(itertools.accumulate(lengths[:-1], initial=0), lengths, strict=True))
        frame = pl.DataFrame(
            pl.concat([s.slice(start, n) for start, n in pieces], rechunk=False) if s.n_chunks() == 1 else s
            for s in frame.iter_columns()
        )
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


class BatchExecutor:
    """Runs compiled views over history. One executor per repo; not shared across threads."""

    def __init__(
        self,
        repo_root: Path,
        *,
        threads: int | None = None,
        tile_ratio: float | None = TILE_RATIO,
        row_chunk: int = ROW_CHUNK,
        sweep: bool | None = None,
        buckets: bool | None = None,
        prepare: bool = True,
    ) -> None:
        self.repo_root = repo_root
        # Where windowed views keep their prepared history (None: never kept; prepared.py).
        self.prepared_root = repo_root / ".skewless" / "prepared" if prepare else None
        self.tile_ratio = tile_ratio
        self.row_chunk = row_chunk
        self.sweep = sweep  # None: by the expected row-event pairs (``_sweeps``)
        self.buckets = buckets  # None: by the events' history (``window_sql._bucket_us``)
        self.connection = duckdb.connect()
        # Spill files go to the repo's state directory, never into the working directory.
        spill = repo_root / ".skewless" / "duckdb_tmp"
        self.connection.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        # Results cross to polars with their strings as Arrow string views: no copy either way.
        self.connection.execute("SET produce_arrow_string_view = true")
        self.connection.execute("SET arrow_output_version = '1.5'")
        database = repo_root / OFFLINE_DATABASE
        if database.exists():
            self.connection.execute(f"ATTACH '{database}' AS offline (READ_ONLY)")

    def validate(self, plan: ViewPlan) -> None:
        """Fail early, with the fix, when the view's history cannot be read."""
        source = plan.source
        if source.path is not None:
            path = self.repo_root / source.path
            if not any(path.parent.glob(path.name)) and not landed_files(
                self.repo_root / source.stream_history
            ):
                raise ExecutionError(
                    f"view '{plan.name}': no history at {path} for source '{source.name}'; "
                    "write the file (e.g. `skewless generate` for the example) or fix path=."
                )
        elif not self.connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'offline' AND table_name = ?",
            [source.table],
        ).fetchone()[0]:  # type: ignore[index]
            raise ExecutionError(
                f"view '{plan.name}': table '{source.table}' not found in {self.repo_root / OFFLINE_DATABASE}."
            )

    def _source_sql(self, plan: ViewPlan) -> str:
        """The source's rows with ``__ord`` (arrival position: file, then row; unique across
        files) and ``__entry`` (the stream entry an event was ingested from, null otherwise)."""
        source = plan.source
        columns = ", ".join(quote(c) for c in source.columns)
        if source.path is None:
            return f"SELECT {columns}, rowid AS __ord, NULL::VARCHAR AS __entry FROM offline.{quote(str(source.table))}"
        history = self.repo_root / source.path
        paths = [str(history)] if any(history.parent.glob(history.name)) else []
        landed = landed_files(self.repo_root / source.stream_history)
        paths += [str(path) for path in landed]
        # Landed stream files carry the entry (union_by_name: null in the others).
        entry = "__entry" if landed else "NULL::VARCHAR AS __entry"
        listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        return (
            f"SELECT {columns}, (file_index::BIGINT << 40) + file_row_number AS __ord, {entry} "
            f"FROM read_parquet([{listed}], file_row_number = true, union_by_name = true)"
        )

    def events(
        self,
        plan: ViewPlan,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        transform: bool = True,
    ) -> pl.DataFrame:
        """The view's counted events (of event time ``since_us`` to ``until_us``), in arrival
        order; unless ``transform`` is False (a replay into the incremental executor transforms
        itself), also transformed and ranked for the view's ordered aggregations
        (``_with_order_ranks``). Copies share their event time, so a time range keeps or drops
        all copies of an event together."""
        self.validate(plan)
        bounds = [f"__event_us >= {int(since_us)}"] if since_us is not None else []
        bounds += [f"__event_us <= {int(until_us)}"] if until_us is not None else []
        where = f"WHERE {' AND '.join(bounds)}" if bounds else ""
        sql = f"SELECT * FROM ({valid_events_sql(plan, self._source_sql(plan))}) {where}"
        try:
            events = pl.from_arrow(self.connection.sql(sql).to_arrow_table())
        except duckdb.Error as exc:
            raise ExecutionError(
                f"view '{plan.name}': reading source '{plan.source.name}' failed: {exc}"
            ) from exc
        assert isinstance(events, pl.DataFrame)
        # Arrival order: deterministic (DuckDB scans in parallel) and the order a stream replays.
        events = first_copies(plan, _in_arrival_order(events))
        if not transform:
            return events
        return _with_order_ranks(plan, plan.transformed(events))

    def history(
        self, plan: ViewPlan, *, since_us: int | None = None, until_us: int | None = None
    ) -> pl.DataFrame:
        """The view's counted events of event time ``since_us`` to ``until_us``, transformed and
        ranked, as ``events`` gives them; for a windowed view over parquet history, only the
        columns its SQL reads, from its prepared history (prepared.py), which is kept for the
        next caller when it was not there. A backfill reads its history this way."""
        events, prepared = self._read_history(plan, since_us, until_us)
        if prepared is None:
            return events
        times = pl.col("__event_us")
        bounds = [times >= since_us] if since_us is not None else []
        bounds += [times <= until_us] if until_us is not None else []
        return events.filter(*bounds) if bounds else events

    def compute(
        self,
        plan: ViewPlan,
        rows: pl.DataFrame,
        *,
        as_available: bool = False,
        events: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Feature values at each entity row's time.

        ``rows`` has ``__row`` (an integer id), the view's join keys and ``__t`` (event time in
        µs since the epoch). The result has ``__row`` and one column per feature, in row order.
        ``events`` lets a caller that computes many batches (a backfill) read history once;
        without it a windowed view reads its prepared history (prepared.py) when it can, else
        the events the rows can see.
        """
        prepared = None
        if events is None:
            until_us = int(rows["__t"].max())  # type: ignore[arg-type]
            events, prepared = self._read_history(plan, _since_us(plan, rows), until_us)
        self.connection.register("__events", _arrow(events))
        built: list[str] = []
        try:
            query, chunks = self._plan_query(plan, rows, events, as_available)
            if prepared is not None or len(chunks) > 1:
                built = self._build_relations(plan, query, prepared)
            sql = query.sql(with_relations=not built)
            parts = [self._compute_chunk(plan, sql, chunk) for chunk in chunks]
        finally:
            for name in built:
                self.connection.unregister(name)
            self.connection.unregister("__events")
        frame = pl.concat(parts) if parts else pl.DataFrame()
        return frame.cast(dict(plan.features))  # type: ignore[arg-type]

    def _read_history(
        self, plan: ViewPlan, since_us: int | None, until_us: int | None
    ) -> tuple[pl.DataFrame, PreparedHistory | None]:
        """The events from ``since_us`` to ``until_us``, or, with the prepared history it comes
        from, all that it holds (a superset, read without a copy)."""
        prepared = self._prepared(plan, since_us)
        if prepared is None:
            return self.events(plan, since_us=since_us, until_us=until_us), None
        return self._prepared_events(plan, prepared), prepared

    def _prepared(self, plan: ViewPlan, since_us: int | None) -> PreparedHistory | None:
        """The prepared history of a windowed view over parquet history that holds the events
        from ``since_us`` on, if it may be kept."""
        source = plan.source
        if self.prepared_root is None or plan.kind != "feature_view" or source.path is None:
            return None
        history = self.repo_root / source.path
        files = sorted(history.parent.glob(history.name))
        files += landed_files(self.repo_root / source.stream_history)
        definitions = definition_files(self.repo_root)
        return PreparedHistory.open(self.prepared_root, plan, files, definitions, since_us)

    def _prepared_events(self, plan: ViewPlan, prepared: PreparedHistory) -> pl.DataFrame:
        """The view's counted events from where ``prepared`` starts, transformed and ranked:
        from ``prepared``, else computed and kept there. Ranks over them order any part of them
        as they would that part alone, and tiles outside a row's reach are never read, so every
        training set whose rows reach no further back can start from them."""
        columns = _prepared_columns(plan)
        part = f"events-{content_version({'columns': columns})}"
        table = prepared.read(part)
        if table is None:
            table = _arrow(self.events(plan, since_us=prepared.since_us).select(columns))
            prepared.write(part, table)
        events = pl.from_arrow(table)
        assert isinstance(events, pl.DataFrame)
        return events

    def _build_relations(
        self, plan: ViewPlan, query: ViewQuery, prepared: PreparedHistory | None
    ) -> list[str]:
        """Build ``query``'s relations (the tiles, which depend on the events alone) once, as
        Arrow tables the chunks' queries scan, and keep them in ``prepared``. For many chunks of
        rows: at 10M events each chunk spent 3.7 s of CPU rebuilding them. A single chunk
        without a prepared history inlines them: a table costs its copy."""
        for name, sql in query.relations:
            part = f"tiles-{content_version({'sql': sql})}"
            table = prepared.read(part) if prepared is not None else None
            if table is None:
                with _computing(plan):
                    table = self.connection.sql(sql).to_arrow_table()
                if prepared is not None:
                    prepared.write(part, table)
            self.connection.register(name, table)
        return [name for name, _ in query.relations]

    def _plan_query(
        self, plan: ViewPlan, rows: pl.DataFrame, events: pl.DataFrame, as_available: bool
    ) -> tuple[ViewQuery, list[pl.DataFrame]]:
        """The SQL for ``plan``, and the chunks of ``rows`` it runs on. A join takes entity rows
        in chunks: its intermediate result grows with rows × events per key, so a million rows
        at once can exhaust memory where chunks of them do not. A sweep takes them all at once."""
        chunks = [rows.slice(i, self.row_chunk) for i in range(0, rows.height, self.row_chunk)]
        if plan.kind == "plain_view":
            return ViewQuery((), (), plain_view_sql(plan, as_available=as_available)), chunks
        history = _history_us(events)
        if not as_available and self._sweeps(plan, rows, events, history):
            return ViewQuery((), (), sweep_sql(plan)), [rows]
        bucketing = {None: history, True: None, False: 0}[self.buckets]  # see window_sql._bucket_us
        query = feature_view_sql(
            plan, as_available=as_available, tile_ratio=self.tile_ratio, history_us=bucketing
        )
        return query, chunks

    def _sweeps(self, plan: ViewPlan, rows: pl.DataFrame, events: pl.DataFrame, history_us: int) -> bool:
        """Whether to compute ``plan`` by a sweep (``window_sql.sweep_sql``) rather than the join:
        as the executor was told, else when the join would meet more than ``SWEEP_RATIO`` times
        as many row-event pairs as a sweep has events and rows. The estimate: each row's
        entity's events (counted in every n-th event: some 50,000 find the busy entities, in
        5 ms where counting all 1M took 20), times the share of their ``history_us`` the join's
        span covers."""
        if self.sweep is not None:
            return self.sweep
        if events.is_empty() or rows.is_empty():
            return False
        keys = list(plan.join_keys)
        step = max(1, events.height // 50_000)
        counts = events.select(keys).gather_every(step).group_by(keys).len()
        entities = rows.select(pl.col(k).cast(events.schema[k]) for k in keys)
        pairs = int(entities.join(counts, on=keys)["len"].sum()) * step
        span = join_span_us(plan, as_available=False, tile_ratio=self.tile_ratio)
        share = min(1.0, span / history_us) if history_us else 1.0
        return pairs * share > SWEEP_RATIO * (events.height + rows.height)

    def _compute_chunk(self, plan: ViewPlan, sql: str, rows: pl.DataFrame) -> pl.DataFrame:
        self.connection.register("__rows", _arrow(rows))
        try:
            with _computing(plan):
                result = pl.from_arrow(self.connection.sql(sql).to_arrow_table())
        finally:
            self.connection.unregister("__rows")
        assert isinstance(result, pl.DataFrame)
        return result

    def close(self) -> None:
        """Release the DuckDB connection."""
        self.connection.close()
