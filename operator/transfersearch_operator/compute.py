"""Status as a pure function of what is observed: the search, its Job, its pods.

Recomputing the whole status from the cluster (instead of updating it from
events) is what makes the operator restart-safe and idempotent: the same
observations always give the same status. The previous status is consulted
only to keep each condition's lastTransitionTime when its status holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from transfersearch_trainer.api.errors import redact
from transfersearch_trainer.api.jobconfig import TrialSummary
from transfersearch_trainer.api.spec import (
    TransferSearchManifest,
    TransferSearchSpec,
    format_validation_error,
)

from .children import child_name, source_description
from .observed import ObservedJob, ObservedPod, ObservedSearch
from .status import (
    CONDITION_TYPES,
    MAX_MESSAGE,
    Condition,
    TransferSearchStatus,
    TrialCounts,
    TrialResult,
)
from .totals import evaluations_spent

_SUMMARY_FIELDS = {f.alias or n for n, f in TrialSummary.model_fields.items()}
_JOB_FAILED = ("Failed", "FailureTarget")
_JOB_DONE = ("Complete", "SuccessCriteriaMet")
# Job failure reasons -> what they mean for a search.
_FAILURE_REASONS = {
    "BackoffLimitExceeded": "FailureBudgetExhausted",
    "PodFailurePolicy": "TrialError",
    "DeadlineExceeded": "DeadlineExceeded",
}


# Refusals that end a generation: the user must change the spec (or the admin the policy).
FINAL_REFUSALS = frozenset({"JobRejected", "PolicyDenied"})


class InvalidSpecError(ValueError):
    """A spec the schema let through but the model refuses; the message names the field."""


@dataclass(frozen=True)
class Refusal:
    """Why this generation has no Job: the one fact the cluster cannot show.

    Final refusals (the API server refused the Job as written, the admission policy
    refused the spec) fail the generation; the others (no permission, quota, a name
    taken, a Secret not there yet) leave it Pending while the operator tries again,
    and say so in the Created condition instead of only in the operator's log.
    """

    reason: str
    message: str

    @property
    def final(self) -> bool:
        return self.reason in FINAL_REFUSALS


def validate(search: ObservedSearch) -> TransferSearchSpec:
    """The parsed spec, or InvalidSpecError with one line per field at fault."""
    manifest = {
        "apiVersion": "transfersearch.io/v1alpha1",
        "kind": "TransferSearch",
        "metadata": {"name": search.name, "namespace": search.namespace},
        "spec": search.spec,
    }
    try:
        return TransferSearchManifest.model_validate(manifest).spec
    except ValidationError as err:
        text = format_validation_error(err, f"{search.namespace}/{search.name}")
        raise InvalidSpecError(" ".join(line.strip() for line in text.splitlines())) from None


def previous_status(search: ObservedSearch) -> TransferSearchStatus | None:
    try:
        return TransferSearchStatus.model_validate(search.status) if search.status else None
    except ValidationError:
        return None  # hand-edited or from an older operator: recompute from scratch


def owned_job(search: ObservedSearch, jobs: Iterable[ObservedJob]) -> ObservedJob | None:
    """The Job of the search's current generation that the search itself controls.

    Jobs come labelled with the search's name, which an earlier search of the same
    name had too: only the controller's uid tells them apart.
    """
    return next(
        (j for j in jobs if j.owner_uid == search.uid and j.generation == search.generation),
        None,
    )


def compute_status(
    search: ObservedSearch,
    jobs: Iterable[ObservedJob],
    pods: Iterable[ObservedPod],
    now: str,
    refusal: Refusal | None = None,
) -> TransferSearchStatus:
    """The status for the search's current generation.

    `jobs` and `pods` are those labelled with the search's name; only the Job the
    search controls, and that Job's own pods, count. `refusal` says why the
    generation has no Job, if the operator was refused one.
    """
    prev = previous_status(search)
    gen = search.generation
    conditions = _Conditions(prev, gen, now)
    try:
        spec = validate(search)
    except InvalidSpecError as err:
        message = _clip(str(err))
        conditions.set("Created", "False", "InvalidSpec", message)
        conditions.set("Failed", "True", "InvalidSpec", message)
        return TransferSearchStatus(
            phase="Failed",
            observed_generation=gen,
            message=message,
            conditions=conditions.items(),
        )
    job = owned_job(search, jobs)
    name = job.name if job is not None else child_name(search.name, search.uid, gen)
    base: dict[str, Any] = {
        "observed_generation": gen,
        "job_name": name,
        "config_map_name": (job.config_map if job is not None else "") or name,
        "source": source_description(spec),
        "target": spec.target.name,
    }
    if job is None:
        refusal = refusal or _kept_refusal(prev, gen)
        if refusal is None:
            phase, reason = "Pending", "Creating"
            message = f"creating Job {name} for {spec.training.seeds} trial(s)"
        else:
            reason, message = refusal.reason, _clip(refusal.message)
            phase = "Failed" if refusal.final else "Pending"
            if refusal.final:
                conditions.set("Failed", "True", reason, message)
        conditions.set("Created", "False", reason, message)
        return TransferSearchStatus(
            phase=phase,
            message=message,
            conditions=conditions.items(),
            trials=TrialCounts(total=spec.training.seeds),
            **base,
        )

    # The Job's own pods: an earlier Job of the same name left pods with the same labels.
    results = trial_results(
        spec, [p for p in pods if p.generation == gen and job.uid and p.job_uid == job.uid]
    )
    gpu_seconds = sum(r.gpu_seconds for r in results.values())
    results_list = [results[i] for i in sorted(results)]
    done, budget = evaluations_spent(spec, results_list)
    best = max(
        (r for r in results_list if r.status == "Succeeded" and r.best_metric is not None),
        key=lambda r: (r.best_metric, -r.trial),
        default=None,
    )
    trials = TrialCounts(
        total=spec.training.seeds, active=job.active, succeeded=job.succeeded, failed=job.failed
    )
    conditions.set("Created", "True", "JobCreated", f"Job {name} runs {trials.total} trial(s)")
    phase, reason, message = _phase(spec, job, trials, results_list, best)
    if phase == "Running":
        conditions.set("Running", "True", reason, message)
    else:
        conditions.set("Running", "False", reason, message)
    if phase in ("Succeeded", "Failed"):
        conditions.set(phase, "True", reason, message)
    ended = job.condition(*_JOB_FAILED, *_JOB_DONE)
    completion = job.completion_time or (ended.last_transition_time if ended else None)
    return TransferSearchStatus(
        phase=phase,
        message=message,
        conditions=conditions.items(),
        trials=trials,
        results=results_list,
        best_trial=best.trial if best else None,
        best_arch=best.best_arch if best else None,
        best_metric=best.best_metric if best else None,
        best_rank=best.rank if best else None,
        evaluations=f"{done}/{budget}" if budget else str(done),
        evaluations_done=done,
        evaluation_budget=budget,
        device_seconds=round(sum(r.device_seconds for r in results_list), 3),
        gpu_seconds=round(gpu_seconds, 3),
        agent_uri=best.agent_uri if best else None,
        agent_digest=best.agent_digest if best else None,
        start_time=job.start_time,
        completion_time=completion if phase in ("Succeeded", "Failed") else None,
        **base,
    )


def _kept_refusal(prev: TransferSearchStatus | None, generation: int) -> Refusal | None:
    """A final refusal the status already records for this generation.

    The operator keeps refusals in memory only; after a restart the status is
    the record, and recomputing it must not turn a refused search back into
    "creating Job" (a finished generation is not tried again).
    """
    if prev is None or prev.observed_generation != generation or prev.phase != "Failed":
        return None
    failed = next((c for c in prev.conditions if c.type == "Failed"), None)
    if failed is None or failed.reason not in FINAL_REFUSALS:
        return None
    return Refusal(failed.reason, failed.message)


def _phase(
    spec: TransferSearchSpec,
    job: ObservedJob,
    trials: TrialCounts,
    results: list[TrialResult],
    best: TrialResult | None,
) -> tuple[str, str, str]:
    """(phase, reason, message) for a search whose Job exists."""
    failed = job.condition(*_JOB_FAILED)
    last_failure = next((r for r in reversed(results) if r.status == "Failed"), None)
    why = f": trial {last_failure.trial}: {last_failure.reason}" if last_failure else ""
    budget = f"{trials.failed} trial pod(s) failed, failure budget {spec.failure_budget}"
    if failed is not None:
        reason = _FAILURE_REASONS.get(failed.reason, failed.reason or "JobFailed")
        if reason == "FailureBudgetExhausted":
            return "Failed", reason, _clip(budget + why)
        if reason == "TrialError":
            return "Failed", reason, _clip(f"a trial failed in a way retries cannot fix{why}")
        return "Failed", _reason(reason), _clip(f"Job failed: {failed.message}{why}")
    if trials.failed > spec.failure_budget:
        return "Failed", "FailureBudgetExhausted", _clip(budget + why)
    if job.condition(*_JOB_DONE) is not None or trials.succeeded >= trials.total:
        rank = f" (rank {best.rank})" if best and best.rank else ""
        found = (
            f"; best {best.best_metric:g}{rank} by trial {best.trial} ({best.best_arch})"
            if best
            else ""
        )
        return "Succeeded", "TrialsSucceeded", _clip(f"{trials.succeeded} trial(s) done{found}")
    progress = f"{trials.succeeded}/{trials.total} trial(s) done, {trials.active} running"
    if trials.failed:
        progress += f", {budget}"
    if trials.active or trials.succeeded or trials.failed:
        return "Running", "TrialsRunning", progress
    return "Pending", "WaitingForPods", progress


def trial_results(spec: TransferSearchSpec, pods: list[ObservedPod]) -> dict[int, TrialResult]:
    """Per completion index, the succeeded pod's result, else the latest failure."""
    chosen: dict[int, ObservedPod] = {}
    for pod in pods:
        if pod.index is None or not pod.finished:
            continue
        held = chosen.get(pod.index)
        if held is None or _rank(pod) > _rank(held):
            chosen[pod.index] = pod
    return {i: _result(spec, i, p) for i, p in chosen.items()}


def _rank(pod: ObservedPod) -> tuple[bool, str, bool]:
    """Succeeded first, then the latest; timestamps have whole seconds, so among
    pods that ended in the same second the one that left a summary says more."""
    term = pod.terminated
    has_summary = bool(term and parse_summary(term.message))
    return (pod.phase == "Succeeded", (term.finished_at if term else None) or "", has_summary)


def parse_summary(message: str) -> TrialSummary | None:
    """A TrialSummary from a termination message, or None for anything else.

    The message is whatever the container left (a summary, a log tail, junk);
    fields a newer trainer adds are ignored rather than making it unreadable.
    """
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return TrialSummary.model_validate({k: v for k, v in data.items() if k in _SUMMARY_FIELDS})
    except ValidationError:
        return None


def _result(spec: TransferSearchSpec, index: int, pod: ObservedPod) -> TrialResult:
    term = pod.terminated
    summary = parse_summary(term.message) if term else None
    status = "Succeeded" if pod.phase == "Succeeded" else "Failed"
    wall_gpu_seconds = (term.seconds if term else 0.0) * spec.resources.gpu
    if summary is None:
        reason = None
        if status == "Failed":
            code = (
                f"exit code {term.exit_code}"
                if term and term.exit_code is not None
                else "no exit code"
            )
            detail = f" ({term.reason})" if term and term.reason else ""
            tail = f": {term.message.strip()}" if term and term.message.strip() else ""
            reason = _clip(f"{code}{detail}{tail}")
        elif term and term.message.strip():
            reason = "termination message is not a trial summary"
        return TrialResult(
            trial=index,
            seed=spec.training.seed + index,
            status=status,
            reason=reason,
            gpu_seconds=round(wall_gpu_seconds, 3),
        )
    return TrialResult(
        trial=index,
        seed=summary.seed,
        status=status,
        reason=_clip(summary.reason) if summary.reason else None,
        best_arch=summary.best_arch[:256] if summary.best_arch else None,
        protocol=summary.protocol,
        best_metric=summary.best_metric,
        regret=summary.regret,
        rank=summary.rank if summary.rank is None or summary.rank >= 1 else None,
        hit=summary.hit,
        evaluations=max(summary.evaluations, 0),
        budget=max(summary.budget, 0),
        device_seconds=round(max(summary.device_seconds, 0.0), 3),
        gpu_seconds=round(summary.gpu_seconds if summary.gpu_seconds > 0 else wall_gpu_seconds, 3),
        target_evaluations=summary.target_evaluations,
        agent_uri=summary.agent_uri,
        agent_digest=summary.agent_digest,
        results_uri=summary.results_uri,
    )


class _Conditions:
    """The conditions of this computation, keeping unchanged transition times."""

    def __init__(self, prev: TransferSearchStatus | None, generation: int, now: str) -> None:
        self._prev: dict[str, Condition] = {c.type: c for c in prev.conditions} if prev else {}
        self._generation = generation
        self._now = now
        self._items: dict[str, Condition] = {}

    def set(self, type_: str, status: str, reason: str, message: str) -> None:
        old = self._prev.get(type_)
        since = old.last_transition_time if old is not None and old.status == status else self._now
        self._items[type_] = Condition.model_validate(
            {
                "type": type_,
                "status": status,
                "reason": _reason(reason),
                "message": _clip(message),
                "lastTransitionTime": since,
                "observedGeneration": self._generation,
            }
        )

    def items(self) -> list[Condition]:
        """In a fixed order (Created, Running, Succeeded, Failed), so equal sets compare equal."""
        return sorted(self._items.values(), key=lambda c: CONDITION_TYPES.index(c.type))


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """One printable line of at most `limit` characters, URLs without their credentials.

    Messages come from containers (a log tail, a crash) and the API server, and the
    status is readable by anyone who may list the searches.
    """
    text = redact(" ".join("".join(ch if ch.isprintable() else " " for ch in text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(reason: str) -> str:
    """A CamelCase reason as conditions require; anything else becomes Unknown."""
    kept = "".join(ch for ch in reason if ch.isalnum())
    return kept if kept[:1].isalpha() else "Unknown"
