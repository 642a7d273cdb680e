"""Commands that make and judge agents: `pretrain`, `finetune`, `evaluate` (the agent store's
`agents push|pull|list` are in `cli.store`)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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
    console,
    hyperparameters,
    print_results,
    progress_bar,
)
from transfersearch_trainer.store.zoo import resolve_agent

if TYPE_CHECKING:  # torch-backed, only named in signatures here
    from transfersearch_trainer.agent.artifact import Agent

AgentSpaceOpt = Annotated[
    Space | None,
    typer.Option(
        "--space",
        help="With --agent zoo: whose zoo agent (default micro); otherwise checked against the "
        "agent's own space.",
        show_default=False,
    ),
]


def load_for_task(location: str, task: str, space: Space | None) -> Agent:
    """The agent of --agent (a folder, an s3:// URI, or zoo: the zoo's agent that never saw
    `task`), verified and loaded."""
    from transfersearch_trainer.agent.artifact import load_agent

    name = space.value if space is not None else None
    folder, digest = resolve_agent(location, name or Space.micro.value, task)
    return load_agent(folder, name, digest)


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
        str,
        typer.Option(
            "--agent",
            help="Source agent: folder, s3:// agent URI in a store, or zoo (the zoo's agent "
            "pretrained on every task but --task).",
        ),
    ],
    task: Annotated[str, typer.Option("--task", help="Target task.")],
    out: Annotated[str, typer.Option("--out", help="Folder to write the new agent to.")],
    space: AgentSpaceOpt = None,
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
    from transfersearch_trainer.agent.artifact import save_agent
    from transfersearch_trainer.agent.evaluate import curve_evaluator
    from transfersearch_trainer.agent.learner import Watch, pick_device
    from transfersearch_trainer.agent.transfer import agent_run, fit, make_target_agent

    check_task(task, "--task")
    source = load_for_task(agent_dir, task, space)
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
        str,
        typer.Option(
            "--agent",
            help="Agent: folder, s3:// agent URI in a store, or zoo (the zoo's agent "
            "pretrained on every task but --task).",
        ),
    ],
    task: Annotated[str, typer.Option("--task", help="Task to search on.")],
    space: AgentSpaceOpt = None,
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 50,
    searches: Annotated[int, typer.Option("--searches", help="Independent searches.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Evaluation seed.")] = 1_000_000,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Greedy agent vs random, local search, evolution and source top-k, on the same starts."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.evaluate import compare, compare_total
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.workflow.target import training_cost

    check_task(task, "--task")
    agent = load_for_task(agent_dir, task, space)
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


def register(app: typer.Typer) -> None:
    app.command()(pretrain)
    app.command()(finetune)
    app.command()(evaluate)
