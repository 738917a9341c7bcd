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


def test_a_childs_peak_memory_is_its_own() -> None:
    """The benchmarks time each engine in a child process started by a large parent: its peak is
    its own (``ru_maxrss`` carried the parent's over exec)."""
    parent = bytearray(300 * 1024 * 1024)
    parent[:: 1 << 12] = b"\x01" * len(range(0, len(parent), 1 << 12))  # touch every page
    code = "from bench.common import peak_rss_mb; print(peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert float(child.stdout) < 200 and len(parent)
