"""The `baseline` command's work: every requested method on one target, side by side.

Kept apart from `data` so that module stays a list of commands: here the methods
run on one shared context (the sources' priors and the surrogate's kernel are
computed once) and become the result rows the table and the JSON print.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.cli.common import console, progress_bar
from transfersearch_trainer.search.baselines import run_searches
from transfersearch_trainer.search.oracle import SearchContext, SearchMethod
from transfersearch_trainer.search.stats import fmt, mean_rank, summarize


def run_methods(
    bench: Benchmark,
    ctx: SearchContext,
    task: str,
    methods: Sequence[SearchMethod],
    budget: int,
    searches: int,
    seed: int,
    show_progress: bool,
) -> list[dict[str, Any]]:
    """One result row per method: the summary of its best-found values and their mean rank."""
    stats = bench.stats(task)
    values = bench.metric(task)
    rows = []
    with progress_bar(searches * len(methods), f"{task} searches", show_progress) as advance:
        for method in methods:
            runs = run_searches(method, ctx, values, task, budget, searches, seed, progress=advance)
            rows.append(
                {
                    "method": method.name,
                    **summarize(runs.best, stats).to_dict(),
                    # reporting only, after the search: the rank reads the whole target table
                    "mean_rank": mean_rank(values, runs.best),
                    "deterministic": method.deterministic,
                }
            )
    return rows


def print_table(rows: Sequence[dict[str, Any]], title: str, footer: str) -> None:
    table = Table(title=title)
    columns = ("method", "mean best", "± stderr", "95% CI", "regret", "norm. regret")
    for col in (*columns, "hit rate", "mean rank"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(
            r["method"],
            fmt(r["mean"]),
            fmt(r["stderr"]),
            f"±{fmt(r['ci95'])}",
            fmt(r["regret"]),
            f"{r['normalised_regret']:.3f}",
            f"{r['hit_rate']:.1%}",
            f"{r['mean_rank']:.1f}",
        )
    console.print(table)
    console.print(footer)
