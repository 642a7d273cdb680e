"""`transfersearch agents push|pull|list`: the agent store (an S3 prefix or a folder), and
pushing a whole agent zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.cli.common import JsonOpt, StoreOpt, console
from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.store.agents import AgentStore, default_store, parse_agent_uri
from transfersearch_trainer.store.zoo import is_zoo, push_zoo

agents_app = typer.Typer(
    help="Push, pull and list agents in an agent store (s3://bucket/prefix or a folder).",
    no_args_is_help=True,
)


@agents_app.command("push")
def agents_push(
    folder: Annotated[
        str, typer.Argument(help="Agent folder, or a zoo folder (all its agents).", metavar="DIR")
    ],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy an agent folder (or every agent of a zoo) into the store under its content
    digest; prints each URI."""

    path = Path(folder)
    zoo = is_zoo(path)
    target = AgentStore(store or default_store())
    entries = push_zoo(target, path) if zoo else [target.push(path)]
    if json_out:  # a zoo: one object per agent; one agent: its object, as before zoos
        print(json.dumps([e.to_dict() for e in entries] if zoo else entries[0].to_dict()))
        return
    for e in entries:
        console.print(
            f"{e.uri}\nweights sha256:{e.weights_digest}", highlight=False, soft_wrap=True
        )


@agents_app.command("pull")
def agents_pull(
    uri: Annotated[
        str, typer.Argument(help="Agent URI, as `agents push` or `agents list` print it.")
    ],
    out: Annotated[str, typer.Option("--out", help="Folder to write the agent to.")],
    digest: Annotated[
        str | None,
        typer.Option("--digest", help="Expected weights digest (sha256:<hex>), checked too."),
    ] = None,
) -> None:
    """Fetch an agent and verify its manifest and weights digests before writing it."""

    ref = parse_agent_uri(uri)
    if ref is None:
        raise TransferSearchError(
            f"{uri}: not an agent URI; expected <store>/agents/<space>/<task>/<sha256>, as "
            "`transfersearch agents list` prints them"
        )
    path = AgentStore(ref.root).pull(ref, Path(out), digest)
    console.print(f"verified agent {ref.space}/{ref.task}/{ref.digest[:12]} written to {path}")


@agents_app.command("list")
def agents_list(
    store: StoreOpt = None,
    space: Annotated[str | None, typer.Option("--space", help="Only this space.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Agents in the store, by space and task, oldest first."""

    agents = AgentStore(store or default_store()).list_agents(space, task)
    if json_out:
        print(json.dumps([a.to_dict() for a in agents]))
        return
    table = Table(title=f"agents in {store or default_store()}")
    for col in ("space", "task", "mode", "steps", "score", "created", "id", "uri"):
        table.add_column(col, justify="right" if col in ("steps", "score") else "left")
    for a in agents:
        table.add_row(
            a.space,
            a.task,
            a.mode or "",
            str(a.steps or ""),
            "" if a.score is None else fmt(a.score),
            a.created or "",
            a.digest[:12],
            a.uri,
        )
    console.print(table)
