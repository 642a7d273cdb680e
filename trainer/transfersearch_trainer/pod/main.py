"""`transfersearch train --config job.json`: the trainer pod's entry point, one trial.

The pod reads its `JobConfig` (a mounted ConfigMap) and its trial number from
``JOB_COMPLETION_INDEX`` (Indexed Job) and runs that `Trial` (see `pod.trial`).
The summary also goes to the termination-message file, where the kubelet picks it
up for the operator; failures are reported there too. Exit codes: 0 done,
2 permanent (bad input: fix the spec or data), 75 retryable (S3 unreachable past
the retry deadline, SIGTERM), 1 unexpected (a bug; the traceback is in the log).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import (
    TERMINATION_LOG,
    JobConfig,
    TrialSummary,
    load_job_config,
)
from transfersearch_trainer.pod.trial import Trial
from transfersearch_trainer.store import s3
from transfersearch_trainer.telemetry.metrics import TrainerMetrics

TRIAL_ENV = "JOB_COMPLETION_INDEX"
MAX_REASON = 1024  # keeps the summary far below the 4096-byte termination message
EXIT_OK = 0
EXIT_BUG = 1

log = logging.getLogger("transfersearch.trial")


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


def failure_summary(reason: str, trial: int, seed: int, retryable: bool | None) -> TrialSummary:
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
        summary = failure_summary(str(err), index, seed, err.retryable)
        code = err.exit_code
    except Exception as err:
        log.exception("trial failed with an unexpected error")
        summary = failure_summary(f"internal error: {type(err).__name__}: {err}", index, seed, None)
        code = EXIT_BUG
    _write_termination_log(summary_path, summary)
    if metrics is not None and metrics_linger > 0 and not stop.is_set():
        log.info("serving the final metrics for %.0f s more", metrics_linger)
        stop.wait(metrics_linger)
    return code
