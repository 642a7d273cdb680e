"""`transfersearch train --config job.json`: one trial of a TransferSearch, as a pod runs it.

The pod reads its `JobConfig` (a mounted ConfigMap) and its trial number from
``JOB_COMPLETION_INDEX`` (Indexed Job), then does what `run_manifest` does for
one trial, with the same functions: get the source agent (pull it from the store,
or pretrain it on spec.source.task, reusing a source another trial of the search
already pushed), make and train the target agent with checkpoints, evaluate it
against the baselines, push the agent to the store and the details to the output:

    <output>/trials/<i>/checkpoints/{pretrain,target}/...   (see `checkpoint`)
    <output>/trials/<i>/results.json                       everything about the trial
    <output>/trials/<i>/summary.json                       the TrialSummary (written last)
    <output>/sources/<key>.json                            a pretrained source, for reuse

A trial whose summary.json exists is complete: a rerun only reports it again.
The summary also goes to the termination-message file, where the kubelet picks it
up for the operator; failures are reported there too. Exit codes: 0 done,
2 permanent (bad input: fix the spec or data), 75 retryable (S3 unreachable past
the retry deadline, SIGTERM), 1 unexpected (a bug; the traceback is in the log).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.agent.checkpoint import Checkpointer
from transfersearch_trainer.agent.evaluate import MethodResult, curve_evaluator
from transfersearch_trainer.agent.learner import Hyperparameters, LearnerHooks, pick_device
from transfersearch_trainer.agent.transfer import target_hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import (
    TERMINATION_LOG,
    JobConfig,
    TrialSummary,
    load_job_config,
)
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.agents import AgentStore, parse_agent_uri
from transfersearch_trainer.store.blobs import Blobs, open_blobs
from transfersearch_trainer.telemetry.hooks import final_regret, metric_hooks
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.local import (
    Tick,
    evaluate_agents,
    export_untrained,
    pretrain,
    source_agent,
    source_cache_key,
    train_target,
    training_cost,
)

TRIAL_ENV = "JOB_COMPLETION_INDEX"
MAX_REASON = 1024  # keeps the summary far below the 4096-byte termination message
EXIT_OK = 0
EXIT_BUG = 1

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


def trial_index(config: JobConfig, given: int | None = None) -> int:
    raw = str(given) if given is not None else os.environ.get(TRIAL_ENV, "0")
    seeds = config.spec.training.seeds
    try:
        trial = int(raw)
    except ValueError:
        trial = -1
    if not 0 <= trial < seeds:
        raise TransferSearchError(
            f"{TRIAL_ENV}: {raw!r} is not a trial of this search (spec.training.seeds is "
            f"{seeds}: use 0 to {seeds - 1})"
        )
    return trial


def job_hyperparameters(config: JobConfig) -> Hyperparameters:
    """The defaults with the config's overrides, each checked for name and type."""
    hp = Hyperparameters()
    defaults = hp.to_dict()
    changes: dict[str, object] = {}
    for name, value in config.hyperparameters.items():
        if name not in defaults:
            raise TransferSearchError(
                f"hyperparameters.{name}: unknown; use one of {', '.join(defaults)}"
            )
        kind = type(defaults[name])
        if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise TransferSearchError(f"hyperparameters.{name}: must be an integer, got {value!r}")
        changes[name] = kind(value)
    return hp.replace(**changes) if changes else hp


def store_location(config: JobConfig) -> str:
    if config.agent_store:
        return config.agent_store
    if config.spec.s3 is not None:
        return f"s3://{config.spec.s3.bucket}/{config.spec.s3.prefix.strip('/')}".rstrip("/")
    return config.output.rstrip("/") + "/store"


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

    def _checkpointer(self, phase: str, fingerprint: dict[str, Any]) -> Checkpointer:
        labels = self._labels(fingerprint["task"], fingerprint.get("mode", "pretrain"))
        metrics = self.metrics
        return Checkpointer(
            self.out,
            f"{self.prefix}/checkpoints/{phase}",
            self.spec.training.checkpoint_interval,
            {**self.identity, "phase": phase, **fingerprint},
            should_stop=self.stop.is_set,
            on_saved=None if metrics is None else lambda _: metrics.record_checkpoint(labels),
        )

    def _labels(self, task: str, mode: str) -> MetricLabels:
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
            *metric_hooks(self.metrics, self._labels(task, mode), self.spec.alerts),
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
        hp = job_hyperparameters(self.config)
        bench = load_benchmark(spec.benchmark.data, spec.benchmark.space)
        device = pick_device()
        target = spec.target.task
        source = source_agent(
            spec,
            bench,
            self.reporter,
            lambda task, steps: self.pretrained(bench, task, steps, hp, device),
        )
        source_task = source.task if source is not None else spec.source.task
        cap = spec.training.target_evaluations
        checkpointer = self._checkpointer(
            "target",
            {
                "task": target,
                "mode": spec.transfer.mode,
                "seed": self.seed,
                "steps": spec.training.steps,
                "target_evaluations": cap,
                "hyperparameters": target_hyperparameters(hp, cap).to_dict(),
                "source": None if source is None else source.digest,
            },
        )
        evaluator = curve_evaluator(bench, target, hp.eval_budget, hp.eval_searches, device)
        mode = spec.transfer.mode
        if self.metrics is not None and mode != "scratch":
            reference = self.scratch_reference(target, hp)
            if reference is not None:
                self.metrics.set_scratch_reference(self._labels(target, mode), reference)
        agent = train_target(
            source,
            mode,
            bench,
            target,
            spec.training.steps,
            cap,
            self.seed,
            hp,
            device,
            evaluator,
            self.reporter,
            mode,
            hooks=self._hooks(checkpointer, target, mode),
        )
        export_untrained(self.metrics, self._labels(target, mode), agent, evaluator)
        results = evaluate_agents(bench, spec, {mode: agent}, source_task, device, self.reporter)
        report = {
            **self.identity,
            "seed": self.seed,
            "source_task": source_task,
            "source_agent": None
            if source is None
            else {"task": source.task, "digest": source.digest, "steps": source.steps},
            "target_task": target,
            "mode": mode,
            "budget": spec.evaluation.budget,
            "searches": spec.evaluation.searches,
            "evaluation_seed": spec.evaluation.seed,
            "optimum": bench.stats(target).optimum,
            "optimum_arch": bench.stats(target).optimum_arch,
            "results": [r.to_dict() for r in results],
            "checkpoints": self._checkpoint_report(checkpointer),
            "device": str(device),
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
        summary = TrialSummary(
            trial=self.trial,
            seed=self.seed,
            status="Succeeded",
            best_arch=mine.best_arch,
            best_metric=mine.summary.mean,
            regret=mine.summary.regret,
            device_seconds=float(training.get("device_seconds", 0.0)) + self.pretrain_seconds[0],
            gpu_seconds=float(training.get("gpu_seconds", 0.0)) + self.pretrain_seconds[1],
            target_evaluations=training_cost(agent, self.spec.target.task)[0],
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
        self, bench: Benchmark, task: str, steps: int, hp: Hyperparameters, device: torch.device
    ) -> Agent:
        """The source agent pretrained on `task`: one a trial of this search pushed, or train it."""
        seed = self.spec.training.seed
        key = f"sources/{source_cache_key(bench.space.name, task, steps, seed, hp)}.json"
        raw = self.out.get(key)
        if raw is not None:
            data = json.loads(raw)
            ref = parse_agent_uri(str(data.get("uri", "")))
            if ref is None:
                raise TransferSearchError(f"{self.out.uri(key)}: no agent URI in it")
            folder = AgentStore(ref.root).pull(ref, weights_digest=data.get("weights_digest"))
            agent = load_agent(folder, bench.space.name)
            log.info("reusing the %s source agent pretrained by this search: %s", task, ref.digest)
            return agent
        checkpointer = self._checkpointer(
            "pretrain",
            {"task": task, "seed": seed, "steps": steps, "hyperparameters": hp.to_dict()},
        )
        hooks = self._hooks(checkpointer, task, "pretrain")
        agent = pretrain(bench, task, steps, seed, hp, device, self.reporter, hooks=hooks)
        self.pretrain_seconds = (
            float(agent.training.get("device_seconds", 0.0)),
            float(agent.training.get("gpu_seconds", 0.0)),
        )
        with tempfile.TemporaryDirectory(prefix="transfersearch-source-") as tmp:
            save_agent(agent, tmp)
            stored = self.store.push(tmp)
        self.out.put(key, json.dumps(stored.to_dict(), indent=2).encode())
        log.info("source agent pretrained on %s pushed to %s", task, stored.uri)
        return agent


def _failure(reason: str, trial: int, seed: int, retryable: bool | None) -> TrialSummary:
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 3] + "..."
    return TrialSummary(trial=trial, seed=seed, status="Failed", reason=reason, retryable=retryable)


def _write_termination_log(path: str, summary: TrialSummary) -> None:
    try:
        Path(path).write_text(summary.to_message(), encoding="utf-8")
    except OSError as err:
        log.error("cannot write the termination message to %s (%s)", path, err.strerror)


def serve_metrics(config: JobConfig, port: int | None) -> TrainerMetrics | None:
    """Start /metrics on the config's port (or `port`; 0: off). Never fails the trial."""
    port = config.metrics_port if port is None else port
    if not port:
        return None
    metrics = TrainerMetrics()
    try:
        metrics.serve(port)
    except OSError as err:
        log.warning("metrics: cannot listen on port %d (%s); training without /metrics", port, err)
        return None
    log.info("metrics on :%d/metrics", port)
    return metrics


def main(
    config_path: str,
    termination_log: str | None = None,
    trial: int | None = None,
    metrics_port: int | None = None,
    metrics_linger: float = 0.0,
) -> int:
    """Run one trial and report it; returns the process exit code (never raises)."""
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transfersearch").setLevel(logging.INFO)
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: saving a checkpoint and stopping at the next step")
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    summary_path = termination_log or TERMINATION_LOG
    index, seed = trial if trial is not None else 0, 0
    metrics: TrainerMetrics | None = None
    try:
        config = load_job_config(config_path)
        summary_path = termination_log or config.termination_log
        index = trial_index(config, trial)
        seed = config.spec.training.seed + index
        if config.spec.s3 is not None:
            s3.configure(config.spec.s3.endpoint, config.spec.s3.region)
        metrics = serve_metrics(config, metrics_port)
        summary = Trial(config, index, stop, metrics).run()
        code = EXIT_OK
    except TransferSearchError as err:
        log.error("trial failed: %s", err)
        print(f"error: {err}", file=sys.stderr)
        summary = _failure(str(err), index, seed, err.retryable)
        code = err.exit_code
    except Exception as err:
        log.exception("trial failed with an unexpected error")
        summary = _failure(f"internal error: {type(err).__name__}: {err}", index, seed, None)
        code = EXIT_BUG
    _write_termination_log(summary_path, summary)
    if metrics is not None and metrics_linger > 0 and not stop.is_set():
        log.info("serving the final metrics for %.0f s more", metrics_linger)
        stop.wait(metrics_linger)
    return code
