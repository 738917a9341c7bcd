"""The ``skewless`` command line (typer + rich)."""
