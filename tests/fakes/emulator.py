"""A Kubernetes API for tests: kmock's emulator with the server behaviour kopf relies on.

kmock 0.8 stores objects and serves list/watch/patch, but (like any emulator)
leaves out parts of a real API server. This subclass adds the ones the
operator's correctness depends on, so tests exercise the real code paths:

- metadata a server owns: uid, creationTimestamp, resourceVersion (bumped on
  every write), generation (bumped when the spec changes);
- optimistic concurrency: a JSON-patch `test` op or a merge patch carrying a
  stale metadata.resourceVersion fails (422 / 409) instead of a 500;
- the status subresource: writes to /status change only the status, writes
  to the object ignore the status (for resources that have one);
- RBAC refusals: a request the test forbids is answered 403 with the server's
  message and changes nothing (a kmock reaction would answer 403 and still store
  the object, which no API server does).

There is no Job controller, kubelet or garbage collector: `JobController`
below plays the first two by writing pods and Job status through the API.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import itertools
import json
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
import jsonpatch
import kmock
import kopf
import yaml
from kmock._internal import dicts as kmock_dicts  # the emulator's own patch semantics

from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator.config import OperatorConfig
from transfersearch_operator.handlers import configure, register
from transfersearch_operator.kube import Kube, config_for
from transfersearch_operator.metrics import OperatorMetrics
from transfersearch_operator.reconcile import Reconciler
from transfersearch_trainer.api.spec import API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAME

ROOT = REPO_ROOT
SEARCHES = f"{API_GROUP}/{API_VERSION}/{PLURAL}"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
CONFIGMAPS = "v1/configmaps"
SECRETS = "v1/secrets"
NS = "searches"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The request this task is serving: kmock matches it against each reaction by looking
# for it in the request log, so that look-up sees only it (see ClusterEmulator.__iter__).
_SERVING: contextvars.ContextVar[Any] = contextvars.ContextVar("serving", default=None)


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _in_flight: set[int] = attrs.field(factory=set, init=False)
    forbidden: set[tuple[Any, str]] = attrs.field(factory=set, init=False)
    """(kmock action, plural) that the operator's service account may not do."""

    def __iter__(self) -> Iterator[Any]:
        """The request log, as kmock's views read it; while serving, only the request served.

        kmock finds whether a reaction applies by scanning the requests its filters
        pass for the one being served: O(requests in flight) per reaction and request,
        and with 100 searches posted at once that scan, not the operator, took most
        of the emulator's CPU. Each aiohttp request runs in its own task, so the
        context variable names the request of the task asking.
        """
        serving = _SERVING.get()
        if serving is None:
            yield from super().__iter__()  # a test asserting on requests
        else:
            yield serving

    async def _handle(self, request: Any) -> Any:
        # kmock keeps every request in its log; forgetting finished ones keeps memory flat.
        _SERVING.set(request)
        self._in_flight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._in_flight]
        try:
            if request.resource is not None:
                self._authorize(request)
            if request.resource is None or request.action not in (
                kmock.action.CREATE,
                kmock.action.UPDATE,
            ):
                return await super()._handle(request)
            # Writes are serialised so that check-then-write is atomic, as on a real server.
            async with self._write_lock:
                if request.action == kmock.action.CREATE:
                    self._stamp_new(request)
                else:
                    self._stamp_update(request)
                return await super()._handle(request)
        finally:
            self._in_flight.discard(id(request))

    def _authorize(self, request: Any) -> None:
        res = request.resource
        if (request.action, res.plural) not in self.forbidden:
            return
        verb = {kmock.action.FETCH: "get"}.get(request.action, request.action.value.lower())
        group = res.group or ""
        what = f"{res.plural}.{group}" if group else res.plural
        named = f' "{request.name}"' if request.name else ""
        raise kmock.KubernetesError(
            status=403,
            reason="Forbidden",
            message=(
                f'{what}{named} is forbidden: User "system:serviceaccount:transfersearch-system:'
                f'ts" cannot {verb} resource "{res.plural}" in API group "{group}" in the '
                f'namespace "{request.namespace}"'
            ),
        )

    def _stamp_new(self, request: Any) -> None:
        meta = request.data.setdefault("metadata", {})
        meta.setdefault("namespace", request.namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["resourceVersion"] = str(next(self._versions))
        meta["generation"] = 1

    def _stamp_update(self, request: Any) -> None:
        current = self._current(request)
        if current is None:
            return  # the emulator answers 404
        data = request.data
        status_only = request.subresource == "status"
        has_status = "status" in self._info(request.resource).subresources
        if isinstance(data, dict):
            wanted = (data.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current["metadata"].get("resourceVersion"):
                raise kmock.KubernetesError(
                    status=409, reason="Conflict", message="the object has been modified"
                )
            if status_only:
                for key in [k for k in data if k not in ("status", "metadata")]:
                    del data[key]
            elif has_status:
                data.pop("status", None)
        else:
            keep = [
                op
                for op in data
                if op.get("op") == "test"
                or not has_status
                or (op["path"].startswith("/status") == status_only)
            ]
            data[:] = keep
        try:
            after = kmock_dicts.patch_dict(copy.deepcopy(current), data)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(err)) from None
        stamp = {"resourceVersion": str(next(self._versions))}
        if after.get("spec") != current.get("spec"):
            stamp["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if isinstance(data, dict):
            data.setdefault("metadata", {}).update(stamp)
        else:
            data.extend(
                {"op": "add", "path": f"/metadata/{k}", "value": v} for k, v in stamp.items()
            )

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:  # noqa: N802
        """kmock scans every object for every request; a named request needs one lookup.

        Without this the emulator, not the operator, dominates the 100-search test
        (its cost per request grows with the number of objects stored).
        """
        if request.name is not None and (strict or request.namespace is not None):
            key = (request.resource, request.namespace, request.name)
            return [self.objects[key]] if key in self.objects else []
        objs = []
        for (res, ns, name), obj in self.objects.items():
            namespace_ok = ns == request.namespace if strict else request.namespace in (None, ns)
            if res == request.resource and namespace_ok and request.name in (None, name):
                objs.append(obj)
        return objs

    def _current(self, request: Any) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj.raw

    def _info(self, resource: Any) -> Any:
        for res in self.resources:
            if res == resource:
                return self.resources[res]
        return kmock.ResourceInfo()

    # Reading helpers for assertions (the latest version of live objects).
    def live(self, resource: str, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        wanted = kmock.resource(resource)
        return {
            name: obj.raw
            for (res, ns, name), obj in self.objects.items()
            if res == wanted and (namespace is None or ns == namespace) and not obj.deleted
        }

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw


def declare_resources(k8s: ClusterEmulator) -> None:
    """Built-in resources plus the TransferSearch CRD's, as discovery shows them."""
    with warnings.catch_warnings():  # kmock 0.8 reads its bundle with a deprecated call
        warnings.simplefilter("ignore", DeprecationWarning)
        k8s.resources.load_bundled()
    k8s.resources[SEARCHES] = kmock.ResourceInfo(
        kind=KIND,
        singular=KIND.lower(),
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete", "update"},
        shortnames={SHORT_NAME},
        subresources={"status"},
    )


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": NS},
        "spec": {"target": {"task": "jigsaw"}, "source": {"task": "class_scene"}, **spec},
    }


def credentials_secret(name: str, opted_in: bool = True) -> dict[str, Any]:
    """An S3 credentials Secret; opted in: labelled for use by searches (the policy's default)."""
    labels = {"transfersearch.io/credentials": "true"} if opted_in else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "data": {"AWS_ACCESS_KEY_ID": "a2V5", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"},
    }


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


class Api:
    """A small async client: tests write through HTTP, so the operator sees watch
    events exactly as it would on a cluster (the emulator may be in another process)."""

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(self.server)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    async def _check(response: aiohttp.ClientResponse) -> dict[str, Any]:
        body: dict[str, Any] = await response.json(content_type=None)
        assert response.status < 400, body
        return body

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"].get("namespace", NS)
        async with self.session.post(url(resource, ns), json=body) as response:
            return await self._check(response)

    async def get(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        async with self.session.get(url(resource, ns, name)) as response:
            return None if response.status == 404 else await self._check(response)

    async def list(self, resource: str, ns: str) -> list[dict[str, Any]]:
        async with self.session.get(url(resource, ns)) as response:
            items: list[dict[str, Any]] = (await self._check(response))["items"]
            return items

    async def patch(
        self, resource: str, ns: str, name: str, patch: dict[str, Any], status: bool = False
    ) -> dict[str, Any]:
        target = url(resource, ns, name) + ("/status" if status else "")
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(target, json=patch, headers=headers) as response:
            return await self._check(response)

    async def delete(self, resource: str, ns: str, name: str) -> None:
        async with self.session.delete(url(resource, ns, name)) as response:
            await self._check(response)


def url(resource: str, ns: str, name: str | None = None) -> str:
    res = kmock.resource(resource)
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    return f"{base}/namespaces/{ns}/{res.plural}" + (f"/{name}" if name else "")


@dataclass
class Trial:
    """What a trial pod ends with: its exit code and termination message."""

    exit_code: int = 0
    message: str = ""
    seconds: float = 60.0

    @classmethod
    def summary(cls, index: int, metric: float, **fields: Any) -> Trial:
        body = {
            "trial": index,
            "seed": index,
            "status": "Succeeded",
            "bestArch": f"64-41414-{index}_00_000",
            "bestMetric": metric,
            "gpuSeconds": 30.0,
            "agentUri": f"s3://agents/trial-{index}",
            "agentDigest": "sha256:" + f"{index:x}" * 64,
            **fields,
        }
        return cls(0, json.dumps(body)[:4096])


class JobController:
    """Plays the Job controller and the kubelet for one Job: pods, their ends, Job status."""

    def __init__(self, api: Api, ns: str, job_name: str) -> None:
        self.api = api
        self.ns = ns
        self.job_name = job_name
        self.pods: list[dict[str, Any]] = []
        self._counter = itertools.count()

    async def job(self) -> dict[str, Any]:
        job = await self.api.get(JOBS, self.ns, self.job_name)
        assert job is not None, f"Job {self.job_name} does not exist"
        return job

    async def start(self, index: int) -> dict[str, Any]:
        job = await self.job()
        template = job["spec"]["template"]
        name = f"{self.job_name}-{index}-{next(self._counter):05d}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.ns,
                "labels": {
                    **template["metadata"]["labels"],
                    "batch.kubernetes.io/job-completion-index": str(index),
                    "job-name": self.job_name,
                },
                "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": self.job_name,
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        created = await self.api.create(PODS, pod)
        await self.api.patch(PODS, self.ns, name, {"status": {"phase": "Running"}}, status=True)
        self.pods.append(created)
        await self._update_job()
        return created

    async def finish(self, pod: dict[str, Any], trial: Trial) -> None:
        name = pod["metadata"]["name"]
        started = datetime.now(UTC).timestamp() - trial.seconds
        terminated = {
            "exitCode": trial.exit_code,
            "reason": "Completed" if trial.exit_code == 0 else "Error",
            "message": trial.message,
            "startedAt": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finishedAt": now(),
        }
        status = {
            "phase": "Succeeded" if trial.exit_code == 0 else "Failed",
            "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}],
        }
        await self.api.patch(PODS, self.ns, name, {"status": status}, status=True)
        await self._update_job()

    async def run(self, index: int, trial: Trial) -> None:
        await self.finish(await self.start(index), trial)

    async def _update_job(self) -> None:
        job = await self.api.get(JOBS, self.ns, self.job_name)
        if job is None:
            return  # deleted: no controller updates it any more
        pods = [await self.api.get(PODS, self.ns, p["metadata"]["name"]) for p in self.pods]
        phases = [(p or {}).get("status", {}).get("phase") for p in pods]
        exit_codes = [
            cs["state"]["terminated"]["exitCode"]
            for p in pods
            for cs in (p or {}).get("status", {}).get("containerStatuses", [])
        ]
        done = {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            for p, phase in zip(pods, phases, strict=True)
            if p and phase == "Succeeded"
        }
        failed = phases.count("Failed")
        status: dict[str, Any] = {
            "active": phases.count("Running") + phases.count("Pending"),
            "succeeded": len(done),
            "failed": failed,
            "startTime": job.get("status", {}).get("startTime") or now(),
        }
        spec = job["spec"]
        condition = None
        if 2 in exit_codes:
            condition = ("Failed", "PodFailurePolicy", "a container exited with code 2")
        elif failed > spec["backoffLimit"]:
            condition = ("Failed", "BackoffLimitExceeded", "Job has reached the backoff limit")
        elif len(done) >= spec["completions"]:
            condition = ("Complete", "CompletionsReached", "Reached expected completions")
            status["completionTime"] = now()
        if condition:
            kind, reason, message = condition
            status["conditions"] = [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": now(),
                }
            ]
            status["active"] = 0
        await self.api.patch(JOBS, self.ns, self.job_name, {"status": status}, status=True)


async def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02
) -> Any:
    """Poll until `check()` (or what it returns, if awaitable) is truthy; fail with
    the last value seen. A deadline to fail by, not a timing assertion."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = check()
            if inspect.isawaitable(last):
                last = await last
        except (KeyError, TypeError, IndexError) as err:
            last = err
        else:
            if last:
                return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


@dataclass
class RunningOperator:
    metrics: OperatorMetrics
    reconciler: Reconciler


@asynccontextmanager
async def operator(
    server: str,
    namespaces: Iterable[str] = (NS,),
    config: OperatorConfig | None = None,
) -> AsyncIterator[RunningOperator]:
    """The real operator (fresh registry, real handlers) on the emulator.

    It runs in a thread with its own event loop, as it would in its own
    process: stopping it then cancels only its own tasks, never the
    emulator's (which serves from the test's loop, so this loop must keep
    turning while the operator starts and stops).
    """
    registry = kopf.OperatorRegistry()
    register(registry)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, insecure=True)

    settings = kopf.OperatorSettings()
    configure(settings)
    settings.scanning.disabled = True  # kmock 0.8 cannot list namespaces
    metrics = OperatorMetrics()
    reconciler = Reconciler(
        Kube(config_for(server)), metrics, config or OperatorConfig(retry_delay=0.2)
    )
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    settings=settings,
                    standalone=True,
                    namespaces=list(namespaces),
                    memo=kopf.Memo(reconciler=reconciler),
                    ready_flag=ready,
                    stop_flag=stop,
                )
            )
        except BaseException as err:  # surfaced in the test, not lost in the thread
            errors.append(err)

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    try:
        await wait_for("the operator to start", lambda: ready.is_set() or errors, timeout=20)
        assert not errors, errors
        yield RunningOperator(metrics, reconciler)
    finally:
        stop.set()
        await wait_for("the operator to stop", lambda: not thread.is_alive(), timeout=20)
    assert not errors, errors
