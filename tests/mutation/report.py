"""Per-module mutation scores from `mutmut results --all true`, read on stdin.

A mutant counts as killed when a test failed on it (or it hung past mutmut's timeout,
which a caller would notice too); survivors and mutants no selected test reached are
not killed. Run through `make mutation`.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout"}


def scores(lines: list[str]) -> dict[str, Counter[str]]:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x_", 1)[0].split(".xǁ", 1)[0]
        by_module[module][status] += 1
    return by_module


def main() -> int:
    by_module = scores(sys.stdin.read().splitlines())
    total: Counter[str] = Counter()
    print(
        f"{'module':34} {'mutants':>7} {'killed':>7} {'survived':>8} {'untested':>8} {'score':>6}"
    )
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        print(_row(module, counts))
    print(_row("all", total))
    return 0


def _row(name: str, counts: Counter[str]) -> str:
    mutants = sum(counts.values())
    killed = sum(counts[status] for status in KILLED)
    return (
        f"{name:34} {mutants:7} {killed:7} {counts['survived']:8} {counts['no tests']:8}"
        f" {100 * killed / mutants if mutants else 0:5.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
