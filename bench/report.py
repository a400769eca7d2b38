"""The printed tables, and the issue's targets checked against the figures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .runner import Pair
from .scaling import ListingAtSize, ManyAccounts
from .writes import WritesAtSize

THROUGHPUT_TARGET = 0.8
ADDED_P50_TARGET_MS = 0.5
RSS_TARGET_MB = 150.0
WRITE_THROUGHPUT_TARGET = 0.6
WRITE_ADDED_P50_TARGET_MS = 2.0
WRITES_FLAT_TARGET = 0.8  # 10,000 docs vs 200: within 20 %
SPREAD_TARGET = 0.5
WRITES = ("PUT (create)", "POST (replace)", "PATCH (merge)")

HEADER = (
    f"{'operation':<22}{'conc':>5} |{'API ops/s':>10}{'raw ops/s':>10}{'ratio':>7} |"
    f"{'API p50':>8}{'raw p50':>8}{'added':>7} |{'API p99':>8}{'raw p99':>8} |"
    f"{'svc CPU/op':>11}{'svc CPU':>8}{'couch CPU':>10}"
)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def pair_line(pair: Pair) -> str:
    api, raw = pair.api, pair.raw
    return (
        f"{pair.name:<22}{pair.concurrency:>5} |{api.ops_per_s:>10.1f}{raw.ops_per_s:>10.1f}"
        f"{pair.throughput_ratio:>7.2f} |{api.p50_ms:>8.2f}{raw.p50_ms:>8.2f}"
        f"{pair.added_p50_ms:>+7.2f} |{api.p99_ms:>8.2f}{raw.p99_ms:>8.2f} |"
        f"{api.service_cpu_ms_per_op:>9.2f}ms{_share(api.service_cpu_share):>8}"
        f"{_share(api.couch_cpu_share):>5}/{_share(raw.couch_cpu_share):<4}"
    )


def pair_table(pairs: Iterable[Pair]) -> list[str]:
    lines = [HEADER, "-" * len(HEADER)]
    lines.extend(pair_line(pair) for pair in pairs)
    return lines


LEGEND = [
    "latencies in ms; ratio = API ops/s / raw ops/s; added = API p50 - raw p50;",
    "svc CPU/op = service CPU time per API call; svc CPU = share of one core the service",
    "used during the API runs; couch CPU = CouchDB's share of one core, API runs / raw runs.",
    "Each figure is the median of the interleaved repeats (A B A B …).",
    "The service serves repeated reads from its read cache (service/cache/reads.py); the",
    "'cache off' rows are a second service started with CONNECTIVITY_READ_CACHE_MB=0: what",
    "a read costs when it misses (first read of a doc, listing right after a change).",
]


def scaling_table(rows: list[ListingAtSize]) -> list[str]:
    lines = [
        f"{'docs':>8} {'load':>8} {'index':>8} |"
        f"{'1st page API':>13}{'raw':>7}{'added':>7} |{'mid page API':>13}{'raw':>7}{'added':>7}",
    ]
    for row in rows:
        load = "setup" if row.load_seconds is None else f"{row.load_seconds:.1f}s"
        index = "setup" if row.index_seconds is None else f"{row.index_seconds:.1f}s"
        first, middle = row.first_page, row.middle_page
        lines.append(
            f"{row.docs:>8,} {load:>8} {index:>8} |"
            f"{first.api.p50_ms:>13.2f}{first.raw.p50_ms:>7.2f}{first.added_p50_ms:>+7.2f} |"
            f"{middle.api.p50_ms:>13.2f}{middle.raw.p50_ms:>7.2f}{middle.added_p50_ms:>+7.2f}"
        )
    lines.append(
        "p50 in ms at concurrency 1; load = _bulk_docs; index = first view query; the accounts"
    )
    lines.append("other than the main one hold one-server trunks without DIDs (size is measured)")
    return lines


def accounts_section(result: ManyAccounts) -> list[str]:
    lines = [
        f"{result.accounts:,} accounts created in {result.create_seconds:.1f} s "
        f"({result.accounts / result.create_seconds:.0f}/s, each with its db, design doc,"
        " one trunk)",
        f"first list on a new account: API {result.first_list_api_ms:.1f} ms "
        f"(then {result.second_list_api_ms:.1f} ms); "
        f"raw first view query {result.first_view_raw_ms:.1f} ms "
        f"(then {result.second_view_raw_ms:.1f} ms)",
        "",
        *pair_table(result.get_pairs),
        pair_line(result.spread_put),
        f"service RSS after touching {result.accounts:,} accounts: {result.service_rss_mb:.0f} MB",
    ]
    return lines


def indexing_section(pairs: Iterable[Pair]) -> list[str]:
    """The pairs whose writes CouchDB went on indexing after (bench/indexing.py)."""
    indexed = [pair for pair in pairs if pair.settles]
    if not indexed:
        return []
    header = (
        f"{'operation':<26}{'conc':>5} |{'ratio':>7}{'sustained':>10} |"
        f"{'indexing after, ms/op: API':>28}{'raw':>7}"
    )
    lines = [
        "CouchDB's background indexing: each run starts with its indexers idle; sustained =",
        "ops / (run + the indexing its writes set going), API over raw",
        header,
        "-" * len(header),
    ]
    for pair in indexed:
        lines.append(
            f"{pair.name:<26}{pair.concurrency:>5} |{pair.throughput_ratio:>7.2f}"
            f"{pair.sustained_ratio:>10.2f} |{pair.api.settle_ms_per_op:>28.2f}"
            f"{pair.raw.settle_ms_per_op:>7.2f}"
        )
    return [*lines, ""]


def _ratio(pair: Pair) -> str:
    sustained = f" (sustained {pair.sustained_ratio:.2f}x)" if pair.settles else ""
    return f"{pair.throughput_ratio:.2f}x{sustained}"


def writes_table(rows: list[WritesAtSize]) -> list[str]:
    lines = pair_table(row.put for row in rows)
    lines.append("PUT of a trunk with 2 servers and 10 new DIDs, concurrency 16; the raw side")
    lines.append("PUTs the same doc as the service would store it into the same account")
    return lines


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    met: bool

    def line(self) -> str:
        return f"  {'met   ' if self.met else 'MISSED'}  {self.target:<52} {self.value}"


def verdicts(
    pairs: list[Pair],
    peak_rss_mb: float,
    sizes: list[WritesAtSize],
    accounts: ManyAccounts,
) -> list[Verdict]:
    found = {(p.name, p.concurrency): p for p in pairs}
    results = []
    for name in ("GET one doc", "list 1 page of 50"):
        pair = found[(name, 16)]
        results.append(
            Verdict(
                f"{name}: throughput at concurrency 16 ≥ {THROUGHPUT_TARGET} x raw",
                f"{pair.throughput_ratio:.2f}x",
                pair.throughput_ratio >= THROUGHPUT_TARGET,
            )
        )
    for name in ("GET one doc", "list 1 page of 50"):
        pair = found[(name, 1)]
        results.append(
            Verdict(
                f"{name}: added p50 at concurrency 1 ≤ {ADDED_P50_TARGET_MS} ms",
                f"{pair.added_p50_ms:+.2f} ms",
                pair.added_p50_ms <= ADDED_P50_TARGET_MS,
            )
        )
    results.extend(write_verdicts(found, sizes, accounts))
    results.append(
        Verdict(
            f"service peak RSS ≤ {RSS_TARGET_MB:.0f} MB",
            f"{peak_rss_mb:.0f} MB",
            peak_rss_mb <= RSS_TARGET_MB,
        )
    )
    return results


def write_verdicts(
    found: dict[tuple[str, int], Pair], sizes: list[WritesAtSize], accounts: ManyAccounts
) -> list[Verdict]:
    results = []
    for name in WRITES:
        pair = found[(name, 16)]
        results.append(
            Verdict(
                f"{name}: throughput at c16 ≥ {WRITE_THROUGHPUT_TARGET} x raw",
                _ratio(pair),
                pair.throughput_ratio >= WRITE_THROUGHPUT_TARGET,
            )
        )
    for name in WRITES:
        pair = found[(name, 1)]
        results.append(
            Verdict(
                f"{name}: added p50 at c1 ≤ {WRITE_ADDED_P50_TARGET_MS} ms",
                f"{pair.added_p50_ms:+.2f} ms",
                pair.added_p50_ms <= WRITE_ADDED_P50_TARGET_MS,
            )
        )
    small, big = sizes[0], sizes[-1]
    flat = big.put.api.ops_per_s / small.put.api.ops_per_s
    results.append(
        Verdict(
            f"PUT into {big.docs:,} docs ≥ {WRITES_FLAT_TARGET} x PUT into {small.docs:,}",
            f"{flat:.2f}x (ratios to raw {big.put.throughput_ratio:.2f}"
            f" / {small.put.throughput_ratio:.2f})",
            flat >= WRITES_FLAT_TARGET,
        )
    )
    spread = accounts.spread_put
    results.append(
        Verdict(
            f"{spread.name}: c16 ≥ {SPREAD_TARGET} x raw",
            _ratio(spread),
            spread.throughput_ratio >= SPREAD_TARGET,
        )
    )
    return results
