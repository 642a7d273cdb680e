"""`transfersearch run` under protocol search: what the trial pods do, in-process.

Get the source agent as the paper protocol does (load it, or pretrain it on the source
task or tasks and keep it in the local agent cache), then one search per trial
(spec.training.seeds of them, seed spec.training.seed + trial) on the target with
budget spec.evaluation.budget: those evaluations are all a trial spends on the target.
With ``compare_scratch`` an untrained agent searches beside each, with the same
budget and seed: the reference a transferred agent is judged by; with
``compare_baselines`` every baseline searches too, the same way (`workflow.compare`).
The report (results.json in the report folder) holds every search, its trajectory
included.

On a dataset target (spec.target.dataset) every evaluation trains a network, as in the
trial pods: the trainings are kept in the evaluation cache (`RunOptions.cache`), so a run
that is stopped and started again pays only for what it had not finished. The scratch
reference and the baselines would each pay for as many trainings again, so they are not
run here; `transfersearch search --dataset ... --compare local,random` runs them by choice.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.api.spec import TransferSearchManifest
from transfersearch_trainer.telemetry.hooks import metric_hooks
from transfersearch_trainer.telemetry.metrics import MetricLabels
from transfersearch_trainer.workflow.compare import baseline_reports
from transfersearch_trainer.workflow.search import agent_sources
from transfersearch_trainer.workflow.searcher import Searcher, search_once, search_own_data
from transfersearch_trainer.workflow.source import (
    pretrained_source,
    source_agent,
    source_cache_key,
)
from transfersearch_trainer.workflow.workspace import Workspace

if TYPE_CHECKING:  # local imports this module
    from transfersearch_trainer.workflow.local import RunOptions


def run_searches(
    manifest: TransferSearchManifest,
    ws: Workspace,
    opts: RunOptions,
    threads: int,
) -> dict[str, Any]:
    """Every trial's search (and its scratch reference), reported and written as results.json."""
    spec = manifest.spec
    started = time.perf_counter()
    cache = opts.agents_dir or opts.out.parent / "agents"
    seed = spec.training.seed
    where: dict[str, str] = {}

    def labels(mode: str, trial: int) -> MetricLabels:
        return MetricLabels(
            search=manifest.metadata.name,
            namespace=manifest.metadata.namespace or "local",
            task=spec.target.name,
            trial=str(trial),
            mode=mode,
        )

    def pretrained(task: str, steps: int, tasks: tuple[str, ...]) -> Agent:
        hooks = metric_hooks(opts.metrics, labels("pretrain", 0), spec.alerts)
        where["uri"] = str(cache / source_cache_key(ws.bench.space.name, task, steps, seed, ws.hp))
        return pretrained_source(ws, task, steps, seed, cache, hooks, tasks)

    source = source_agent(spec, ws, pretrained)
    searcher = Searcher(source, where.get("uri") or spec.source.agent)
    own_data = spec.target.dataset is not None
    modes = [spec.transfer.mode]
    if opts.compare_scratch and spec.transfer.mode != "scratch" and not own_data:
        modes.append("scratch")
    searches: list[dict[str, Any]] = []
    for trial in range(spec.training.seeds):
        for mode in modes:
            lab = labels(mode, trial)
            device = str(ws.device)
            listeners = []
            if opts.metrics is not None:
                opts.metrics.start_search(
                    lab, spec.evaluation.budget, device, spec.alerts.gpu_seconds_budget
                )
                listeners.append(opts.metrics.evaluation_listener(lab, device))
            if own_data:
                from transfersearch_trainer.workflow.own_data import default_cache

                trainings = opts.cache or default_cache()
                report = search_own_data(
                    ws,
                    spec,
                    searcher,
                    seed + trial,
                    cache=trainings,
                    owner=None,
                    listeners=listeners,
                )
            else:
                report = search_once(ws, spec, searcher, seed + trial, mode, listeners)
            if opts.metrics is not None:
                opts.metrics.record_search(lab, report)
            searches.append({"trial": trial, **report})
    baselines: list[dict[str, Any]] = []
    if opts.compare_baselines and not own_data:
        agent = searcher.agent
        sources = list(agent_sources(ws.bench, agent, spec.target.benchmark_task)) if agent else []
        with ws.reporter.task("baselines, same budget and seeds", 1) as tick:
            baselines = baseline_reports(
                ws.bench,
                spec.target.benchmark_task,
                spec.evaluation.budget,
                seed,
                spec.training.seeds,
                sources,
            )
            tick(1, {})
    mine = [s for s in searches if s["mode"] == spec.transfer.mode]
    best = max(mine, key=lambda s: (s["best_metric"], -s["trial"]))
    result = {
        "search": manifest.metadata.name,
        "protocol": "search",
        "space": spec.benchmark.space,
        "target_task": spec.target.name,
        "dataset": None if spec.target.dataset is None else spec.target.dataset.uri,
        "mode": spec.transfer.mode,
        "budget": spec.evaluation.budget,
        "parallel": spec.evaluation.parallel,
        "source": searcher.to_dict(),
        "best": {
            k: best.get(k) for k in ("trial", "seed", "best_arch", "best_metric", "rank", "hit")
        },
        "searches": searches,
        "baselines": baselines,
        "device": str(ws.device),
        "torch_threads": threads,
        "wall_seconds": time.perf_counter() - started,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "results.json").write_text(json.dumps(result, indent=2))
    return result
