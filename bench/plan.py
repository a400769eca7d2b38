"""How much the benchmark does: the full run (`make bench`) and `make bench QUICK=1`."""

from __future__ import annotations

from dataclasses import dataclass

CONCURRENCIES = (1, 16)


@dataclass(frozen=True)
class Plan:
    quick: bool
    repeats: int
    # Operations per run, per pairing name, at concurrency 1 and 16.
    ops: dict[str, tuple[int, int]]
    warmup: int
    main_docs: int
    api_docs: int  # of main_docs, written through the API rather than _bulk_docs
    update_pool: int
    scaling_sizes: tuple[int, ...]
    scaling_ops: int
    accounts: int
    first_list_samples: int

    def ops_for(self, name: str, concurrency: int) -> int:
        at_one, at_many = self.ops[name]
        return at_one if concurrency == 1 else at_many

    def consumed_per_side(self, name: str) -> int:
        """Docs one side of a consuming pairing uses up over the whole run."""
        return sum(
            self.ops_for(name, c) * self.repeats + min(self.warmup, self.ops_for(name, c))
            for c in CONCURRENCIES
        )


FULL_OPS = {
    "GET one doc": (400, 1200),
    "PUT (create)": (250, 600),
    "POST (replace)": (200, 480),
    "PATCH (merge)": (200, 480),
    "DELETE (soft)": (200, 480),
    "list 1 page of 50": (300, 800),
    "list page vs KAZOO view": (300, 800),
    "list paginate=false": (3, 16),
}


def full() -> Plan:
    return Plan(
        quick=False,
        repeats=5,
        ops=FULL_OPS,
        warmup=32,
        main_docs=10_000,
        api_docs=20,
        update_pool=320,
        scaling_sizes=(1_000, 10_000, 100_000),
        scaling_ops=200,
        accounts=1_000,
        first_list_samples=10,
    )


def quick() -> Plan:
    return Plan(
        quick=True,
        repeats=3,
        ops={name: (max(2, a // 2), max(16, b // 2)) for name, (a, b) in FULL_OPS.items()},
        warmup=16,
        main_docs=10_000,
        api_docs=20,
        update_pool=160,
        scaling_sizes=(1_000, 10_000),
        scaling_ops=100,
        accounts=200,
        first_list_samples=5,
    )
