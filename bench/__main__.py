"""`make bench`: run every benchmark and update docs/benchmarks.md.

`python -m bench [--quick]` — --quick skips the largest scale runs.
"""

from __future__ import annotations

import sys

from bench import online, serving, training_set


def main() -> None:
    quick = "--quick" in sys.argv
    training_set.main(large=not quick)
    online.main(large=not quick)
    serving.main()


if __name__ == "__main__":
    main()
