"""Commands that make and judge agents (`pretrain`, `finetune`, `evaluate`) and the agent
store (`agents push|pull|list`)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task, parse_tasks, tasks_label
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.common import (
    DataOpt,
    DeviceOpt,
    HpOpt,
    JsonOpt,
    RichReporter,
    Space,
    SpaceOpt,
    StoreOpt,
    console,
    hyperparameters,
    print_results,
    progress_bar,
)
from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.store.agents import (
    AgentStore,
    default_store,
    fetch_agent,
    parse_agent_uri,
)

agents_app = typer.Typer(
    help="Push, pull and list agents in an agent store (s3://bucket/prefix or a folder).",
    no_args_is_help=True,
)


def pretrain(
    out: Annotated[str, typer.Option("--out", help="Folder to write the agent to.")],
    task: Annotated[
        str | None, typer.Option("--task", help="Source task to learn searching on.")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks", help="Several source tasks at once: a,b,c or all-but:TASK (leave one out)."
        ),
    ] = None,
    space: SpaceOpt = Space.micro,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates.")] = 10000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
) -> None:
    """Train a new agent on a source task and save it (safetensors + JSON manifest)."""

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.artifact import save_agent
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.workflow.source import pretrain as run_pretrain
    from transfersearch_trainer.workflow.workspace import Workspace

    if (task is None) == (tasks is None):
        raise TransferSearchError("--task or --tasks: give one of them (one source, or several)")
    sources = (
        (check_task(task, "--task"),) if task is not None else parse_tasks(tasks or "", "--tasks")
    )
    if steps < 1:
        raise TransferSearchError("--steps: must be at least 1")
    bench = load_benchmark(data, space.value)
    ws = Workspace(bench, pick_device(device), hyperparameters(hp), RichReporter())
    label = tasks_label(sources)
    agent = run_pretrain(ws, label, steps, seed, tasks=sources if len(sources) > 1 else ())
    task = label
    digest = save_agent(agent, Path(out))
    t = agent.training
    console.print(
        f"agent saved to {out} (sha256 {digest}); {t['updates']} updates, {t['env_steps']:,} env "
        f"steps, {t['distinct_evaluations']:,} distinct {task} architectures queried, "
        f"{t['device_seconds']:.1f} s on {t['device']}"
    )


class Mode(StrEnum):
    finetune = "finetune"
    freeze_encoder = "freeze-encoder"
    zero_shot = "zero-shot"
    scratch = "scratch"


def finetune(
    agent_dir: Annotated[
        str, typer.Option("--agent", help="Source agent: folder, or s3:// agent URI in a store.")
    ],
    task: Annotated[str, typer.Option("--task", help="Target task.")],
    out: Annotated[str, typer.Option("--out", help="Folder to write the new agent to.")],
    mode: Annotated[Mode, typer.Option("--mode", help="Transfer mode.")] = Mode.finetune,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates on the target.")] = 2000,
    target_evaluations: Annotated[
        int | None,
        typer.Option("--target-evaluations", help="Cap on distinct target architectures queried."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
) -> None:
    """Transfer an agent to a target task: finetune, freeze-encoder, zero-shot or scratch."""

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.artifact import load_agent, save_agent
    from transfersearch_trainer.agent.evaluate import curve_evaluator
    from transfersearch_trainer.agent.learner import Watch, pick_device
    from transfersearch_trainer.agent.transfer import agent_run, fit, make_target_agent

    check_task(task, "--task")
    source = load_agent(fetch_agent(agent_dir))
    bench = load_benchmark(data, source.space)
    dev = pick_device(device)
    agent, trainable = make_target_agent(
        source, mode.value, bench.space, seed, hyperparameters(hp, source.hp)
    )
    reporter = RichReporter()
    run = agent_run(agent, bench, task, steps, dev, trainable, target_evaluations)
    evaluator = curve_evaluator(bench, task, agent.hp.eval_budget, agent.hp.eval_searches, dev)
    with reporter.task(f"{mode.value} on {task}", max(run.steps, 1)) as tick:
        fit(agent, run, Watch(evaluator=evaluator, progress=tick))
    digest = save_agent(agent, Path(out))
    t = agent.training
    console.print(
        f"agent saved to {out} (sha256 {digest}); {t['updates']} updates on {task}, "
        f"{t['distinct_evaluations']:,} distinct target architectures queried "
        f"({t['total_evaluations']:,} queries), {t['device_seconds']:.1f} s on {t['device']}"
    )


def evaluate(
    agent_dir: Annotated[
        str, typer.Option("--agent", help="Agent: folder, or s3:// agent URI in a store.")
    ],
    task: Annotated[str, typer.Option("--task", help="Task to search on.")],
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 50,
    searches: Annotated[int, typer.Option("--searches", help="Independent searches.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Evaluation seed.")] = 1_000_000,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Greedy agent vs random, local search, evolution and source top-k, on the same starts."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.artifact import load_agent
    from transfersearch_trainer.agent.evaluate import compare, compare_total
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.workflow.target import training_cost

    check_task(task, "--task")
    agent = load_agent(fetch_agent(agent_dir))
    bench = load_benchmark(data, agent.space)
    if not 2 <= budget <= bench.space.size:
        raise TransferSearchError(f"--budget: must be between 2 and {bench.space.size}")
    dev = pick_device(device)
    source_task = (agent.parent or {}).get("task") or agent.task
    distinct, total = training_cost(agent, task)
    with progress_bar(compare_total(searches, 1), f"searching {task}", not json_out) as advance:
        results = compare(
            bench,
            task,
            budget,
            searches,
            seed,
            {"agent": (agent.net, distinct, total)},
            dev,
            source_task=source_task,
            progress=advance,
        )
    stats = bench.stats(task)
    if json_out:
        mine = results[0]
        print(
            json.dumps(
                {
                    "task": task,
                    "space": agent.space,
                    "budget": budget,
                    "searches": searches,
                    "seed": seed,
                    "agent": agent_dir,
                    "agent_digest": agent.digest,
                    "agent_task": agent.task,
                    "mode": agent.mode,
                    "optimum": stats.optimum,
                    **{k: v for k, v in mine.to_dict().items() if k != "method"},
                    "baselines": {r.method: r.to_dict() for r in results[1:]},
                }
            )
        )
        return
    print_results(
        results,
        f"{task} ({agent.space}), budget {budget}, {searches} searches, "
        f"agent {agent.mode} from {source_task}",
        stats.optimum,
        stats.optimum_arch,
    )


@agents_app.command("push")
def agents_push(
    folder: Annotated[str, typer.Argument(help="Agent folder to push.", metavar="DIR")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy an agent folder into the store under its content digest; prints its URI."""

    entry = AgentStore(store or default_store()).push(folder)
    if json_out:
        print(json.dumps(entry.to_dict()))
        return
    console.print(f"{entry.uri}\nweights sha256:{entry.weights_digest}", highlight=False)


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


def register(app: typer.Typer) -> None:
    app.command()(pretrain)
    app.command()(finetune)
    app.command()(evaluate)
