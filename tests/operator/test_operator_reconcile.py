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

import kmock
import pytest
import pytest_asyncio

from tests.fakes.emulator import (
    CONFIGMAPS,
    JOBS,
    NS,
    SEARCHES,
    SECRETS,
    Api,
    ClusterEmulator,
    JobController,
    Trial,
    credentials_secret,
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
from transfersearch_operator.policy import AdmissionPolicy
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


def child(k8s: ClusterEmulator, search: str, generation: int = 1) -> str:
    """The name of a live search's children for a generation (its uid is in it)."""
    body = k8s.get(SEARCHES, NS, search)
    assert body is not None, f"{search} is gone"
    return children.child_name(search, body["metadata"]["uid"], generation)


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
    await api.create(SECRETS, credentials_secret("transfersearch-s3"))
    policy = AdmissionPolicy(priority_classes=("research-high",))
    async with operator(str(k8s.url), config=OperatorConfig(retry_delay=0.2, policy=policy)):
        created = await api.create(SEARCHES, body)
        name = child(k8s, "segmentsemantic-gpu")
        job = await wait_for("the Job", lambda: k8s.get(JOBS, NS, name))
        # created together with the Job (not after it), so it may land a moment later
        config_map = await wait_for("the ConfigMap", lambda: k8s.get(CONFIGMAPS, NS, name))
        status = await wait_for("Created=True", lambda: created_true(k8s, "segmentsemantic-gpu"))

    spec = TransferSearchSpec.model_validate(body["spec"])
    ref = SearchRef("segmentsemantic-gpu", NS, created["metadata"]["uid"], 1)
    assert job["spec"] == children.job(ref, spec, DEFAULT_IMAGE)["spec"]
    assert config_map is not None
    assert JobConfig.model_validate_json(config_map["data"]["job.json"]).spec == spec
    for obj in (job, config_map):
        (owner,) = obj["metadata"]["ownerReferences"]
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
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, child(k8s, "s")))
        kubelet = JobController(api, NS, child(k8s, "s"))
        pods = [await kubelet.start(i) for i in range(3)]
        await phase(
            k8s, "s", "Running", trials={"total": 3, "active": 3, "succeeded": 0, "failed": 0}
        )
        for i, (metric, rank) in enumerate([(44.5, 40), (46.25, 3), (45.0, 17)]):
            search = {"protocol": "search", "rank": rank, "hit": False, "budget": 50}
            done = {"evaluations": 50, "targetEvaluations": 50, "deviceSeconds": 3.0}
            await kubelet.finish(pods[i], Trial.summary(i, metric, **search, **done))
        status = await phase(k8s, "s", "Succeeded")
        metrics = op.metrics

    assert [r["trial"] for r in status["results"]] == [0, 1, 2]
    assert status["results"][1] == {
        "trial": 1,
        "seed": 1,
        "status": "Succeeded",
        "bestArch": "64-41414-1_00_000",
        "bestMetric": 46.25,
        "protocol": "search",
        "rank": 3,
        "hit": False,
        "evaluations": 50,
        "budget": 50,
        "deviceSeconds": 3.0,
        "gpuSeconds": 30.0,
        "targetEvaluations": 50,
        "agentUri": "s3://agents/trial-1",
        "agentDigest": "sha256:" + "1" * 64,
    }
    assert (status["bestTrial"], status["bestMetric"], status["bestRank"]) == (1, 46.25, 3)
    # evaluations spent of the search's budget (evaluation.budget 50 x 3 seeds)
    assert (status["evaluations"], status["evaluationsDone"]) == ("150/150", 150)
    assert status["evaluationBudget"] == 150
    assert status["deviceSeconds"] == 9.0
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
    assert sample(metrics, "transfersearch_operator_search_evaluations_total") == 150
    assert sample(metrics, "transfersearch_operator_searches", phase="Succeeded") == 1


async def test_failure_budget(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)) as op:
        await api.create(SEARCHES, manifest("s", failureBudget=1))
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, child(k8s, "s")))
        assert k8s.get(JOBS, NS, child(k8s, "s"))["spec"]["backoffLimit"] == 1  # type: ignore[index]
        kubelet = JobController(api, NS, child(k8s, "s"))
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
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, child(k8s, "s")))
        await JobController(api, NS, child(k8s, "s")).run(
            0, Trial(exit_code=2, message="error: bad agent")
        )
        status = await phase(k8s, "s", "Failed")
    assert condition(status, "Failed")["reason"] == "TrialError"
    assert "bad agent" in status["message"]


async def half_done(k8s: ClusterEmulator, api: Api) -> tuple[JobController, dict[str, Any]]:
    """A running search of two trials: trial 0 succeeded, trial 1's pod running."""
    await api.create(SEARCHES, manifest("s", training={"seeds": 2, "parallelism": 2}))
    await wait_for("the Job", lambda: k8s.get(JOBS, NS, child(k8s, "s")))
    kubelet = JobController(api, NS, child(k8s, "s"))
    await kubelet.run(0, Trial.summary(0, 45.0))
    running = await kubelet.start(1)
    await phase(k8s, "s", "Running", trials={"total": 2, "active": 1, "succeeded": 1, "failed": 0})
    return kubelet, running


async def test_operator_restart_resumes_without_duplicates(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)):
        kubelet, second = await half_done(k8s, api)
    # The operator is down; the trial goes on and ends meanwhile.
    await kubelet.finish(second, Trial.summary(1, 47.0))
    job_versions = len(stored(k8s, "jobs", child(k8s, "s")).history)

    async with operator(str(k8s.url)) as restarted:
        status = await phase(k8s, "s", "Succeeded")
        await asyncio.sleep(0.3)  # room for a (wrong) second creation to show up
        metrics = restarted.metrics

    assert list(k8s.live(JOBS, NS)) == [child(k8s, "s")]
    assert list(k8s.live(CONFIGMAPS, NS)) == [child(k8s, "s")]
    assert (
        len(stored(k8s, "jobs", child(k8s, "s")).history) == job_versions
    )  # not re-created nor rewritten
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
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, child(k8s, "s", 2)))
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
    assert (status["phase"], status["observedGeneration"]) == ("Pending", 2)
    assert "Failed" not in {c["type"] for c in status["conditions"]}


async def test_spec_change_restarts_with_a_new_job(k8s: ClusterEmulator, api: Api) -> None:
    async with operator(str(k8s.url)):
        old, running = await half_done(k8s, api)

        # A label change is not a spec change: nothing restarts.
        await api.patch(SEARCHES, NS, "s", {"metadata": {"labels": {"team": "nas"}}})
        await api.patch(SEARCHES, NS, "s", {"spec": {"training": {"steps": 100}}})
        await wait_for("the new Job", lambda: k8s.get(JOBS, NS, child(k8s, "s", 2)))
        await wait_for("the old Job gone", lambda: k8s.get(JOBS, NS, child(k8s, "s")) is None)
        status = await phase(k8s, "s", "Pending", observedGeneration=2)
        # A late pod of the old generation changes nothing.
        await old.finish(running, Trial.summary(1, 99.0))
        await asyncio.sleep(0.2)
        assert status_of(k8s, "s")["phase"] == "Pending"

    assert list(k8s.live(JOBS, NS)) == [child(k8s, "s", 2)]
    assert list(k8s.live(CONFIGMAPS, NS)) == [child(k8s, "s", 2)]
    config = JobConfig.model_validate_json(
        k8s.get(CONFIGMAPS, NS, child(k8s, "s", 2))["data"]["job.json"]
    )  # type: ignore[index]
    assert config.spec.training.steps == 100
    assert status["results"] == []
    assert "bestMetric" not in status
    assert status["trials"]["succeeded"] == 0
    events = [e for e in k8s.live("v1/events", NS).values() if e.get("reason") == "Restarted"]
    assert events
    assert f"Job {child(k8s, 's')} (generation 1) deleted" in events[0]["message"]


async def test_delete_needs_no_operator_and_leaves_owned_children(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)) as op:
        created = await api.create(SEARCHES, manifest("s"))
        name = child(k8s, "s")
        await wait_for("the Job", lambda: k8s.get(JOBS, NS, name))
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
    for obj in (k8s.get(JOBS, NS, name), k8s.get(CONFIGMAPS, NS, name)):
        assert obj is not None
        assert obj["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert list(k8s.live(JOBS, NS)) == [name]  # nothing recreated after the deletion


async def test_an_invalid_spec_change_stops_the_running_generation(
    k8s: ClusterEmulator, api: Api
) -> None:
    async with operator(str(k8s.url)):
        await half_done(k8s, api)
        await api.patch(SEARCHES, NS, "s", {"spec": {"training": {"seeds": 1}}})  # < parallelism
        status = await phase(k8s, "s", "Failed", observedGeneration=2)
        await wait_for("the old Job gone", lambda: k8s.get(JOBS, NS, child(k8s, "s")) is None)
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
    await api.create(SECRETS, credentials_secret("transfersearch-s3"))  # own's
    policy = AdmissionPolicy(s3_endpoints=("http://minio.transfersearch.svc:9000",))
    config = OperatorConfig(retry_delay=0.2, default_s3=default, policy=policy)
    async with operator(str(k8s.url), config=config):
        for body in (own, plain):
            body["metadata"]["namespace"] = NS
            await api.create(SEARCHES, body)
        for body in (own, plain):
            name = child(k8s, body["metadata"]["name"])
            await wait_for(f"Job {name}", lambda n=name: k8s.get(JOBS, NS, n))  # type: ignore[misc]

    def trial_config(body: dict[str, Any]) -> tuple[JobConfig, dict[str, Any]]:
        name = child(k8s, body["metadata"]["name"])
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
        job = await wait_for(
            "the Job after retries", lambda: k8s.get(JOBS, NS, child(k8s, "s")), timeout=10
        )
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
    assert job is not None
    assert len(list(failing)) == 1  # the failure was served, then the emulator created it
    assert (status["phase"], status["observedGeneration"]) == ("Pending", 1)
    assert len(k8s.live(JOBS, NS)) == 1


def owned_by(k8s: ClusterEmulator, resource: str, uid: str) -> dict[str, Any] | None:
    """The live object whose controller is the object with this uid."""
    return next(
        (
            obj
            for obj in k8s.live(resource, NS).values()
            if any(
                r.get("uid") == uid and r.get("controller")
                for r in obj["metadata"].get("ownerReferences") or []
            )
        ),
        None,
    )


@pytest.mark.parametrize("orphaned", [False, True], ids=["not-yet-collected", "orphaned"])
async def test_a_search_created_again_under_its_name_gets_nothing_of_the_old_one(
    k8s: ClusterEmulator, api: Api, orphaned: bool
) -> None:
    """The old search's Job outlives it: the garbage collector has not got to it yet
    (the emulator has none), or `kubectl delete --cascade=orphan` took its owner
    reference away. The new search runs its own Job; the old Job, its results and
    its late pods never reach it."""
    async with operator(str(k8s.url)) as op:
        old = await api.create(SEARCHES, manifest("s", training={"seeds": 2, "parallelism": 2}))
        old_job = await wait_for("the old Job", lambda: owned_by(k8s, JOBS, old["metadata"]["uid"]))
        old_kubelet = JobController(api, NS, old_job["metadata"]["name"])
        old_map = await wait_for(
            "the old ConfigMap", lambda: owned_by(k8s, CONFIGMAPS, old["metadata"]["uid"])
        )
        await old_kubelet.run(0, Trial.summary(0, 45.0))
        late = await old_kubelet.start(1)
        await phase(
            k8s, "s", "Running", trials={"total": 2, "active": 1, "succeeded": 1, "failed": 0}
        )
        await api.delete(SEARCHES, NS, "s")
        if orphaned:  # what the garbage collector does to the children of an orphaning delete
            for resource in (JOBS, CONFIGMAPS):
                for name in k8s.live(resource, NS):
                    await api.patch(resource, NS, name, {"metadata": {"ownerReferences": None}})

        new = await api.create(SEARCHES, manifest("s", training={"seeds": 1}))
        uid = new["metadata"]["uid"]
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
        assert (status["phase"], status["trials"], status["results"]) == (
            "Pending",
            {"total": 1, "active": 0, "succeeded": 0, "failed": 0},
            [],
        )
        job = await wait_for("the new search's own Job", lambda: owned_by(k8s, JOBS, uid))
        assert status["jobName"] == job["metadata"]["name"] != old_job["metadata"]["name"]
        config_map = owned_by(k8s, CONFIGMAPS, uid)
        assert config_map is not None
        assert status["configMapName"] == config_map["metadata"]["name"]
        config = JobConfig.model_validate_json(config_map["data"]["job.json"])
        old_config = JobConfig.model_validate_json(old_map["data"]["job.json"])
        assert config.uid == uid
        assert config.output != old_config.output  # no resuming the old one's checkpoints
        mounted = job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        assert mounted == config_map["metadata"]["name"]

        # The old Job's last pod ends now, with a better metric: not this search's news.
        await old_kubelet.finish(late, Trial.summary(1, 99.0))
        await asyncio.sleep(0.3)
        assert status_of(k8s, "s")["trials"]["succeeded"] == 0
        await JobController(api, NS, job["metadata"]["name"]).run(0, Trial.summary(0, 44.0))
        status = await phase(k8s, "s", "Succeeded")
        metrics = op.metrics

    assert [(r["trial"], r["bestMetric"]) for r in status["results"]] == [(0, 44.0)]
    assert (status["bestMetric"], status["trials"]["succeeded"]) == (44.0, 1)
    # The old Job is not the new search's to delete: the garbage collector's, or the user's.
    assert k8s.get(JOBS, NS, old_job["metadata"]["name"]) is not None
    assert sample(metrics, "transfersearch_operator_searches", phase="Succeeded") == 1


@pytest.mark.parametrize("kind", ["Job", "ConfigMap"])
async def test_a_child_name_taken_by_an_object_not_the_searchs_is_never_adopted(
    k8s: ClusterEmulator, api: Api, kind: str
) -> None:
    """An object under the name the search's own would have (made by hand, or a uid that
    starts alike) is left alone, and no pod runs beside it; the status says why nothing
    runs, until it goes."""
    created = await api.create(SEARCHES, manifest("s"))
    name = children.child_name("s", created["metadata"]["uid"], 1)
    stranger = SearchRef("s", NS, "another-uid", 1)
    spec = TransferSearchSpec.model_validate(manifest("s")["spec"])
    resource = {"Job": JOBS, "ConfigMap": CONFIGMAPS}[kind]
    squatter = (
        children.job(stranger, spec, "someone-else:1")
        if kind == "Job"
        else children.config_map(stranger, spec)
    )
    squatter["metadata"]["name"] = name
    await api.create(resource, squatter)
    async with operator(str(k8s.url)) as op:
        await wait_for(
            "NameTaken", lambda: condition(status_of(k8s, "s"), "Created")["reason"] == "NameTaken"
        )
        await asyncio.sleep(0.5)  # a retry or two
        status = status_of(k8s, "s")
        assert status["phase"] == "Pending"
        created_ = condition(status, "Created")
        assert created_["status"] == "False"
        assert f"{kind} {name} already exists and is not this search's" in created_["message"]
        assert f"kubectl delete {kind.lower()} {name}" in created_["message"]
        assert status["trials"]["succeeded"] == 0
        obj = k8s.get(resource, NS, name)
        assert obj is not None
        assert "ownerReferences" not in obj["metadata"]  # not adopted
        assert obj == squatter | {"metadata": obj["metadata"]}  # nor changed
        if kind == "ConfigMap":  # no Job of the search would mount it
            assert k8s.live(JOBS, NS) == {}
        errors = "transfersearch_operator_reconcile_errors_total"
        assert sample(op.metrics, errors, handler="children") == 0

        await api.delete(resource, NS, name)
        uid = created["metadata"]["uid"]
        job = await wait_for("the search's own Job", lambda: owned_by(k8s, JOBS, uid))
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
        config_map = await wait_for("its ConfigMap", lambda: owned_by(k8s, CONFIGMAPS, uid))
    assert job["metadata"]["name"] == name == status["jobName"] == config_map["metadata"]["name"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == DEFAULT_IMAGE


# --- the admission policy ------------------------------------------------------------------

POLICY = AdmissionPolicy(
    images=("registry.example.com/ts/trainer:*",),
    s3_endpoints=("http://minio.storage:9000",),
    priority_classes=("research-high",),
)
DENIED = {
    "image": (
        {"image": "docker.io/attacker/miner:latest"},
        "spec.image 'docker.io/attacker/miner:latest' is not an allowed trainer image",
    ),
    "s3 endpoint": (
        {"s3": {"bucket": "bucket-b", "endpoint": "https://collector.example.net"}},
        "spec.s3.endpoint 'https://collector.example.net' is not an allowed S3 endpoint",
    ),
    "secret without the label": (
        {"s3": {"bucket": "bucket-b", "credentialsSecret": "prod-aws"}},
        "kubectl label secret prod-aws transfersearch.io/credentials=true",
    ),
    "priority class": (
        {"resources": {"priorityClassName": "system-cluster-critical"}},
        "spec.resources.priorityClassName 'system-cluster-critical' is not allowed",
    ),
    "toleration": (
        {"resources": {"tolerations": [{"operator": "Exists"}]}},
        "spec.resources.tolerations[0] has no key (it tolerates every taint)",
    ),
}


@pytest.mark.parametrize("case", DENIED, ids=list(DENIED))
async def test_a_search_outside_the_policy_fails_before_any_job(
    k8s: ClusterEmulator, api: Api, case: str
) -> None:
    spec, expected = DENIED[case]
    await api.create(SECRETS, credentials_secret("prod-aws", opted_in=False))
    async with operator(str(k8s.url), config=OperatorConfig(retry_delay=0.2, policy=POLICY)) as op:
        await api.create(SEARCHES, manifest("s", **spec))
        status = await phase(k8s, "s", "Failed")
        await asyncio.sleep(0.3)  # room for a (wrong) Job to show up
        metrics = op.metrics
    assert k8s.live(JOBS, NS) == {}
    assert k8s.live(CONFIGMAPS, NS) == {}
    failed = condition(status, "Failed")
    assert (failed["reason"], condition(status, "Created")["reason"]) == ("PolicyDenied",) * 2
    assert expected in failed["message"]
    assert status["message"].startswith("the admission policy refuses this search: spec.")
    events = [e for e in k8s.live("v1/events", NS).values() if e.get("reason") == "PolicyDenied"]
    assert [e["type"] for e in events] == ["Warning"], events
    rejected = "transfersearch_operator_specs_rejected_total"
    assert sample(metrics, rejected, reason="PolicyDenied") == 1
    for handler in ("children", "status"):
        assert (
            sample(metrics, "transfersearch_operator_reconcile_errors_total", handler=handler) == 0
        )


async def test_what_the_policy_allows_runs(k8s: ClusterEmulator, api: Api) -> None:
    await api.create(SECRETS, credentials_secret("team-s3"))
    allowed = {
        "image": "registry.example.com/ts/trainer:1.2.3",
        "s3": {
            "bucket": "bucket-b",
            "endpoint": "http://MinIO.storage:9000/",
            "credentialsSecret": "team-s3",
        },
        "resources": {
            "gpu": 1,
            "priorityClassName": "research-high",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        },
    }
    async with operator(str(k8s.url), config=OperatorConfig(retry_delay=0.2, policy=POLICY)):
        await api.create(SEARCHES, manifest("s", **allowed))
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
    (job,) = k8s.live(JOBS, NS).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == allowed["image"]
    assert status["phase"] == "Pending"


async def test_a_credentials_secret_not_there_yet_is_waited_for(
    k8s: ClusterEmulator, api: Api
) -> None:
    """Manifests applied together arrive in any order: the search waits for its Secret."""
    async with operator(str(k8s.url)) as op:
        await api.create(
            SEARCHES, manifest("s", s3={"bucket": "bucket-b", "credentialsSecret": "team"})
        )
        status = await wait_for(
            "SecretNotFound",
            lambda: condition(status_of(k8s, "s"), "Created")["reason"] == "SecretNotFound",
        )
        status = status_of(k8s, "s")
        assert status["phase"] == "Pending"
        assert "spec.s3.credentialsSecret 'team': no such Secret" in status["message"]
        assert k8s.live(JOBS, NS) == {}
        await api.create(SECRETS, credentials_secret("team"))
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"))
        metrics = op.metrics
    assert len(k8s.live(JOBS, NS)) == 1
    assert (
        sample(metrics, "transfersearch_operator_reconcile_errors_total", handler="children") == 0
    )


async def test_a_refused_search_stays_failed_after_a_restart(
    k8s: ClusterEmulator, api: Api
) -> None:
    """The operator keeps refusals in memory; the status it wrote is what survives it."""
    config = OperatorConfig(retry_delay=0.2, policy=POLICY)
    async with operator(str(k8s.url), config=config):
        await api.create(SEARCHES, manifest("s", image="elsewhere/trainer:1"))
        refused = await phase(k8s, "s", "Failed")
    async with operator(str(k8s.url), config=config) as restarted:
        await asyncio.sleep(0.5)
        assert status_of(k8s, "s") == refused
        metrics = restarted.metrics
    assert k8s.live(JOBS, NS) == {}
    assert (
        sample(metrics, "transfersearch_operator_specs_rejected_total", reason="PolicyDenied") == 0
    )


# --- users' mistakes are not the operator's errors -------------------------------------------


async def test_rejected_specs_are_counted_apart_from_reconcile_errors(
    k8s: ClusterEmulator, api: Api
) -> None:
    """An invalid spec is the user's to fix: it must not feed the alert that pages on-call."""
    async with operator(str(k8s.url)) as op:
        for name in ("a", "b"):
            await api.create(SEARCHES, manifest(name, training={"seeds": 1, "parallelism": 2}))
            await phase(k8s, name, "Failed")
        await asyncio.sleep(0.5)  # the Failed statuses' own watch events are handled
        metrics = op.metrics
    for handler in ("children", "status"):
        assert (
            sample(metrics, "transfersearch_operator_reconcile_errors_total", handler=handler) == 0
        )
    rejected = "transfersearch_operator_specs_rejected_total"
    assert sample(metrics, rejected, reason="InvalidSpec") == 2
    assert sample(metrics, rejected, reason="PolicyDenied") == 0


async def test_a_forbidden_job_creation_is_in_the_status_and_retried(
    k8s: ClusterEmulator, api: Api
) -> None:
    """RBAC refuses the Job (HTTP 403): the status says so, not only the log, until it works."""
    k8s.forbidden.add((kmock.action.CREATE, "jobs"))
    async with operator(str(k8s.url)) as op:
        await api.create(SEARCHES, manifest("s"))
        await wait_for(
            "Forbidden", lambda: condition(status_of(k8s, "s"), "Created")["reason"] == "Forbidden"
        )
        await asyncio.sleep(0.5)  # a retry or two, refused the same
        status = status_of(k8s, "s")
        created = condition(status, "Created")
        assert (status["phase"], created["status"]) == ("Pending", "False")
        assert 'cannot create resource "jobs" in API group "batch"' in created["message"]
        assert "trying again every 0.2 s" in created["message"]
        assert status["message"] == created["message"]
        assert k8s.live(JOBS, NS) == {}
        # The operator's own setup is at fault: that is what the alert is for.
        errors = "transfersearch_operator_reconcile_errors_total"
        assert sample(op.metrics, errors, handler="children") >= 2

        k8s.forbidden.clear()  # the admin grants the rules
        status = await wait_for("Created=True", lambda: created_true(k8s, "s"), timeout=10)
    assert len(k8s.live(JOBS, NS)) == 1
    assert "Failed" not in {c["type"] for c in status["conditions"]}


async def test_a_forbidden_secret_lookup_is_in_the_status(k8s: ClusterEmulator, api: Api) -> None:
    """Without `get` on Secrets (RBAC of one's own) the policy cannot see the opt-in label."""
    k8s.forbidden.add((kmock.action.FETCH, "secrets"))
    await api.create(SECRETS, credentials_secret("team"))
    async with operator(str(k8s.url)):
        await api.create(
            SEARCHES, manifest("s", s3={"bucket": "bucket-b", "credentialsSecret": "team"})
        )
        await wait_for(
            "Forbidden", lambda: condition(status_of(k8s, "s"), "Created")["reason"] == "Forbidden"
        )
        message = status_of(k8s, "s")["message"]
        assert "does not let the operator read Secret team's labels" in message
        assert 'cannot get resource "secrets"' in message
        k8s.forbidden.clear()
        await wait_for("Created=True", lambda: created_true(k8s, "s"), timeout=10)
