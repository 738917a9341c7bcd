"""`python -m bench --help` explains and runs nothing (it used to start every benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_help_explains_and_runs_nothing() -> None:
    before = (ROOT / "docs" / "benchmarks.md").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--only {training,online,serving}" in result.stdout
    assert (ROOT / "docs" / "benchmarks.md").read_bytes() == before


def test_bench_refuses_an_unknown_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--fast"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "unrecognized arguments: --fast" in result.stderr
