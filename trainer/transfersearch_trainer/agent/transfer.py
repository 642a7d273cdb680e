"""Transfer modes: how a target-task agent starts from a source agent, and training it.

* ``scratch``: a fresh network (the source is ignored): the reference transfer is
  measured against.
* ``finetune``: every weight starts from the source and all of them train.
* ``freeze-encoder``: representation transfer: the source's encoder (embeddings
  and transformer layers, see `qnet`) is frozen and only the head trains.
* ``zero-shot``: policy reuse: the source agent searches the target as it is, and
  consumes no target evaluations in training.
"""

from __future__ import annotations

import copy

import torch

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import TrainingRun, Watch, train
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import TRANSFER_MODES
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.benchmark.table import Benchmark


def agent_run(
    agent: Agent,
    bench: Benchmark,
    task: str,
    steps: int,
    device: torch.device,
    trainable: list[torch.nn.Parameter] | None = None,
    evaluation_cap: int | None = None,
    tasks: tuple[str, ...] = (),
) -> TrainingRun:
    """The run that trains `agent` with its own settings and seed; no trainable: zero steps.

    With several `tasks` (a multi-source agent), `task` is their label (`tasks_label`)."""
    frozen = trainable is None and not any(p.requires_grad for p in agent.net.parameters())
    return TrainingRun(
        bench=bench,
        task=task,
        hp=agent.hp,
        steps=0 if frozen else steps,
        seed=agent.seed,
        device=device,
        trainable=trainable,
        evaluation_cap=evaluation_cap,
        tasks=tasks,
    )


def make_target_agent(
    source: Agent | None,
    mode: str,
    space: SearchSpace,
    seed: int,
    hp: Hyperparameters | None = None,
) -> tuple[Agent, list[torch.nn.Parameter] | None]:
    """The agent to train on the target and the parameters that may change (None: none)."""
    if mode not in TRANSFER_MODES:
        raise TransferSearchError(f"mode: unknown {mode!r}; use one of {', '.join(TRANSFER_MODES)}")
    if mode == "scratch":
        base = hp or (source.hp if source is not None else Hyperparameters())
        agent = Agent.new(space, base, seed)
        agent.mode = "scratch"
        return agent, list(agent.net.parameters())
    if source is None:
        raise TransferSearchError(f"mode {mode} needs a source agent (give --agent)")
    if source.space != space.name:
        raise TransferSearchError(
            f"the source agent searches the {source.space} space, the target is {space.name}"
        )
    agent = Agent(
        net=copy.deepcopy(source.net),
        hp=_compatible(source.hp, hp),
        space=source.space,
        task=source.task,
        seed=seed,
        steps=source.steps,
        mode=mode,
        parent={
            "task": source.task,
            "digest": source.digest,
            "mode": source.mode,
            "steps": source.steps,
            "training": {k: v for k, v in source.training.items() if k != "curve"},
            "choice": source.choice,
        },
    )
    if mode == "zero-shot":
        agent.net.requires_grad_(False)
        return agent, None
    if mode == "freeze-encoder":
        for p in agent.net.encoder_parameters():
            p.requires_grad_(False)
        return agent, agent.net.head_parameters()
    return agent, list(agent.net.parameters())


def target_hyperparameters(hp: Hyperparameters, cap: int | None) -> Hyperparameters:
    """Training settings on a target with few evaluations allowed: fewer, longer-lived actors.

    With 64 actors a cap of 1,000 evaluations is spent within the first steps of one
    window; 16 actors see whole windows, and learning starts on what they found.
    """
    if cap is None or cap >= 16 * hp.num_actors * hp.episode_steps // 2:
        return hp
    return hp.replace(num_actors=16, learning_starts=min(hp.learning_starts, 512))


def _compatible(source: Hyperparameters, wanted: Hyperparameters | None) -> Hyperparameters:
    """Training settings may change on the target; the network's shape may not."""
    if wanted is None:
        return source
    shape = ("encoder", "d_model", "layers", "heads", "ff")
    return wanted.replace(**{k: getattr(source, k) for k in shape})


def fit(agent: Agent, run: TrainingRun, watch: Watch | None = None) -> Agent:
    """Train `agent` by `run` in place and record what it cost (no steps, as zero-shot: nothing).

    `run.hp` and `run.seed` are normally the agent's own (`agent_run` builds such a run).
    """
    task, device = run.task, run.device
    if run.steps == 0:
        agent.task = task if agent.task is None else agent.task
        agent.training = {
            "task": task,
            "updates": 0,
            "env_steps": 0,
            "distinct_evaluations": 0,
            "total_evaluations": 0,
            "device_seconds": 0.0,
            "gpu_seconds": 0.0,
            "device": str(device),
            "stopped_by_cap": False,
            "curve": [],
        }
        return agent
    stats = train(agent.net, run, watch)
    agent.task = task
    agent.steps += stats.updates
    agent.training = {"task": task, **stats.to_dict()}
    if run.tasks:
        agent.training["tasks"] = list(run.tasks)
    return agent
