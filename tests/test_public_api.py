"""The public surface: one sorted ``__all__``, every name importable from ``skewless``."""

from __future__ import annotations

import skewless


def test_all_is_sorted_and_complete() -> None:
    assert skewless.__all__ == sorted(skewless.__all__)
    for name in skewless.__all__:
        assert hasattr(skewless, name), name


def test_every_error_is_a_skewless_error() -> None:
    for name in (
        "ConfigError",
        "DefinitionError",
        "ExecutionError",
        "MetadataError",
        "MonitorError",
        "StoreError",
        "TransformError",
    ):
        assert issubclass(getattr(skewless, name), skewless.SkewlessError)


def test_importing_skewless_does_not_import_feast() -> None:
    import subprocess
    import sys

    code = "import sys, skewless; print('feast' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
