"""Status as a function of observations: phases, trial results, junk tolerance, metrics."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from transfersearch_operator.children import child_name
from transfersearch_operator.compute import Refusal, compute_status, parse_summary
from transfersearch_operator.metrics import OperatorMetrics
from transfersearch_operator.observed import (
    JobCondition,
    ObservedJob,
    ObservedPod,
    ObservedSearch,
    Terminated,
)
from transfersearch_operator.status import TransferSearchStatus

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def search(
    generation: int = 1, status: dict[str, Any] | None = None, **spec: Any
) -> ObservedSearch:
    return ObservedSearch(
        name="s",
        namespace="ns",
        uid="u",
        generation=generation,
        resource_version="7",
        spec={"target": {"task": "jigsaw"}, "source": {"task": "class_scene"}, **spec},
        status=status or {},
    )


def job(
    generation: int = 1,
    active: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    condition: tuple[str, str] | None = None,
) -> ObservedJob:
    conditions = ()
    if condition:
        conditions = (JobCondition(condition[0], "True", condition[1], "from the Job", T1),)
    return ObservedJob(
        f"s-u-g{generation}",
        generation,
        active,
        succeeded,
        failed,
        conditions,
        T0,
        None,
        uid=f"job-{generation}",
        owner_uid="u",
        config_map=f"s-u-g{generation}",
    )


def pod(
    index: int,
    phase: str,
    message: str = "",
    exit_code: int = 0,
    generation: int = 1,
    finished: str = T1,
) -> ObservedPod:
    term = Terminated(exit_code, "Error" if exit_code else "Completed", message, T0, finished)
    return ObservedPod(
        f"s-u-g{generation}-{index}", generation, index, phase, term, job_uid=f"job-{generation}"
    )


def summary(index: int, metric: float, **fields: Any) -> str:
    return json.dumps(
        {
            "trial": index,
            "seed": index,
            "status": "Succeeded",
            "bestArch": f"arch-{index}",
            "bestMetric": metric,
            "gpuSeconds": 5.0,
            "agentUri": f"s3://b/agent-{index}",
            **fields,
        }
    )


@pytest.mark.parametrize(
    "message",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '{"trial": "x"}',
        "Traceback (most recent call last):\n  File ...\nMemoryError",
        '{"trial": 0, "seed": 0',
        "\x00\xff garbage",
    ],
)
def test_junk_termination_messages_are_reasons_not_crashes(message: str) -> None:
    assert parse_summary(message) is None
    status = compute_status(
        search(failureBudget=3), [job(failed=1)], [pod(0, "Failed", message, exit_code=137)], now=T1
    )
    (result,) = status.results
    assert result.status == "Failed"
    assert result.reason is not None
    assert result.reason.startswith("exit code 137 (Error)")
    assert status.phase == "Running"


def test_summary_from_a_newer_trainer_is_still_read() -> None:
    parsed = parse_summary(summary(0, 44.0, somethingNew=[1, 2]))
    assert parsed is not None
    assert parsed.best_metric == 44.0


def test_results_best_trial_and_gpu_seconds() -> None:
    pods = [
        pod(0, "Failed", "oom", exit_code=137, finished="2026-01-01T00:10:00Z"),
        pod(0, "Succeeded", summary(0, 45.0)),
        pod(1, "Succeeded", summary(1, 46.0)),
        pod(2, "Succeeded", summary(2, 46.0)),  # a tie goes to the lower trial
        pod(3, "Succeeded", summary(3, 99.0), generation=0),  # another generation
    ]
    spec = {"training": {"seeds": 3, "parallelism": 3}, "resources": {"gpu": 1}}
    status = compute_status(
        search(**spec), [job(succeeded=3, failed=1, condition=("Complete", ""))], pods, now=T1
    )
    assert status.phase == "Succeeded"
    assert [r.trial for r in status.results] == [0, 1, 2]
    assert all(r.status == "Succeeded" for r in status.results)
    assert (status.best_trial, status.best_arch, status.best_metric) == (1, "arch-1", 46.0)
    assert status.agent_uri == "s3://b/agent-1"
    assert status.gpu_seconds == 15.0  # the trainers' own numbers
    assert status.trials.model_dump() == {"total": 3, "active": 0, "succeeded": 3, "failed": 1}
    assert status.completion_time == T1


def test_search_trials_aggregate_evaluations_device_time_and_the_best_rank() -> None:
    def found(index: int, metric: float, rank: int, evaluations: int = 50) -> str:
        return summary(
            index,
            metric,
            protocol="search",
            rank=rank,
            hit=rank == 1,
            evaluations=evaluations,
            budget=50,
            targetEvaluations=evaluations,
            deviceSeconds=2.5,
        )

    pods = [
        pod(0, "Succeeded", found(0, 45.0, rank=9)),
        pod(1, "Succeeded", found(1, 46.5, rank=2)),
        pod(2, "Failed", "oom", exit_code=137),  # spent nothing it could report
    ]
    spec = {"training": {"seeds": 3, "parallelism": 3}, "evaluation": {"budget": 50}}
    status = compute_status(search(**spec), [job(active=1, succeeded=2, failed=1)], pods, now=T1)
    assert status.phase == "Running"
    assert (status.best_trial, status.best_metric, status.best_rank) == (1, 46.5, 2)
    assert (status.evaluations, status.evaluations_done, status.evaluation_budget) == (
        "100/150",
        100,
        150,
    )
    assert status.device_seconds == 5.0
    assert status.gpu_seconds == 10.0
    best = status.results[1]
    assert (best.protocol, best.rank, best.hit, best.evaluations, best.budget) == (
        "search",
        2,
        False,
        50,
        50,
    )
    body = status.to_patch_dict()  # what `kubectl get ts` reads: bestRank, evaluations
    assert (body["bestRank"], body["evaluations"], body["evaluationsDone"]) == (2, "100/150", 100)
    done = compute_status(
        search(**spec),
        [job(succeeded=3, condition=("Complete", ""))],
        [*pods[:2], pod(2, "Succeeded", found(2, 44.0, rank=30))],
        now=T1,
    )
    assert done.evaluations == "150/150"
    assert done.message == "3 trial(s) done; best 46.5 (rank 2) by trial 1 (arch-1)"


def test_paper_trials_count_training_evaluations_against_their_cap() -> None:
    spec = {
        "transfer": {"protocol": "paper", "mode": "finetune"},
        "training": {"seeds": 2, "targetEvaluations": 300},
    }
    trained = summary(0, 45.0, protocol="paper", evaluations=280, budget=300)
    status = compute_status(
        search(**spec), [job(active=1, succeeded=1)], [pod(0, "Succeeded", trained)], now=T1
    )
    assert (status.evaluations, status.best_rank) == ("280/600", None)
    spec["training"] = {"seeds": 2}  # no cap: the count alone
    status = compute_status(
        search(**spec), [job(active=1, succeeded=1)], [pod(0, "Succeeded", trained)], now=T1
    )
    assert (status.evaluations, status.evaluation_budget) == ("280", None)


def test_gpu_seconds_fall_back_to_wall_time_times_gpus() -> None:
    status = compute_status(
        search(resources={"gpu": 2}, training={"seeds": 2}),
        [job(active=1, failed=1)],
        [pod(0, "Failed", "junk", exit_code=1)],
        now=T1,
    )
    assert status.gpu_seconds == 2 * 3600


@pytest.mark.parametrize(
    ("job_", "phase", "reason"),
    [
        (job(), "Pending", "WaitingForPods"),
        (job(active=1), "Running", "TrialsRunning"),
        (job(failed=2, active=1), "Running", "TrialsRunning"),
        (job(failed=3), "Failed", "FailureBudgetExhausted"),  # budget 2: the Job lags
        (
            job(failed=3, condition=("Failed", "BackoffLimitExceeded")),
            "Failed",
            "FailureBudgetExhausted",
        ),
        (job(failed=1, condition=("Failed", "PodFailurePolicy")), "Failed", "TrialError"),
        (job(condition=("Failed", "DeadlineExceeded")), "Failed", "DeadlineExceeded"),
        (job(succeeded=1, condition=("Complete", "")), "Succeeded", "TrialsSucceeded"),
    ],
)
def test_phase_from_the_job(job_: ObservedJob, phase: str, reason: str) -> None:
    status = compute_status(search(failureBudget=2), [job_], [], now=T1)
    assert status.phase == phase
    by_type = {c.type: c for c in status.conditions}
    assert by_type["Created"].status == "True"
    assert by_type["Running"].status == ("True" if phase == "Running" else "False")
    assert by_type["Running"].reason == reason
    if phase in ("Succeeded", "Failed"):
        assert by_type[phase].status == "True"
        assert by_type[phase].reason == reason


def test_budget_message_names_the_budget_and_the_last_failure() -> None:
    status = compute_status(
        search(failureBudget=1),
        [job(failed=2)],
        [
            pod(
                0,
                "Failed",
                '{"trial": 0, "seed": 0, "status": "Failed", "reason": "agent digest mismatch"}',
                exit_code=1,
            )
        ],
        now=T1,
    )
    assert status.phase == "Failed"
    assert "failure budget 1" in (status.message or "")
    assert "agent digest mismatch" in (status.message or "")


def test_invalid_spec_fails_naming_the_field() -> None:
    status = compute_status(search(training={"seeds": 1, "parallelism": 2}), [], [], now=T1)
    assert status.phase == "Failed"
    assert "training.parallelism cannot exceed training.seeds" in (status.message or "")
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.reason == "InvalidSpec"
    status = compute_status(search(training={"stepz": 1}), [], [], now=T1)
    assert "spec.training.stepz: unknown field" in (status.message or "")


def test_rejected_job_fails_the_generation() -> None:
    refusal = Refusal("JobRejected", "the API server refused Job s-0-g1: quantity is invalid")
    status = compute_status(search(), [], [], now=T1, refusal=refusal)
    assert status.phase == "Failed"
    assert "quantity is invalid" in (status.message or "")
    assert compute_status(search(), [], [], now=T1).phase == "Pending"


def test_only_the_searchs_own_job_and_that_jobs_pods_count() -> None:
    """Labels name a search, and an earlier search of the same name had them too."""
    theirs = ObservedJob("s-9-g1", 1, 0, 2, 0, (), T0, None, uid="old", owner_uid="old-uid")
    ours = job(active=1)
    pods = [
        ObservedPod("old-0", 1, 0, "Succeeded", Terminated(0, "", summary(0, 99.0), T0, T1), "old"),
        ObservedPod("orphan-0", 1, 0, "Succeeded", Terminated(0, "", summary(0, 98.0), T0, T1)),
        pod(0, "Running"),
    ]
    status = compute_status(search(), [theirs, ours], pods, now=T1)
    assert (status.phase, status.job_name, status.results) == ("Running", ours.name, [])
    assert status.trials.model_dump() == {"total": 1, "active": 1, "succeeded": 0, "failed": 0}
    alone = compute_status(search(), [theirs], pods, now=T1)
    assert (alone.phase, alone.job_name) == ("Pending", child_name("s", "u", 1))
    assert alone.results == []


@pytest.mark.parametrize(
    ("reason", "phase"),
    [("NameTaken", "Pending"), ("Forbidden", "Pending"), ("PolicyDenied", "Failed")],
)
def test_a_refusal_is_in_the_created_condition(reason: str, phase: str) -> None:
    status = compute_status(search(), [], [], now=T1, refusal=Refusal(reason, "because"))
    created = next(c for c in status.conditions if c.type == "Created")
    assert (status.phase, created.status, created.reason, status.message) == (
        phase,
        "False",
        reason,
        "because",
    )


def test_a_final_refusal_outlives_the_operators_memory() -> None:
    """After a restart the refusal is known only from the status it wrote."""
    refused = compute_status(search(), [], [], now=T0, refusal=Refusal("PolicyDenied", "no"))
    again = compute_status(search(status=refused.to_patch_dict()), [], [], now=T1)
    assert again == refused
    waiting = compute_status(search(), [], [], now=T0, refusal=Refusal("Forbidden", "403"))
    assert compute_status(search(status=waiting.to_patch_dict()), [], [], now=T1).message == (
        f"creating Job {child_name('s', 'u', 1)} for 1 trial(s)"
    )


def test_transition_times_change_only_with_the_condition_status() -> None:
    first = compute_status(search(), [job(active=1)], [], now=T0)
    again = compute_status(search(status=first.to_patch_dict()), [job(active=1)], [], now=T1)
    assert again.conditions == first.conditions
    done = compute_status(
        search(status=again.to_patch_dict()),
        [job(succeeded=1, condition=("Complete", ""))],
        [],
        now=T1,
    )
    running = next(c for c in done.conditions if c.type == "Running")
    assert (running.status, running.last_transition_time) == ("False", T1)


def test_new_generation_starts_over() -> None:
    old = compute_status(
        search(),
        [job(succeeded=1, condition=("Complete", ""))],
        [pod(0, "Succeeded", summary(0, 45.0))],
        now=T0,
    )
    new = compute_status(
        search(generation=2, status=old.to_patch_dict()),
        [job(succeeded=1, condition=("Complete", ""))],
        [pod(0, "Succeeded", summary(0, 45.0))],
        now=T1,
    )
    assert (new.phase, new.observed_generation) == ("Pending", 2)
    assert new.job_name == child_name("s", "u", 2)
    assert new.results == []
    assert new.best_metric is None
    patch = new.to_patch_dict()
    assert patch["bestMetric"] is None
    assert patch["completionTime"] is None


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_trial_counters_count_each_trial_once() -> None:
    metrics = OperatorMetrics()

    def status(gen: int, active: int, succeeded: int, failed: int) -> TransferSearchStatus:
        return TransferSearchStatus.model_validate(
            {
                "observedGeneration": gen,
                "trials": {"total": 3, "active": active, "succeeded": succeeded, "failed": failed},
            }
        )

    steps = [
        None,
        status(1, 2, 0, 0),
        status(1, 1, 1, 1),
        status(1, 1, 1, 1),
        status(1, 0, 3, 1),
        status(2, 1, 0, 0),
    ]
    for before, after in itertools.pairwise(steps):
        assert after is not None
        metrics.count_trials(before, after)
    assert sample(metrics, "transfersearch_operator_trials_started_total") == 5
    assert sample(metrics, "transfersearch_operator_trials_succeeded_total") == 3
    assert sample(metrics, "transfersearch_operator_trials_failed_total") == 1


def test_evaluation_and_device_counters_advance_by_what_finished_trials_report() -> None:
    metrics = OperatorMetrics()

    def status(gen: int, evaluations: int, seconds: float) -> TransferSearchStatus:
        return TransferSearchStatus.model_validate(
            {"observedGeneration": gen, "evaluationsDone": evaluations, "deviceSeconds": seconds}
        )

    steps = [None, status(1, 50, 2.0), status(1, 50, 2.0), status(1, 150, 6.0), status(2, 50, 1.0)]
    for before, after in itertools.pairwise(steps):
        assert after is not None
        metrics.count_trials(before, after)
    assert sample(metrics, "transfersearch_operator_search_evaluations_total") == 200
    assert sample(metrics, "transfersearch_operator_search_device_seconds_total") == 7.0


def test_searches_by_phase_gauge() -> None:
    metrics = OperatorMetrics()
    metrics.set_phase("a", "Running")
    metrics.set_phase("b", "Running")
    metrics.set_phase("a", "Succeeded")
    metrics.forget("b")
    gauge = "transfersearch_operator_searches"
    assert sample(metrics, gauge, phase="Succeeded") == 1
    assert sample(metrics, gauge, phase="Running") == 0
    assert (
        sample(
            metrics,
            "transfersearch_operator_build_info",
            version="0.1.0",
            python_version=__import__("platform").python_version(),
        )
        == 1
    )


def test_status_never_shows_credentials_from_urls() -> None:
    secret = "wJalrXUtnFEMI"
    url = f"http://AKIA:{secret}@minio:9000"
    invalid = compute_status(search(s3={"bucket": "bkt", "endpoint": url}), [], [], now=T1)
    assert invalid.phase == "Failed"
    assert "spec.s3.endpoint: a URL must not hold a user name or password" in (
        invalid.message or ""
    )
    pods = [
        pod(0, "Failed", f"Traceback ...\nbotocore: Could not connect to {url}/b", exit_code=1),
        pod(1, "Failed", summary(1, 0.0, status="Failed", reason=f"S3 {url} refused"), 2),
    ]
    status = compute_status(search(training={"seeds": 2}), [job(failed=2)], pods, now=T1)
    rejected = compute_status(
        search(), [], [], now=T1, refusal=Refusal("JobRejected", f"env value {url} too long")
    )
    for text in (invalid.model_dump_json(), status.model_dump_json(), rejected.model_dump_json()):
        assert secret not in text
    assert "http://***@minio:9000" in status.model_dump_json()
