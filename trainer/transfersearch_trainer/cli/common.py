"""What the command groups share: consoles, options, progress, number format, result tables."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.stats import fmt

if TYPE_CHECKING:  # torch-backed types, only named in signatures here
    from transfersearch_trainer.agent.evaluate import MethodResult
    from transfersearch_trainer.agent.hyperparameters import Hyperparameters

console = Console(width=None if sys.stdout.isatty() else 120)


err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120, markup=False)


class Space(StrEnum):
    micro = "micro"
    macro = "macro"


DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Benchmark folder or file, local or s3:// (default: $TRANSFERSEARCH_DATA).",
        show_default=False,
    ),
]


SpaceOpt = Annotated[Space, typer.Option("--space", help="Search space.")]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")]


LingerOpt = Annotated[
    float,
    typer.Option(
        "--metrics-linger",
        help="Keep serving /metrics this many seconds after the work ends (a last scrape).",
    ),
]


HpOpt = Annotated[
    list[str] | None,
    typer.Option("--hp", help="Override a hyperparameter, e.g. --hp lr=0.0001 (repeatable)."),
]


DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if present).")
]


StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Agent store: s3://bucket/prefix or a folder (default: $TRANSFERSEARCH_STORE, "
        "else runs/store).",
        show_default=False,
    ),
]


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Any]:
    """A progress bar on stderr that advances by the callback it yields."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task_id = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task_id, n)


@contextmanager
def cell_progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A resumable study's bar on stderr: the cell last finished, cells done of all."""
    columns = (
        TextColumn("{task.description:<44}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        task_id = progress.add_task(label, total=None)

        def tick(cell: str, done: int, total: int) -> None:
            progress.update(task_id, completed=done, total=total, description=cell[:44])

        yield tick


class RichReporter:
    """Progress bars on stderr with the learner's live return, score and evaluations."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @contextmanager
    def task(self, description: str, total: int) -> Any:
        if not self.enabled:
            yield lambda n, info: None
            return
        columns = (
            TextColumn("{task.description:<28}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[live]}", markup=False),
        )
        with Progress(*columns, console=err_console) as progress:
            task_id = progress.add_task(description, total=total, live="")

            def tick(n: int, info: dict[str, float]) -> None:
                live = "  ".join(
                    f"{k} {v:.4g}"
                    for k, v in info.items()
                    if v == v  # skip NaN
                )
                progress.update(task_id, advance=n, live=live)

            yield tick

    def log(self, text: str) -> None:
        if self.enabled:
            err_console.print(text, highlight=False)


def task_names(text: str, flag: str) -> tuple[str, ...]:
    """Comma-separated task names, each checked (a typo names the flag and the valid tasks)."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    for t in names:
        check_task(t, flag)
    return names


def task_benchmark(task: str, space: Space, data: str | None) -> Benchmark:
    """`--task` checked first (a typo fails before any loading), then the space's tables."""
    check_task(task, "--task")
    return load_benchmark(data, space.value)


def hyperparameters(
    overrides: list[str] | None, base: Hyperparameters | None = None
) -> Hyperparameters:
    """The defaults (or `base`) with `--hp name=value` overrides, each checked."""
    # lazy: the hyperparameters live in the torch agent's package
    from transfersearch_trainer.agent.hyperparameters import Hyperparameters

    pairs: dict[str, object] = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            names = ", ".join(Hyperparameters().to_dict())
            raise TransferSearchError(f"--hp {item!r}: write name=value with a name from: {names}")
        pairs[key] = value
    return (base or Hyperparameters()).with_overrides(pairs, "--hp ")


def hp_overrides(hp: list[str] | None) -> dict[str, Any]:
    """The `--hp` values that differ from the defaults: what a study's settings record."""
    overrides = hyperparameters(hp).to_dict() if hp else {}
    defaults = hyperparameters(None).to_dict()
    return {k: v for k, v in overrides.items() if defaults[k] != v}


def print_results(
    results: list[MethodResult], title: str, optimum: float, optimum_arch: str
) -> None:
    """Methods side by side: mean best found, its spread, regret, and what each cost."""
    table = Table(title=title)
    for col in (
        "method",
        "mean best",
        "± stderr",
        "regret",
        "norm. regret",
        "hit rate",
        "target evals in training (distinct/total)",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        s = r.summary
        cost = f"{r.training_evaluations:,} / {r.training_queries:,}" if r.training_queries else "0"
        table.add_row(
            r.method,
            fmt(s.mean),
            fmt(s.stderr),
            fmt(s.regret),
            f"{s.normalised_regret:.3f}",
            f"{s.hit_rate:.1%}",
            cost,
        )
    console.print(table)
    console.print(f"task optimum {fmt(optimum)} at {optimum_arch}")


def print_searches(report: dict[str, Any], out_dir: Path) -> None:
    """Protocol search: one row per search (each trial's, and its scratch reference)."""
    table = Table(
        title=f"{report['search']}: {report['mode']} search on {report['target_task']}, "
        f"budget {report['budget']}"
    )
    for col in ("trial", "method", "evaluations", "best found", "architecture", "rank", "regret"):
        table.add_column(col, justify="left" if col in ("method", "architecture") else "right")
    for r in report["searches"]:
        table.add_row(
            str(r["trial"]),
            "agent-" + r["mode"],
            str(r["evaluations"]),
            fmt(r["best_metric"]),
            r["best_arch"],
            "n/a" if r.get("rank") is None else str(r["rank"]),  # a dataset has no table
            fmt(r.get("regret")),
        )
    trials = len({r["trial"] for r in report["searches"]})
    for r in sorted(report.get("baselines", []), key=lambda r: -r["best_metric"]):
        table.add_row(
            "all" if trials > 1 else "0",
            r["method"],
            str(r["evaluations"]),
            fmt(r["best_metric"]),
            r["best_arch"],
            f"{r['rank']:.1f}" if trials > 1 else f"{r['rank']:.0f}",
            fmt(r["regret"]),
        )
    console.print(table, markup=False)
    if report.get("baselines") and trials > 1:
        console.print(
            f"baselines: mean over {trials} searches (one per trial seed); the architecture "
            "is their best search's",
            highlight=False,
        )
    console.print(
        f"report: {out_dir}/results.json; {report['wall_seconds']:.0f} s on {report['device']}"
    )
