"""The `transfersearch` command: the command groups registered on one typer app.

A `TransferSearchError` becomes a one-line ``error: ...`` on stderr and its exit code
(2: fix the input; 75: transient, try again), never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.cli import (
    agents,
    data,
    datasets,
    loto,
    paper,
    perf,
    perf_training,
    runs,
    search,
    store,
    studies,
    zoo,
)
from transfersearch_trainer.cli.common import err_console

app = typer.Typer(
    help="Reinforcement-learning NAS whose agents transfer between tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(
    help="Performance measurements (printed, side by side).", no_args_is_help=True
)
app.add_typer(data.benchmark_app, name="benchmark")
app.add_typer(bench_app, name="bench")
app.add_typer(store.agents_app, name="agents")
data.register(app)
agents.register(app)
runs.register(app)
search.register(app)
studies.register(app, bench_app)
perf.register(bench_app)
perf_training.register(bench_app)
loto.register(app)
paper.register(loto.study_app)
zoo.register(app)
datasets.register(app)


def main() -> None:
    try:
        app()
    except TransferSearchError as err:
        err_console.print(
            Text("error: ", style="bold red") + Text(str(err)), highlight=False, soft_wrap=True
        )
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
