"""`transfersearch run`: one TransferSearch manifest, run in-process from start to finish.

Under protocol search, one search per trial (see `local_search`), on a benchmark task
or on the manifest's dataset. Under protocol
paper, the same work a trainer Job does in the cluster, with the same steps (`source`,
`target`): get the source agent (load it, or pretrain one on the source task and keep
it in a local agent cache), make the target agent by the transfer mode, train it on
the target within the manifest's budget of target evaluations, then evaluate it
against the baselines and the source top-k on the same starts. With
``compare_scratch`` a scratch agent gets the same training budget, which is the
reference transfer is judged by. Results go to a report folder: results.json,
curves.csv, learning_curves.png, comparison.png and the agents.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfersearch_trainer.agent.artifact import Agent, save_agent
from transfersearch_trainer.agent.evaluate import MethodResult, curve_evaluator
from transfersearch_trainer.agent.hooks import LearnerHooks
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.api.spec import TransferSearchManifest
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.telemetry.hooks import final_regret, metric_hooks
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.local_search import run_searches
from transfersearch_trainer.workflow.plots import plot_comparison, plot_curves, write_curves_csv
from transfersearch_trainer.workflow.report import search_report
from transfersearch_trainer.workflow.source import pretrained_source, source_agent
from transfersearch_trainer.workflow.target import (
    TargetRun,
    evaluate_agents,
    export_untrained,
    train_target,
)
from transfersearch_trainer.workflow.workspace import (
    QuietReporter,
    Reporter,
    Workspace,
    use_threads,
)


@dataclass
class RunOptions:
    out: Path
    data: str | None = None
    agents_dir: Path | None = None  # cache of pretrained source agents (default: out/../agents)
    compare_scratch: bool = True
    compare_baselines: bool = False  # protocol search: every baseline, same budget and seeds
    device: str | None = None
    hp: Hyperparameters | None = None
    metrics: TrainerMetrics | None = None  # exported while training (`--metrics-port`)
    cache: str | None = None  # a dataset target's trainings (default: `default_cache()`)


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


def run_manifest(
    manifest: TransferSearchManifest, opts: RunOptions, reporter: Reporter | None = None
) -> dict[str, Any]:
    spec = manifest.spec
    started = time.perf_counter()
    threads = use_threads(spec)
    bench = load_benchmark(opts.data or spec.benchmark.data, spec.benchmark.space)
    ws = Workspace(
        bench, pick_device(opts.device), opts.hp or Hyperparameters(), reporter or QuietReporter()
    )
    if spec.transfer.protocol == "search":  # a dataset target is always (spec rules)
        return run_searches(manifest, ws, opts, threads)
    target = spec.target.benchmark_task
    opts.out.mkdir(parents=True, exist_ok=True)
    cache = opts.agents_dir or opts.out.parent / "agents"
    seed = spec.training.seed

    def pretrained(task: str, steps: int, tasks: tuple[str, ...]) -> Agent:
        hooks = instrument(opts.metrics, manifest, task, "pretrain", 0)
        return pretrained_source(ws, task, steps, seed, cache, hooks, tasks)

    source = source_agent(spec, ws, pretrained)
    source_task = source.task if source is not None else spec.source.task

    modes = [spec.transfer.mode]
    if opts.compare_scratch and spec.transfer.mode != "scratch":
        modes.append("scratch")
    agents: dict[str, Agent] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    hp = ws.hp
    evaluator = curve_evaluator(bench, target, hp.eval_budget, hp.eval_searches, ws.device)
    for trial in range(spec.training.seeds):
        trial_seed = seed + trial
        for mode in modes:
            name = mode if spec.training.seeds == 1 else f"{mode} s{trial_seed}"
            run = TargetRun(
                mode=mode,
                target=target,
                steps=spec.training.steps,
                target_evaluations=spec.training.target_evaluations,
                seed=trial_seed,
                label=name,
            )
            hooks = instrument(opts.metrics, manifest, target, mode, trial)
            agent = train_target(ws, run, source, evaluator, hooks)
            labels = metric_labels(manifest, target, mode, trial)
            export_untrained(opts.metrics, labels, agent, evaluator)
            save_agent(agent, _agent_dir(opts.out, name))
            agents[name] = agent
            curves[name] = list(agent.training.get("curve") or [])
        # the negative-transfer reference: the scratch agent trained beside it, same budget
        scratch = agents.get("scratch" if spec.training.seeds == 1 else f"scratch s{trial_seed}")
        reference = final_regret(scratch.training) if scratch is not None else None
        if opts.metrics is not None and reference is not None:
            for mode in modes:
                if mode != "scratch":
                    labels = metric_labels(manifest, target, mode, trial)
                    opts.metrics.set_scratch_reference(labels, reference)

    results = evaluate_agents(ws, spec, agents, source_task)
    for name, agent in agents.items():
        save_agent(agent, _agent_dir(opts.out, name))
    report = {
        "search": manifest.metadata.name,
        **search_report(spec, bench, source, results, ws.device),
        "agents": {
            name: {
                "digest": a.digest,
                "path": str(_agent_dir(opts.out, name)),
                "training": {k: v for k, v in a.training.items() if k != "curve"},
            }
            for name, a in agents.items()
        },
        "torch_threads": threads,
        "wall_seconds": time.perf_counter() - started,
    }
    _write_report(report, results, curves, opts.out, source)
    return report


def _agent_dir(out: Path, name: str) -> Path:
    return out / "agents" / name.replace(" ", "-")


def _write_report(
    report: dict[str, Any],
    results: list[MethodResult],
    curves: dict[str, list[dict[str, Any]]],
    out: Path,
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
        report["optimum"],
    )
