"""The real operator (kopf, real handlers) against an emulated Kubernetes API.

Each test starts the operator in its own event loop on a fresh emulator and
plays the Job controller and kubelet by writing pods and Job status through
the API. Assertions are on the final state of the cluster, never on timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.fakes.emulator import (
    CONFIGMAPS,
    JOBS,
    NS,
    SEARCHES,
    Api,
    ClusterEmulator,
    JobController,
    Trial,
    declare_resources,
    example,
    manifest,
    operator,
    wait_for,
)
from transfersearch_operator import children
from transfersearch_operator.children import SearchRef
from transfersearch_operator.config import DEFAULT_IMAGE, OperatorConfig
from transfersearch_operator.metrics import OperatorMetrics
from transfersearch_trainer.api.jobconfig import JobConfig
from transfersearch_trainer.api.spec import S3Settings, TransferSearchSpec

pytestmark = [pytest.mark.asyncio, pytest.mark.kmock(cls=ClusterEmulator)]


@pytest.fixture
def k8s(kmock: ClusterEmulator) -> ClusterEmulator:
    declare_resources(kmock)
    return kmock


@pytest_asyncio.fixture
async def api(k8s: ClusterEmulator) -> AsyncIterator[Api]:
    client = Api(str(k8s.url))
    yield client
    await client.close()


def status_of(k8s: ClusterEmulator, name: str) -> dict[str, Any]:
    search = k8s.get(SEARCHES, NS, name)
    assert search is not None, f"{name} is gone"
    return dict(search.get("status") or {})


async def phase(k8s: ClusterEmulator, name: str, wanted: str, **fields: Any) -> dict[str, Any]:
    """Wait until the search is in `wanted` phase (and fields match), return its status."""

    def check() -> dict[str, Any] | None:
        status = status_of(k8s, name)
        if status.get("phase") != wanted:
            return None
        return status if all(status.get(k) == v for k, v in fields.items()) else None

    result: dict[str, Any] = await wait_for(f"{name} {wanted} {fields}", check)
    return result


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def stored(k8s: ClusterEmulator, plural: str, name: str) -> Any:
    """The emulator's record of an object, with its history of versions."""
    return next(o for (r, _, n), o in k8s.objects.items() if n == name and r.plural == plural)


def created_true(k8s: ClusterEmulator, name: str) -> dict[str, Any] | None:
    """The status once the search's current Job is seen (None before)."""
    status = status_of(k8s, name)
    created = [c for c in status.get("conditions", []) if c["type"] == "Created"]
    return status if created and created[0]["status"] == "True" else None


async def test_create_makes_the_config_map_and_the_indexed_job(
    k8s: ClusterEmulator, api: Api
) -> None:
    body = example("gpu.yaml")
    body["metadata"]["namespace"] = NS
    async with operator(str(k8s.url)):
        created = await api.create(SEARCHES, body)
        job = await wait_for("the Job", lambda: k8s.get(JOBS, NS, "segmentsemantic-gpu-g1"))
        config_map = k8s.get(CONFIGMAPS, NS, "segmentsemantic-gpu-g1")
        status = await wait_for("Created=True", lambda: created_true(k8s, "segmentsemantic-gpu"))

    spec = TransferSearchSpec.model_validate(body["spec"])
    ref = SearchRef("segmentsemantic-gpu", NS, created["metadata"]["uid"], 1)
    assert job["spec"] == children.job(ref, spec, DEFAULT_IMAGE)["spec"]
    assert config_map is not None
    assert JobConfig.model_validate_json(config_map["data"]["job.json"]).spec == spec
    for child in (job, config_map):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "transfersearch.io/v1alpha1",
            "kind": "TransferSearch",
            "name": "segmentsemantic-gpu",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    search = k8s.get(SEARCHES, NS, "segmentsemantic-gpu")
    assert search is not None
    assert not search["metadata"].get("finalizers")  # deletion never waits for the operator
    assert not search["metadata"].get("annotations")  # handled = status.observedGeneration
    assert status["observedGeneration"] == 1
    assert status["trials"] == {"total": 4, "active": 0, "succeeded": 0, "failed": 0}
    assert condition(status, "Created")["status"] == "True"
    assert (
        status["source"]
        == "s3://transfersearch/models/agents/macro/class_object/26aca0a7744aa4a27d2b1064f30e3808bd2c2a9d9d90d904c6a50d296dbe9322"
    )
    assert "kopf" not in status  # kopf's bookkeeping stays in annotations


async def test_trials_succeed_and_the_status_aggregates_them(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)) as op:
        await api.create(
            SEARCHES, manifest("s", training={"seeds": 3, "parallelism": 3}, resources={"gpu": 1})
        )
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g1"))
        kubelet = JobController(api, NS, "s-g1")
        pods = [await kubelet.start(i) for i in range(3)]
        await phase(
            k8s, "s", "Running", trials={"total": 3, "active": 3, "succeeded": 0, "failed": 0}
        )
        for i, metric in enumerate([44.5, 46.25, 45.0]):
            await kubelet.finish(pods[i], Trial.summary(i, metric))
        status = await phase(k8s, "s", "Succeeded")
        metrics = op.metrics

    assert [r["trial"] for r in status["results"]] == [0, 1, 2]
    assert status["results"][1] == {
        "trial": 1,
        "seed": 1,
        "status": "Succeeded",
        "bestArch": "64-41414-1_00_000",
        "bestMetric": 46.25,
        "gpuSeconds": 30.0,
        "targetEvaluations": 0,
        "agentUri": "s3://agents/trial-1",
        "agentDigest": "sha256:" + "1" * 64,
    }
    assert (status["bestTrial"], status["bestMetric"]) == (1, 46.25)
    assert (status["agentUri"], status["agentDigest"]) == (
        "s3://agents/trial-1",
        "sha256:" + "1" * 64,
    )
    assert status["gpuSeconds"] == 90.0
    assert status["completionTime"]
    assert status["startTime"]
    assert condition(status, "Succeeded")["status"] == "True"
    assert sample(metrics, "transfersearch_operator_trials_started_total") == 3
    assert sample(metrics, "transfersearch_operator_trials_succeeded_total") == 3
    assert sample(metrics, "transfersearch_operator_searches", phase="Succeeded") == 1


async def test_failure_budget(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)) as op:
        await api.create(SEARCHES, manifest("s", failureBudget=1))
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g1"))
        assert k8s.get(JOBS, NS, "s-g1")["spec"]["backoffLimit"] == 1  # type: ignore[index]
        kubelet = JobController(api, NS, "s-g1")
        await kubelet.run(0, Trial(exit_code=1, message="Killed\x00 not json {"))
        status = await phase(
            k8s, "s", "Running", trials={"total": 1, "active": 0, "succeeded": 0, "failed": 1}
        )
        assert status["results"][0]["reason"].startswith("exit code 1 (Error): Killed")
        await kubelet.run(
            0,
            Trial(
                exit_code=1,
                message=json.dumps(
                    {"trial": 0, "seed": 0, "status": "Failed", "reason": "S3 bucket not found"}
                ),
            ),
        )
        status = await phase(k8s, "s", "Failed")
        metrics = op.metrics

    failed = condition(status, "Failed")
    assert failed["reason"] == "FailureBudgetExhausted"
    assert "2 trial pod(s) failed, failure budget 1" in failed["message"]
    assert "S3 bucket not found" in failed["message"]
    assert sample(metrics, "transfersearch_operator_trials_failed_total") == 2
    assert sample(metrics, "transfersearch_operator_searches", phase="Failed") == 1


async def test_a_usage_error_fails_without_spending_the_budget(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)):
        await api.create(SEARCHES, manifest("s", failureBudget=5))
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g1"))
        await JobController(api, NS, "s-g1").run(0, Trial(exit_code=2, message="error: bad agent"))
        status = await phase(k8s, "s", "Failed")
    assert condition(status, "Failed")["reason"] == "TrialError"
    assert "bad agent" in status["message"]


async def half_done(k8s: ClusterEmulator, api: Api) -> tuple[JobController, dict[str, Any]]:
    """A running search of two trials: trial 0 succeeded, trial 1's pod running."""
    await api.create(SEARCHES, manifest("s", training={"seeds": 2, "parallelism": 2}))
    await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g1"))
    kubelet = JobController(api, NS, "s-g1")
    await kubelet.run(0, Trial.summary(0, 45.0))
    running = await kubelet.start(1)
    await phase(k8s, "s", "Running", trials={"total": 2, "active": 1, "succeeded": 1, "failed": 0})
    return kubelet, running


async def test_operator_restart_resumes_without_duplicates(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)):
        kubelet, second = await half_done(k8s, api)
    # The operator is down; the trial goes on and ends meanwhile.
    await kubelet.finish(second, Trial.summary(1, 47.0))
    job_versions = len(stored(k8s, "jobs", "s-g1").history)

    async with operator(str(k8s.url)) as restarted:
        status = await phase(k8s, "s", "Succeeded")
        await asyncio.sleep(0.3)  # room for a (wrong) second creation to show up
        metrics = restarted.metrics

    assert list(k8s.live(JOBS, NS)) == ["s-g1"]
    assert list(k8s.live(CONFIGMAPS, NS)) == ["s-g1"]
    assert len(stored(k8s, "jobs", "s-g1").history) == job_versions  # not re-created nor rewritten
    assert [r["bestMetric"] for r in status["results"]] == [45.0, 47.0]
    assert status["bestTrial"] == 1
    # The restarted operator counts only what happened after the status it found.
    assert sample(metrics, "transfersearch_operator_trials_succeeded_total") == 1


async def test_invalid_spec_fails_once_with_the_field_named(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)):
        # The emulator, like a cluster without CEL, lets this cross-field mistake through.
        await api.create(SEARCHES, manifest("s", training={"seeds": 1, "parallelism": 2}))
        status = await phase(k8s, "s", "Failed")
        await asyncio.sleep(0.3)  # the Failed status's own watch event is handled
        search_writes = len(stored(k8s, "transfersearches", "s").history)
        await asyncio.sleep(1.0)  # a retry storm would write again within this second
        assert len(stored(k8s, "transfersearches", "s").history) == search_writes
        assert k8s.live(JOBS, NS) == {}
        assert k8s.live(CONFIGMAPS, NS) == {}
        failed = condition(status, "Failed")
        assert failed["reason"] == "InvalidSpec"
        assert "training.parallelism cannot exceed training.seeds" in failed["message"]

        # Fixing the spec starts the search.
        await api.patch(SEARCHES, NS, "s", {"spec": {"training": {"parallelism": 1}}})
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g2"))
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
    assert (status["phase"], status["observedGeneration"]) == ("Pending", 2)
    assert "Failed" not in {c["type"] for c in status["conditions"]}


async def test_spec_change_restarts_with_a_new_job(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)):
        old, running = await half_done(k8s, api)

        # A label change is not a spec change: nothing restarts.
        await api.patch(SEARCHES, NS, "s", {"metadata": {"labels": {"team": "nas"}}})
        await api.patch(SEARCHES, NS, "s", {"spec": {"training": {"steps": 100}}})
        await wait_for("the new Job", lambda: k8s.get(JOBS, NS, "s-g2"))
        await wait_for("the old Job gone", lambda: k8s.get(JOBS, NS, "s-g1") is None)
        status = await phase(k8s, "s", "Pending", observedGeneration=2)
        # A late pod of the old generation changes nothing.
        await old.finish(running, Trial.summary(1, 99.0))
        await asyncio.sleep(0.2)
        assert status_of(k8s, "s")["phase"] == "Pending"

    assert list(k8s.live(JOBS, NS)) == ["s-g2"]
    assert list(k8s.live(CONFIGMAPS, NS)) == ["s-g2"]
    config = JobConfig.model_validate_json(k8s.get(CONFIGMAPS, NS, "s-g2")["data"]["job.json"])  # type: ignore[index]
    assert config.spec.training.steps == 100
    assert status["results"] == []
    assert "bestMetric" not in status
    assert status["trials"]["succeeded"] == 0
    events = [e for e in k8s.live("v1/events", NS).values() if e.get("reason") == "Restarted"]
    assert events
    assert "Job s-g1 (generation 1) deleted" in events[0]["message"]


async def test_delete_needs_no_operator_and_leaves_owned_children(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)) as op:
        created = await api.create(SEARCHES, manifest("s"))
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, "s-g1"))
        await wait_for("Created=True", lambda: created_true(k8s, "s"))
        await api.delete(SEARCHES, NS, "s")
        # No finalizer: the object is gone at once, and Kubernetes' garbage
        # collector deletes the children through their owner references.
        assert k8s.get(SEARCHES, NS, "s") is None
        await wait_for(
            "the search forgotten",
            lambda: sample(op.metrics, "transfersearch_operator_searches", phase="Pending") == 0,
        )
        await asyncio.sleep(0.3)
    for child in (k8s.get(JOBS, NS, "s-g1"), k8s.get(CONFIGMAPS, NS, "s-g1")):
        assert child is not None
        assert child["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert list(k8s.live(JOBS, NS)) == ["s-g1"]  # nothing recreated after the deletion


async def test_an_invalid_spec_change_stops_the_running_generation(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)):
        await half_done(k8s, api)
        await api.patch(SEARCHES, NS, "s", {"spec": {"training": {"seeds": 1}}})  # < parallelism
        status = await phase(k8s, "s", "Failed", observedGeneration=2)
        await wait_for("the old Job gone", lambda: k8s.get(JOBS, NS, "s-g1") is None)
    assert k8s.live(JOBS, NS) == {}
    assert condition(status, "Failed")["reason"] == "InvalidSpec"
    assert "training.parallelism cannot exceed training.seeds" in status["message"]


async def test_searches_without_s3_get_the_operators_default_store(
    k8s: ClusterEmulator, api: Api
) -> None:
    default = S3Settings(
        bucket="nas-models", endpoint="http://minio.storage:9000", credentials_secret="team-s3"
    )
    own, plain = example("finetune.yaml"), example("scratch.yaml")  # with and without `s3`
    config = OperatorConfig(retry_delay=0.2, default_s3=default)
    async with operator(str(k8s.url), config=config):
        for body in (own, plain):
            body["metadata"]["namespace"] = NS
            await api.create(SEARCHES, body)
        for body in (own, plain):
            name = f"{body['metadata']['name']}-g1"
            await wait_for(f"Job {name}", lambda n=name: k8s.get(JOBS, NS, n))  # type: ignore[misc]

    def trial_config(body: dict[str, Any]) -> tuple[JobConfig, dict[str, Any]]:
        name = f"{body['metadata']['name']}-g1"
        config_map, job = k8s.get(CONFIGMAPS, NS, name), k8s.get(JOBS, NS, name)
        assert config_map is not None
        assert job is not None
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        return JobConfig.model_validate_json(config_map["data"]["job.json"]), env

    job_config, env = trial_config(plain)
    assert job_config.spec.s3 == default
    assert job_config.output.startswith("s3://nas-models/transfersearch/")
    assert env["TRANSFERSEARCH_S3_ENDPOINT"]["value"] == "http://minio.storage:9000"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "team-s3"
    stored = k8s.get(SEARCHES, NS, plain["metadata"]["name"])
    assert stored is not None
    assert "s3" not in stored["spec"]  # the default is applied to the children, not the spec

    job_config, env = trial_config(own)  # a search's own s3 section wins
    assert job_config.spec.s3 == TransferSearchSpec.model_validate(own["spec"]).s3
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "transfersearch-s3"


async def test_a_failed_job_creation_is_retried(k8s: ClusterEmulator, api: Api) -> None:
    """The API server fails the Job POST (a 503): the operator tries again and makes it once."""
    failing = k8s[f"post /apis/batch/v1/namespaces/{NS}/jobs"][:1] << 503
    async with operator(str(k8s.url)):
        await api.create(SEARCHES, manifest("s"))
        job = await wait_for("the Job after retries", lambda: k8s.get(JOBS, NS, "s-g1"), timeout=10)
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
    assert job is not None
    assert len(list(failing)) == 1  # the failure was served, then the emulator created it
    assert (status["phase"], status["observedGeneration"]) == ("Pending", 1)
    assert len(k8s.live(JOBS, NS)) == 1
