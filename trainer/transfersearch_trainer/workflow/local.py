"""`transfersearch run`: one TransferSearch manifest, run in-process from start to finish.

The same work a trainer Job does in the cluster: get the source agent (load it,
or pretrain one on the source task and keep it in a local agent cache), make the
target agent by the transfer mode, train it on the target within the manifest's
budget of target evaluations, then evaluate it against the baselines and the
source top-k on the same starts. With ``compare_scratch`` a scratch agent gets
the same training budget, which is the reference transfer is judged by. Results
go to a report folder: results.json, curves.csv, learning_curves.png,
comparison.png and the agents.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent, read_manifest, save_agent
from transfersearch_trainer.agent.evaluate import MethodResult, compare, curve_evaluator
from transfersearch_trainer.agent.learner import (
    Evaluator,
    Hyperparameters,
    LearnerHooks,
    pick_device,
)
from transfersearch_trainer.agent.transfer import fit, make_target_agent, target_hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import TransferSearchManifest, TransferSearchSpec
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.similarity import choose_source
from transfersearch_trainer.telemetry.hooks import final_regret, metric_hooks
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.plots import plot_comparison, plot_curves, write_curves_csv

Tick = Callable[[int, dict[str, float]], None]


class Reporter(Protocol):
    def task(self, description: str, total: int) -> AbstractContextManager[Tick]: ...

    def log(self, text: str) -> None: ...


class QuietReporter:
    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Tick]:
        yield lambda n, info: None

    def log(self, text: str) -> None:
        pass


@dataclass
class RunOptions:
    out: Path
    data: str | None = None
    agents_dir: Path | None = None  # cache of pretrained source agents (default: out/../agents)
    compare_scratch: bool = True
    device: str | None = None
    hp: Hyperparameters | None = None
    metrics: TrainerMetrics | None = None  # exported while training (`--metrics-port`)


def training_cost(agent: Agent, task: str) -> tuple[int, int]:
    """Distinct and total evaluations of `task` this agent (and its source) consumed in training."""
    distinct = total = 0
    parent = agent.parent or {}
    for record in (agent.training, parent.get("training") or {}):
        if record.get("task") == task:
            distinct += int(record.get("distinct_evaluations", 0))
            total += int(record.get("total_evaluations", 0))
    choice = parent.get("choice") or {}
    if choice.get("target") == task:  # the probe that chose the source (source: auto)
        distinct += int(choice.get("probe_evaluations", 0))
        total += int(choice.get("probe_evaluations", 0))
    return distinct, total


def pretrain(
    bench: Benchmark,
    task: str,
    steps: int,
    seed: int,
    hp: Hyperparameters,
    device: torch.device,
    reporter: Reporter,
    with_curve: bool = True,
    hooks: Sequence[LearnerHooks] = (),
) -> Agent:
    """Train a new agent on `task` (the source), with a learning curve on that task."""
    agent = Agent.new(bench.space, hp, seed)
    agent.mode = "pretrain"
    evaluator = (
        curve_evaluator(bench, task, hp.eval_budget, hp.eval_searches, device)
        if with_curve
        else None
    )
    with reporter.task(f"pretrain on {task}", steps) as tick:
        fit(
            agent,
            bench,
            task,
            steps,
            list(agent.net.parameters()),
            device,
            None,
            evaluator,
            tick,
            hooks,
        )
    return agent


def source_cache_key(space: str, task: str, steps: int, seed: int, hp: Hyperparameters) -> str:
    digest = hashlib.sha256(json.dumps(hp.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{space}-{task}-{steps}steps-seed{seed}-{digest}"


def get_source(
    manifest: TransferSearchManifest,
    bench: Benchmark,
    opts: RunOptions,
    hp: Hyperparameters,
    device: torch.device,
    reporter: Reporter,
) -> Agent | None:
    cache = opts.agents_dir or opts.out.parent / "agents"
    seed = manifest.spec.training.seed

    def pretrained(task: str, steps: int) -> Agent:
        hooks = instrument(opts.metrics, manifest, task, "pretrain", 0)
        return pretrained_source(bench, task, steps, seed, hp, cache, device, reporter, hooks)

    return source_agent(manifest.spec, bench, reporter, pretrained)


def metric_labels(
    manifest: TransferSearchManifest, task: str, mode: str, trial: int
) -> MetricLabels:
    return MetricLabels(
        search=manifest.metadata.name,
        namespace=manifest.metadata.namespace or "local",
        task=task,
        trial=str(trial),
        mode=mode,
    )


def instrument(
    metrics: TrainerMetrics | None,
    manifest: TransferSearchManifest,
    task: str,
    mode: str,
    trial: int,
) -> list[LearnerHooks]:
    """The learner hooks that export one training's metrics (none when not exporting)."""
    labels = metric_labels(manifest, task, mode, trial)
    return metric_hooks(metrics, labels, manifest.spec.alerts)


def export_untrained(
    metrics: TrainerMetrics | None, labels: MetricLabels, agent: Agent, evaluator: Evaluator
) -> None:
    """A zero-shot agent never trains (no hooks run): export one greedy evaluation of it."""
    if metrics is None or agent.training.get("curve"):
        return
    score, regret = evaluator(agent.net)
    metrics.record_evaluation(labels, score, regret)
    metrics.set_running(labels, False)


def source_agent(
    spec: TransferSearchSpec,
    bench: Benchmark,
    reporter: Reporter,
    pretrained: Callable[[str, int], Agent],
) -> Agent | None:
    """The agent to transfer from: none (scratch), a pushed or local agent, or `pretrained`."""
    if spec.transfer.mode == "scratch":
        return None
    source = spec.source
    if source.agent == "auto":
        return auto_source(spec, bench, reporter)
    if source.agent:
        from transfersearch_trainer.store.agents import fetch_agent

        folder = fetch_agent(source.agent, source.digest)
        agent = load_agent(folder, spec.benchmark.space, source.digest)
        reporter.log(f"source agent {source.agent} (task {agent.task}, sha256 {agent.digest})")
        return agent
    assert source.task is not None  # the spec model guarantees agent or task for non-scratch modes
    return pretrained(source.task, source.pretrain_steps)


def auto_source(spec: TransferSearchSpec, bench: Benchmark, reporter: Reporter) -> Agent:
    """`source.agent: auto`: the candidate whose task is most similar to the target.

    Similarity is measured on a probe of architectures (see `similarity`), which
    costs that many target evaluations; they are added to the agent's record.
    """
    from transfersearch_trainer.store.agents import fetch_agent, parse_agent_uri

    tasks = []
    for i, cand in enumerate(spec.source.candidates):
        task: str | None = cand.task
        ref = parse_agent_uri(cand.agent)
        if task is None and ref is not None:
            task = ref.task  # store URIs carry the task: no download needed to choose
        if task is None:
            if cand.agent.startswith("s3://"):
                raise TransferSearchError(
                    f"spec.source.candidates[{i}].task: give the task of {cand.agent}"
                )
            task = read_manifest(cand.agent).get("task")
            if task is None:
                raise TransferSearchError(
                    f"spec.source.candidates[{i}]: {cand.agent} records no task; set task"
                )
        tasks.append(str(task))
    choice = choose_source(bench, spec.target.task, tasks)
    chosen = spec.source.candidates[choice.index]
    sims = ", ".join(f"{t} {v:.2f}" for t, v in choice.similarities.items())
    reporter.log(
        f"source auto: {chosen.agent} ({choice.task}) is the most similar to {spec.target.task} "
        f"(rank correlation on {choice.probe_size} probe architectures: {sims})"
    )
    folder = fetch_agent(chosen.agent, chosen.digest)
    agent = load_agent(folder, spec.benchmark.space, chosen.digest)
    agent.choice = {
        "task": choice.task,
        "similarities": choice.similarities,
        "probe_evaluations": choice.probe_size,
        "target": spec.target.task,
    }
    return agent


def pretrained_source(
    bench: Benchmark,
    task: str,
    steps: int,
    seed: int,
    hp: Hyperparameters,
    cache: Path,
    device: torch.device,
    reporter: Reporter,
    hooks: Sequence[LearnerHooks] = (),
) -> Agent:
    """The agent pretrained on `task` with these settings: from the cache, or trained and cached."""
    folder = cache / source_cache_key(bench.space.name, task, steps, seed, hp)
    if (folder / "agent.json").is_file():
        agent = load_agent(folder, bench.space.name)
        reporter.log(f"reusing the pretrained {task} agent in {folder}")
        return agent
    agent = pretrain(bench, task, steps, seed, hp, device, reporter, hooks=hooks)
    save_agent(agent, folder)
    reporter.log(f"pretrained source agent saved to {folder} (sha256 {agent.digest})")
    return agent


def train_target(
    source: Agent | None,
    mode: str,
    bench: Benchmark,
    target: str,
    steps: int,
    target_evaluations: int | None,
    seed: int,
    hp: Hyperparameters,
    device: torch.device,
    evaluator: Evaluator | None,
    reporter: Reporter,
    label: str,
    hooks: Sequence[LearnerHooks] = (),
) -> Agent:
    """One trial's target agent: made from the source by `mode`, trained within the budget.

    Shared by `run_manifest` (every trial in-process), the trainer pod (one trial)
    and the transfer study.
    """
    agent, trainable = make_target_agent(
        source,
        mode,
        bench.space,
        seed,
        target_hyperparameters(hp, target_evaluations),
    )
    steps = steps if trainable is not None else 0
    with reporter.task(f"{label} on {target}", max(steps, 1)) as tick:
        fit(
            agent,
            bench,
            target,
            steps,
            trainable,
            device,
            target_evaluations,
            evaluator,
            tick,
            hooks,
        )
    return agent


def evaluate_agents(
    bench: Benchmark,
    spec: TransferSearchSpec,
    agents: dict[str, Agent],
    source_task: str | None,
    device: torch.device,
    reporter: Reporter,
) -> list[MethodResult]:
    """The agents vs the baselines (and source top-k) at spec.evaluation; notes it in each agent."""
    target = spec.target.task
    evaluation = spec.evaluation
    n_methods = len(agents) + 3  # agents and baselines report progress; top-k is instant
    with reporter.task(f"evaluate on {target}", evaluation.searches * n_methods) as tick:
        results = compare(
            bench,
            target,
            evaluation.budget,
            evaluation.searches,
            evaluation.seed,
            {name: (a.net, *training_cost(a, target)) for name, a in agents.items()},
            device,
            source_task=source_task if evaluation.source_top_k else None,
            progress=lambda n: tick(n, {}),
        )
    for r in results:
        if r.method in agents:
            agents[r.method].evaluation = {
                "task": target,
                "budget": evaluation.budget,
                **r.to_dict(),
            }
    return results


def run_manifest(
    manifest: TransferSearchManifest, opts: RunOptions, reporter: Reporter | None = None
) -> dict[str, Any]:
    reporter = reporter or QuietReporter()
    spec = manifest.spec
    started = time.perf_counter()
    bench = load_benchmark(opts.data or spec.benchmark.data, spec.benchmark.space)
    device = pick_device(opts.device)
    hp = opts.hp or Hyperparameters()
    target = spec.target.task
    opts.out.mkdir(parents=True, exist_ok=True)
    source = get_source(manifest, bench, opts, hp, device, reporter)
    source_task = source.task if source is not None else spec.source.task

    modes = [spec.transfer.mode]
    if opts.compare_scratch and spec.transfer.mode != "scratch":
        modes.append("scratch")
    agents: dict[str, Agent] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    evaluator = curve_evaluator(bench, target, hp.eval_budget, hp.eval_searches, device)
    for trial in range(spec.training.seeds):
        seed = spec.training.seed + trial
        for mode in modes:
            name = mode if spec.training.seeds == 1 else f"{mode} s{seed}"
            agent = train_target(
                source,
                mode,
                bench,
                target,
                spec.training.steps,
                spec.training.target_evaluations,
                seed,
                hp,
                device,
                evaluator,
                reporter,
                name,
                instrument(opts.metrics, manifest, target, mode, trial),
            )
            export_untrained(
                opts.metrics, metric_labels(manifest, target, mode, trial), agent, evaluator
            )
            save_agent(agent, opts.out / "agents" / name.replace(" ", "-"))
            agents[name] = agent
            curves[name] = list(agent.training.get("curve") or [])
        # the negative-transfer reference: the scratch agent trained beside it, same budget
        scratch = agents.get("scratch" if spec.training.seeds == 1 else f"scratch s{seed}")
        reference = final_regret(scratch.training) if scratch is not None else None
        if opts.metrics is not None and reference is not None:
            for mode in modes:
                if mode != "scratch":
                    labels = metric_labels(manifest, target, mode, trial)
                    opts.metrics.set_scratch_reference(labels, reference)

    evaluation = spec.evaluation
    results = evaluate_agents(bench, spec, agents, source_task, device, reporter)
    for name, agent in agents.items():
        save_agent(agent, opts.out / "agents" / name.replace(" ", "-"))
    stats = bench.stats(target)
    report = {
        "search": manifest.metadata.name,
        "space": spec.benchmark.space,
        "source_task": source_task,
        "source_agent": None
        if source is None
        else {"task": source.task, "digest": source.digest, "steps": source.steps},
        "source_choice": None if source is None else source.choice,
        "target_task": target,
        "mode": spec.transfer.mode,
        "budget": evaluation.budget,
        "searches": evaluation.searches,
        "evaluation_seed": evaluation.seed,
        "optimum": stats.optimum,
        "optimum_arch": stats.optimum_arch,
        "results": [r.to_dict() for r in results],
        "agents": {
            name: {
                "digest": a.digest,
                "path": str(opts.out / "agents" / name.replace(" ", "-")),
                "training": {k: v for k, v in a.training.items() if k != "curve"},
            }
            for name, a in agents.items()
        },
        "wall_seconds": time.perf_counter() - started,
        "device": str(device),
    }
    _write_report(report, results, curves, opts.out, stats.optimum, source)
    return report


def _write_report(
    report: dict[str, Any],
    results: list[MethodResult],
    curves: dict[str, list[dict[str, Any]]],
    out: Path,
    optimum: float,
    source: Agent | None,
) -> None:
    (out / "results.json").write_text(json.dumps(report, indent=2))
    write_curves_csv(curves, out / "curves.csv")
    refs = {r.method: r.summary.mean for r in results if r.method in ("local", "evolution")}
    plot_curves(
        curves,
        out / "learning_curves.png",
        f"{report['target_task']}: greedy score while training",
        refs,
    )
    if source is not None and source.training.get("curve"):
        write_curves_csv({"source": source.training["curve"]}, out / "source_curve.csv")
        plot_curves(
            {"source": source.training["curve"]},
            out / "source_curve.png",
            f"source agent pretraining on {source.task}",
        )
    plot_comparison(
        [(r.method, r.summary.mean, r.summary.ci95) for r in results],
        out / "comparison.png",
        f"{report['target_task']}, budget {report['budget']}, {report['searches']} searches",
        optimum,
    )
