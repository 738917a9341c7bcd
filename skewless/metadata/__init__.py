"""Operational state in a real database: SQLAlchemy 2 models, Alembic migrations, sessions."""

from skewless.metadata.db import Database, open_database

__all__ = ["Database", "open_database"]
