"""`make bench`: run the benchmarks and update their sections of docs/benchmarks.md."""

from __future__ import annotations

import argparse

from bench import online, serving, training_set

SECTIONS = ("training", "online", "serving")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run skewless's benchmarks side by side with Feast 0.67 and rewrite their "
        "sections of docs/benchmarks.md (minutes; nothing else may run on the machine meanwhile).",
    )
    parser.add_argument("--quick", action="store_true", help="skip the largest scale runs (1M rows)")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeat for more)"
    )
    args = parser.parse_args(argv)
    chosen = args.only or SECTIONS
    if "training" in chosen:
        training_set.main(large=not args.quick)
    if "online" in chosen:
        online.main(large=not args.quick)
    if "serving" in chosen:
        serving.main()


if __name__ == "__main__":
    main()
