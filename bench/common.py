"""What every benchmark shares: a prepared example repo, timing in fresh processes, the report."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "results"
REPORT = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    """One line describing this machine, for the report."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()}; speed: {python_speed():.2f} s for 10M Python additions"
    )


def python_speed() -> float:
    """Seconds for 10M additions in a Python loop (best of 3): machines of one kind differ by 2-3×
    from day to day here, so absolute numbers from different runs compare only through this."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def prepared_repo(name: str, events: int, cards: int = 20_000) -> Path:
    """A copy of the example repo with generated data under bench/results/<name> (reused)."""
    from skewless.examples.fraud_data import FraudDataSpec, write_example_data

    repo = WORK / name
    marker = repo / "data" / f".events-{events}"
    if not marker.exists():
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(
            ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", ".skewless", "__pycache__")
        )
        write_example_data(
            repo / "data", FraudDataSpec(events=events, cards=cards, end=datetime(2026, 11, 1, tzinfo=UTC))
        )
        marker.touch()
    return repo


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON it prints last (timings, peak memory)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This program's peak resident memory in MiB: Linux's ``VmHWM``. ``getrusage``'s
    ``ru_maxrss`` survives ``exec``, so a child started by a large parent reported the parent's
    size (3,092 MiB for every engine in a full `make bench`, after the training section)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_section(title: str, body: str) -> None:
    """Replace (or append) the report section ``## title`` in docs/benchmarks.md."""
    text = (
        REPORT.read_text()
        if REPORT.exists()
        else "# Benchmarks\n\nProduced by `make bench`; every comparison ran side by side in one run.\n"
    )
    header = f"## {title}\n"
    stamp = f"_Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}._\n\n"
    section = header + "\n" + stamp + body.strip() + "\n"
    if header in text:
        start = text.index(header)
        nxt = text.find("\n## ", start + len(header))
        text = text[:start] + section + (text[nxt:] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    REPORT.write_text(text)
