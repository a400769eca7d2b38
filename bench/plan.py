"""How much the benchmark does: the full run (`make bench`) and `make bench QUICK=1`."""

from __future__ import annotations

from dataclasses import dataclass

CONCURRENCIES = (1, 16)


@dataclass(frozen=True)
class Runs:
    """How one pairing is measured: operations per run at concurrency 1 and 16, how many
    interleaved repeats, and how many untimed operations warm each side up first."""

    at_one: int
    at_sixteen: int
    repeats: int
    warmup: int

    def ops(self, concurrency: int) -> int:
        return self.at_one if concurrency == 1 else self.at_sixteen

    def warmup_ops(self, concurrency: int) -> int:
        return min(self.warmup, self.ops(concurrency))


@dataclass(frozen=True)
class Plan:
    quick: bool
    runs: dict[str, Runs]  # per pairing name
    main_docs: int
    api_docs: int  # of main_docs, written through the API rather than _bulk_docs
    update_pool: int
    scaling_sizes: tuple[int, ...]
    scaling_ops: int
    scaling_repeats: int
    accounts: int
    write_sizes: tuple[int, ...]
    first_list_samples: int

    def consumed_per_side(self, name: str) -> int:
        """Docs one side of a consuming pairing uses up over the whole run."""
        runs = self.runs[name]
        return sum(runs.ops(c) * runs.repeats + runs.warmup_ops(c) for c in CONCURRENCIES)


def _runs(quick: bool) -> dict[str, Runs]:
    repeats, warmup = (3, 16) if quick else (5, 32)
    # Writes are fewer and repeated less: each checks and assigns its DIDs (up to 50)
    # with dozens of CouchDB requests (service/numbers/did_guard.py), ~50x the cost of a GET.
    # A paginate=false listing reads all 10,000 ids; at concurrency 16, one per worker.
    scale = 2 if quick else 1
    return {
        "floor: /__heartbeat__": Runs(400 // scale, 1200 // scale, repeats, warmup),
        "GET one doc": Runs(400 // scale, 1200 // scale, repeats, warmup),
        "GET, read cache off": Runs(400 // scale, 1200 // scale, repeats, warmup),
        "PUT (create)": Runs(40 // scale, 64, 3, 8),
        "POST (replace)": Runs(40 // scale, 64, 3, 8),
        "PATCH (merge)": Runs(40 // scale, 64, 3, 8),
        "DELETE (soft)": Runs(40 // scale, 64, 3, 8),
        "list 1 page of 50": Runs(300 // scale, 400 // scale, repeats, warmup),
        "list 1 page, cache off": Runs(300 // scale, 400 // scale, repeats, warmup),
        "list paginate=false": Runs(3, 16, 1 if quick else 3, 0),
    }


def full() -> Plan:
    return Plan(
        quick=False,
        runs=_runs(quick=False),
        main_docs=10_000,
        api_docs=20,
        update_pool=320,
        scaling_sizes=(1_000, 10_000, 100_000),
        scaling_ops=200,
        scaling_repeats=3,
        accounts=1_000,
        write_sizes=(200, 10_000),
        first_list_samples=10,
    )


def quick() -> Plan:
    return Plan(
        quick=True,
        runs=_runs(quick=True),
        main_docs=10_000,
        api_docs=20,
        update_pool=160,
        scaling_sizes=(1_000, 10_000),
        scaling_ops=100,
        scaling_repeats=3,
        accounts=200,
        write_sizes=(200, 10_000),
        first_list_samples=5,
    )
