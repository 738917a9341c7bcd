"""Connections to the stores skewless writes: Redis (online) and, later, DuckDB (offline)."""
