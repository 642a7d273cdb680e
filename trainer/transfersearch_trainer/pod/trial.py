"""One trial of a TransferSearch in a pod: the steps of `workflow`, with checkpoints and S3.

Get the source agent (pull it from the store, or pretrain it on spec.source.task or
tasks, reusing a source another trial of the search already pushed). Under protocol
search (the product) the trial is then one search on the target (see `pod.search`): a
benchmark task, or the user's dataset, whose trainings are cached under
`<agent store>/cache/` (`evaluation_cache`).
Under protocol paper it makes and trains the target agent with checkpoints, evaluates
it against the baselines, and pushes the agent to the store. The details go to the
output:

    <output>/trials/<i>/checkpoints/{pretrain,target}/...   (see `agent.checkpoint`)
    <output>/trials/<i>/results.json                       everything about the trial
    <output>/trials/<i>/summary.json                       the TrialSummary (written last)
    <output>/sources/<key>.json                            a pretrained source, for reuse

A trial whose summary.json exists is complete: a rerun only reports it again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.agent.checkpoint import Checkpointer
from transfersearch_trainer.agent.evaluate import MethodResult, curve_evaluator
from transfersearch_trainer.agent.hooks import LearnerHooks
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.agent.transfer import target_hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import JobConfig, TrialSummary
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.pod.search import search_trial
from transfersearch_trainer.store.agents import AgentStore, parse_agent_uri
from transfersearch_trainer.store.blobs import Blobs, open_blobs
from transfersearch_trainer.telemetry.hooks import final_regret, metric_hooks
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.report import search_report
from transfersearch_trainer.workflow.searcher import Searcher
from transfersearch_trainer.workflow.source import pretrain, source_agent, source_cache_key
from transfersearch_trainer.workflow.target import (
    TargetRun,
    evaluate_agents,
    export_untrained,
    train_target,
    training_cost,
)
from transfersearch_trainer.workflow.workspace import Tick, Workspace, use_threads

log = logging.getLogger("transfersearch.trial")


class LogReporter:
    """Progress as log lines (a pod has no terminal): start, every 10%, end."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Tick]:
        started = time.perf_counter()
        done = 0
        every = max(total // 10, 1)
        log.info("%s: starting (%d)", description, total)

        def tick(n: int, info: dict[str, float]) -> None:
            nonlocal done
            before, done = done, done + n
            if done // every > before // every:
                live = " ".join(f"{k} {v:.4g}" for k, v in info.items() if v == v)
                log.info("%s: %d/%d %s", description, done, total, live)

        yield tick
        log.info("%s: done in %.1f s", description, time.perf_counter() - started)

    def log(self, text: str) -> None:
        log.info("%s", text)


def store_location(config: JobConfig) -> str:
    if config.agent_store:
        return config.agent_store
    if config.spec.s3 is not None:
        return f"s3://{config.spec.s3.bucket}/{config.spec.s3.prefix.strip('/')}".rstrip("/")
    return config.output.rstrip("/") + "/store"


def evaluation_cache(config: JobConfig) -> str:
    """Where a dataset target's trainings are kept: beside the agent store, so the trials of
    a search, a restarted pod and later searches of the same data and recipe share them."""
    return f"{store_location(config).rstrip('/')}/cache"


class Trial:
    """One trial's work and where it writes; `run` returns its summary."""

    def __init__(
        self,
        config: JobConfig,
        trial: int,
        stop: threading.Event,
        metrics: TrainerMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.spec = config.spec
        self.trial = trial
        self.seed = self.spec.training.seed + trial
        self.stop = stop
        self.reporter = LogReporter()
        self.out: Blobs = open_blobs(config.output)
        self.store = AgentStore(store_location(config))
        self.prefix = f"trials/{trial}"
        self.identity = {
            "search": config.search,
            "namespace": config.namespace,
            "uid": config.uid,
            "trial": trial,
            "space": self.spec.benchmark.space,
        }
        self.pretrain_seconds = (0.0, 0.0)  # device, GPU seconds spent pretraining here
        self.source_uri: str | None = None  # where the source pretrained by this search is
        self.pretrained_here = False  # whether this pod pretrained it (and paid for it)

    def _checkpointer(self, phase: str, fingerprint: dict[str, Any]) -> Checkpointer:
        labels = self.labels(fingerprint["task"], fingerprint.get("mode", "pretrain"))
        metrics = self.metrics
        return Checkpointer(
            self.out,
            f"{self.prefix}/checkpoints/{phase}",
            self.spec.training.checkpoint_interval,
            {**self.identity, "phase": phase, **fingerprint},
            should_stop=self.stop.is_set,
            on_saved=None if metrics is None else lambda _: metrics.record_checkpoint(labels),
        )

    def labels(self, task: str, mode: str) -> MetricLabels:
        return MetricLabels(
            search=self.config.search,
            namespace=self.config.namespace,
            task=task,
            trial=str(self.trial),
            mode=mode,
        )

    def _hooks(self, checkpointer: Checkpointer, task: str, mode: str) -> list[LearnerHooks]:
        """Checkpointer first: the metrics hook then sees the restored state as its zero."""
        return [
            checkpointer,
            *metric_hooks(self.metrics, self.labels(task, mode), self.spec.alerts),
        ]

    def finished(self) -> TrialSummary | None:
        raw = self.out.get(f"{self.prefix}/summary.json")
        if raw is None:
            return None
        summary = TrialSummary.model_validate_json(raw)
        return summary if summary.status == "Succeeded" else None

    def run(self) -> TrialSummary:
        done = self.finished()
        if done is not None:
            log.info("trial %d is already complete (%s)", self.trial, done.results_uri)
            return done
        spec = self.spec
        started = time.perf_counter()
        threads = use_threads(spec)
        hp = Hyperparameters().with_overrides(self.config.hyperparameters, "hyperparameters.")
        bench = load_benchmark(spec.benchmark.data, spec.benchmark.space)
        ws = Workspace(bench, pick_device(), hp, self.reporter)
        source = source_agent(
            spec, ws, lambda task, steps, tasks: self.pretrained(ws, task, steps, tasks)
        )
        mode = spec.transfer.mode
        if spec.transfer.protocol == "search":
            searcher = Searcher(
                source,
                self.source_uri or spec.source.agent,
                pretrained_here=self.pretrained_here,
            )
            return search_trial(
                ws,
                spec,
                searcher,
                seed=self.seed,
                identity=self.identity,
                out=self.out,
                prefix=self.prefix,
                pretrain_seconds=self.pretrain_seconds,
                metrics=self.metrics,
                labels=self.labels(spec.target.name, mode),
                extra={"torch_threads": threads},
                started=started,
                cache=evaluation_cache(self.config),
                owner=f"{self.config.namespace}/{self.config.search}/trial-{self.trial}",
            )
        run = TargetRun(
            mode=mode,
            target=spec.target.benchmark_task,
            steps=spec.training.steps,
            target_evaluations=spec.training.target_evaluations,
            seed=self.seed,
            label=mode,
        )
        checkpointer = self._checkpointer(
            "target",
            {
                **run.fingerprint,
                "hyperparameters": target_hyperparameters(hp, run.target_evaluations).to_dict(),
                "source": None if source is None else source.digest,
            },
        )
        evaluator = curve_evaluator(bench, run.target, hp.eval_budget, hp.eval_searches, ws.device)
        if self.metrics is not None and mode != "scratch":
            reference = self.scratch_reference(run.target, hp)
            if reference is not None:
                self.metrics.set_scratch_reference(self.labels(run.target, mode), reference)
        hooks = self._hooks(checkpointer, run.target, mode)
        agent = train_target(ws, run, source, evaluator, hooks)
        export_untrained(self.metrics, self.labels(run.target, mode), agent, evaluator)
        source_task = source.task if source is not None else spec.source.task
        results = evaluate_agents(ws, spec, {mode: agent}, source_task)
        report = {
            **self.identity,
            "seed": self.seed,
            **search_report(spec, bench, source, results, ws.device),
            "checkpoints": self._checkpoint_report(checkpointer),
            "torch_threads": threads,
        }
        mine = next(r for r in results if r.method == mode)
        return self._publish(agent, mine, report, started)

    def _publish(
        self, agent: Agent, mine: MethodResult, report: dict[str, Any], started: float
    ) -> TrialSummary:
        """Push the agent, write results.json, then summary.json (which marks the trial done)."""
        with tempfile.TemporaryDirectory(prefix="transfersearch-agent-") as folder:
            save_agent(agent, folder)
            stored = self.store.push(folder)
        log.info("agent pushed to %s (weights sha256 %s)", stored.uri, stored.weights_digest)
        training = {k: v for k, v in agent.training.items() if k != "curve"}
        report["agent"] = {**stored.to_dict(), "training": training}
        report["curve"] = agent.training.get("curve") or []
        report["wall_seconds"] = time.perf_counter() - started
        results_key = f"{self.prefix}/results.json"
        self.out.put(results_key, json.dumps(report, indent=2).encode())
        evaluations = training_cost(agent, self.spec.target.benchmark_task)[0]
        summary = TrialSummary(
            trial=self.trial,
            seed=self.seed,
            status="Succeeded",
            protocol="paper",
            best_arch=mine.best_arch,
            best_metric=mine.summary.mean,
            regret=mine.summary.regret,
            device_seconds=float(training.get("device_seconds", 0.0)) + self.pretrain_seconds[0],
            gpu_seconds=float(training.get("gpu_seconds", 0.0)) + self.pretrain_seconds[1],
            target_evaluations=evaluations,
            evaluations=evaluations,
            budget=self.spec.training.target_evaluations or 0,
            agent_uri=stored.uri,
            agent_digest=f"sha256:{stored.weights_digest}",
            results_uri=self.out.uri(results_key),
        )
        self.out.put(f"{self.prefix}/summary.json", summary.to_message().encode())
        return summary

    @staticmethod
    def _checkpoint_report(ckpt: Checkpointer) -> dict[str, Any]:
        return {
            "interval": ckpt.interval,
            "resumed_from_updates": ckpt.resumed_from,
            "restore_seconds": ckpt.restore_seconds if ckpt.resumed_from is not None else None,
            "saves": [
                {"name": s.name, "updates": s.updates, "bytes": s.bytes, "seconds": s.seconds}
                for s in ckpt.saves
            ],
        }

    def scratch_reference(self, target: str, hp: Hyperparameters) -> float | None:
        """The negative-transfer reference: the newest scratch agent for `target` in the store.

        Its last learning-curve regret ratio, if it was measured like ours (same
        evaluation budget and searches); a scratch search run once per task provides
        it for every later transfer search. Best effort: a reference is not worth
        failing a trial for, so any problem is logged and the alert simply has none.
        """
        space = self.spec.benchmark.space
        try:
            candidates = [a for a in self.store.list_agents(space, target) if a.mode == "scratch"]
            for entry in reversed(candidates):  # newest first
                ref = parse_agent_uri(entry.uri)
                if ref is None:
                    continue
                manifest = self.store.manifest(ref)  # the curve is in it: no weights needed
                theirs = manifest.get("hyperparameters") or {}
                reference = final_regret(manifest.get("training") or {})
                same = all(
                    theirs.get(k) == getattr(hp, k) for k in ("eval_budget", "eval_searches")
                )
                if reference is not None and same:
                    log.info("scratch reference for %s: %s", target, entry.uri)
                    return reference
        except (TransferSearchError, OSError, ValueError, KeyError) as err:
            log.warning("no scratch reference for the negative-transfer alert: %s", err)
        return None

    def pretrained(
        self, ws: Workspace, task: str, steps: int, tasks: tuple[str, ...] = ()
    ) -> Agent:
        """The source agent pretrained on `task` (or the multi-source `tasks`, labelled `task`):
        one a trial of this search pushed, or train it."""
        seed = self.spec.training.seed
        key = f"sources/{source_cache_key(ws.bench.space.name, task, steps, seed, ws.hp)}.json"
        raw = self.out.get(key)
        if raw is not None:
            data = json.loads(raw)
            ref = parse_agent_uri(str(data.get("uri", "")))
            if ref is None:
                raise TransferSearchError(f"{self.out.uri(key)}: no agent URI in it")
            folder = AgentStore(ref.root).pull(ref, weights_digest=data.get("weights_digest"))
            agent = load_agent(folder, ws.bench.space.name)
            log.info("reusing the %s source agent pretrained by this search: %s", task, ref.digest)
            self.source_uri = str(data["uri"])
            return agent
        checkpointer = self._checkpointer(
            "pretrain",
            {
                "task": task,
                "seed": seed,
                "steps": steps,
                "hyperparameters": ws.hp.to_dict(),
                **({"tasks": list(tasks)} if tasks else {}),
            },
        )
        hooks = self._hooks(checkpointer, task, "pretrain")
        agent = pretrain(ws, task, steps, seed, hooks=hooks, tasks=tasks)
        self.pretrain_seconds = (
            float(agent.training.get("device_seconds", 0.0)),
            float(agent.training.get("gpu_seconds", 0.0)),
        )
        with tempfile.TemporaryDirectory(prefix="transfersearch-source-") as tmp:
            save_agent(agent, tmp)
            stored = self.store.push(tmp)
        self.out.put(key, json.dumps(stored.to_dict(), indent=2).encode())
        self.source_uri, self.pretrained_here = stored.uri, True
        log.info("source agent pretrained on %s pushed to %s", task, stored.uri)
        return agent
