"""Step one of a search: the agent to transfer from (none, a stored one, `auto`, or pretrained)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from transfersearch_trainer.agent.artifact import Agent, load_agent, read_manifest, save_agent
from transfersearch_trainer.agent.evaluate import curve_evaluator
from transfersearch_trainer.agent.hooks import LearnerHooks
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import Evaluator, Watch
from transfersearch_trainer.agent.qnet import QNetwork
from transfersearch_trainer.agent.transfer import agent_run, fit
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.source import ZOO
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.api.tasks import tasks_label
from transfersearch_trainer.search.similarity import choose_source
from transfersearch_trainer.store.agents import fetch_agent, parse_agent_uri
from transfersearch_trainer.store.zoo import resolve_agent
from transfersearch_trainer.workflow.workspace import Workspace

# (task label, steps, tasks) -> the agent pretrained on it; tasks: () for one source task,
# else the multi-source agent's tasks (the label is then e.g. all_but_jigsaw, see tasks_label)
Pretrained = Callable[[str, int, tuple[str, ...]], Agent]


def pretrain(
    ws: Workspace,
    task: str,
    steps: int,
    seed: int,
    with_curve: bool = True,
    hooks: Sequence[LearnerHooks] = (),
    tasks: tuple[str, ...] = (),
) -> Agent:
    """Train a new agent on `task` (the source), with a learning curve on that task.

    With several `tasks` (a multi-source agent; `task` is then their label) the actors
    are spread over them and the curve is the mean over them: pretraining-side
    validation only, it never looks at a target.
    """
    hp = ws.hp
    agent = Agent.new(ws.bench.space, hp, seed)
    agent.mode = "pretrain"
    evaluator = _curve(ws, tasks or (task,)) if with_curve else None
    with ws.reporter.task(f"pretrain on {task}", steps) as tick:
        run = agent_run(agent, ws.bench, task, steps, ws.device, tasks=tasks)
        fit(agent, run, Watch(evaluator=evaluator, progress=tick, hooks=hooks))
    return agent


def _curve(ws: Workspace, tasks: tuple[str, ...]) -> Evaluator:
    """Greedy searches on each source task: mean best-found metric and normalised regret."""
    hp = ws.hp
    each = [
        curve_evaluator(ws.bench, t, hp.eval_budget, hp.eval_searches, ws.device) for t in tasks
    ]
    if len(each) == 1:
        return each[0]

    def evaluate(net: QNetwork) -> tuple[float, float]:
        scores = [e(net) for e in each]
        return float(np.mean([s for s, _ in scores])), float(np.mean([r for _, r in scores]))

    return evaluate


def source_cache_key(space: str, task: str, steps: int, seed: int, hp: Hyperparameters) -> str:
    digest = hashlib.sha256(json.dumps(hp.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{space}-{task}-{steps}steps-seed{seed}-{digest}"


def pretrained_source(
    ws: Workspace,
    task: str,
    steps: int,
    seed: int,
    cache: Path,
    hooks: Sequence[LearnerHooks] = (),
    tasks: tuple[str, ...] = (),
) -> Agent:
    """The agent pretrained on `task` with these settings: from the cache, or trained and cached.

    A multi-source agent (`tasks`) is cached under its label, which names its tasks."""
    folder = cache / source_cache_key(ws.bench.space.name, task, steps, seed, ws.hp)
    if (folder / "agent.json").is_file():
        agent = load_agent(folder, ws.bench.space.name)
        ws.reporter.log(f"reusing the pretrained {task} agent in {folder}")
        return agent
    agent = pretrain(ws, task, steps, seed, hooks=hooks, tasks=tasks)
    save_agent(agent, folder)
    ws.reporter.log(f"pretrained source agent saved to {folder} (sha256 {agent.digest})")
    return agent


def source_agent(spec: TransferSearchSpec, ws: Workspace, pretrained: Pretrained) -> Agent | None:
    """The agent to transfer from: none (scratch), a pushed or local agent, the zoo's agent
    that excludes the target (`zoo`), or `pretrained`."""
    if spec.transfer.mode == "scratch":
        return None
    source = spec.source
    if source.agent == "auto":
        return auto_source(spec, ws)
    if source.agent:
        space = spec.benchmark.space
        folder, digest = resolve_agent(
            source.agent, space, spec.target.task, source.digest, "spec.source.agent"
        )
        agent = load_agent(folder, space, digest)
        where = f"zoo {folder}" if source.agent == ZOO else source.agent
        ws.reporter.log(f"source agent {where} (task {agent.task}, sha256 {agent.digest})")
        return agent
    tasks = source.pretrain_tasks(spec.target.task)
    assert tasks  # the spec model guarantees agent, task or tasks for non-scratch modes
    return pretrained(tasks_label(tasks), source.pretrain_steps, tasks if len(tasks) > 1 else ())


def auto_source(spec: TransferSearchSpec, ws: Workspace) -> Agent:
    """`source.agent: auto`: the candidate whose task is most similar to the target.

    Similarity is measured on a probe of architectures (see `similarity`), which
    costs that many target evaluations; they are added to the agent's record.
    """
    tasks = [_candidate_task(spec, i) for i in range(len(spec.source.candidates))]
    target = spec.target.benchmark_task
    choice = choose_source(ws.bench, target, tasks)
    chosen = spec.source.candidates[choice.index]
    sims = ", ".join(f"{t} {v:.2f}" for t, v in choice.similarities.items())
    ws.reporter.log(
        f"source auto: {chosen.agent} ({choice.task}) is the most similar to {target} "
        f"(rank correlation on {choice.probe_size} probe architectures: {sims})"
    )
    folder = fetch_agent(chosen.agent, chosen.digest)
    agent = load_agent(folder, spec.benchmark.space, chosen.digest)
    agent.choice = {
        "task": choice.task,
        "similarities": choice.similarities,
        "probe_evaluations": choice.probe_size,
        "target": target,
    }
    return agent


def _candidate_task(spec: TransferSearchSpec, i: int) -> str:
    """A candidate's task: given, read from its store URI, or from its local manifest."""
    cand = spec.source.candidates[i]
    if cand.task is not None:
        return cand.task
    ref = parse_agent_uri(cand.agent)
    if ref is not None:
        return ref.task  # store URIs carry the task: no download needed to choose
    if cand.agent.startswith("s3://"):
        raise TransferSearchError(
            f"spec.source.candidates[{i}].task: give the task of {cand.agent}"
        )
    task = read_manifest(cand.agent).get("task")
    if task is None:
        raise TransferSearchError(
            f"spec.source.candidates[{i}]: {cand.agent} records no task; set task"
        )
    return str(task)
