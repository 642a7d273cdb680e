"""The two reconciliations: children for the current generation, and the status.

`ensure_children` runs when a search's status has not observed its generation yet
(creation, a spec change) or a running search's Job is unknown (restart): it checks
the spec against the admission policy, creates the generation's ConfigMap and Job
(a 409 means done already if the object there is this search's own) and deletes the
children of older generations, which is the spec-change policy: *a spec change
restarts the search* with a new Job (`<name>-<uid>-g<generation>`); the old Job and
its pods go, and the status starts over for the new generation.

`sync_status` runs on every event of the search, its Jobs and its pods. It
recomputes the status from kopf's in-memory indexes and writes what differs
with a resourceVersion precondition: a stale view loses with a 409 instead of
overwriting newer news, and is tried again once the watch has caught up.
Syncs of one search never overlap; events arriving meanwhile fold into one rerun.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from . import children
from .admission import RefusedError, admit, forbidden, name_taken
from .compute import (
    InvalidSpecError,
    Refusal,
    compute_status,
    owned_job,
    previous_status,
    validate,
)
from .config import OperatorConfig
from .kube import ConflictError, ForbiddenError, Kube, RejectedError
from .metrics import OperatorMetrics
from .observed import ObservedJob, ObservedPod, ObservedSearch, controller_uid
from .status import TERMINAL_PHASES

Key = tuple[str, str]  # (namespace, search name)
CONFLICT_PAUSE = 0.05  # seconds for a watch event to catch up with a write
STATUS_DEFER_MAX = 1.0  # seconds a status write waits for Job creations in flight
log = logging.getLogger("transfersearch_operator")


@dataclass(frozen=True)
class Indexes:
    """kopf's live indexes: what the watch streams last said, by search."""

    searches: Mapping[Key, Collection[ObservedSearch]]
    jobs: Mapping[Key, Collection[ObservedJob]]
    pods: Mapping[Key, Collection[ObservedPod]]


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Shared by all handlers through kopf's memo.

    It keeps no state of its own beyond hints the cluster confirms or outdates:
    a Job just created, a Job refused (by the server or the policy), a status write
    not seen yet.
    """

    def __init__(
        self,
        kube: Kube,
        metrics: OperatorMetrics,
        config: OperatorConfig,
        clock: Callable[[], str] = utcnow,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.config = config
        self._clock = clock
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._retrying: set[Key] = set()
        self._retrying_children: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Why a search's generation has no Job, by search: (uid, generation, refusal).
        # In memory only: a final refusal is recorded in the status (which keeps it),
        # and after a restart a waiting one is tried, and learnt, again.
        self._refusals: dict[Key, tuple[str, int, Refusal]] = {}
        # Jobs this operator created whose watch event may not have arrived yet.
        self._known_jobs: dict[Key, ObservedJob] = {}
        # The resourceVersion each search's last status write was based on: while the
        # index still shows it, the watch has not brought that write back yet.
        self._written_over: dict[Key, str] = {}
        # Children creations in flight, and an event set when there are none.
        self._creating = 0
        self._no_creations = asyncio.Event()
        self._no_creations.set()

    def needs_children(self, search: ObservedSearch, idx: Indexes) -> bool:
        """A generation not observed yet, or a running one whose Job is unknown (restart).

        Runs on every search event: reads the two status fields it needs, no full parse.
        """
        if search.status.get("observedGeneration") != search.generation:
            return True
        if search.status.get("phase") in TERMINAL_PHASES:
            return False
        key = (search.namespace, search.name)
        known = self._known_jobs.get(key)
        return not (
            owned_job(search, idx.jobs.get(key, ())) is not None
            or (known is not None and owned_job(search, [known]) is not None)
        )

    async def ensure_children(self, body: Any, idx: Indexes) -> None:
        search = ObservedSearch.from_body(body)
        key = (search.namespace, search.name)
        self._creating += 1
        self._no_creations.clear()
        try:
            with self.metrics.reconciling("children"):
                try:
                    await self._ensure_children(body, search, idx)
                except InvalidSpecError:
                    pass  # the status says why (Failed) from the same check; nothing to retry
                except RefusedError as err:
                    self._refusals[key] = (search.uid, search.generation, err.refusal)
                    if err.fault:
                        raise  # counted by metrics.reconciling
                    log.info("%s/%s: %s", *key, err.refusal.message)
                    if not err.refusal.final:
                        self._retry_children_later(body, idx)
        except RefusedError as err:
            log.warning("%s/%s: %s", *key, err.refusal.message)
            self._retry_children_later(body, idx)
        except Exception as err:  # counted by metrics.reconciling
            log.warning("%s/%s: could not create the children (%s); retrying soon", *key, err)
            self._retry_children_later(body, idx)
        finally:
            self._creating -= 1
            if not self._creating:
                self._no_creations.set()
            await self.sync_status(key, idx)

    def _retry_children_later(self, body: Any, idx: Indexes) -> None:
        search = ObservedSearch.from_body(body)
        key = (search.namespace, search.name)
        if key in self._retrying_children:
            return
        self._retrying_children.add(key)

        async def retry() -> None:
            await asyncio.sleep(self.config.retry_delay)
            self._retrying_children.discard(key)
            latest = next(iter(idx.searches.get(key, ())), None)
            if (
                latest is not None
                and latest.uid == search.uid  # not a new search of the same name
                and latest.generation == search.generation
            ):
                await self.ensure_children(body, idx)

        task = asyncio.get_running_loop().create_task(retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ensure_children(self, body: Any, search: ObservedSearch, idx: Indexes) -> None:
        """Make the generation's children exist."""
        key = (search.namespace, search.name)
        gen = search.generation
        prev = previous_status(search)
        if prev and prev.observed_generation == gen and prev.phase in TERMINAL_PHASES:
            log.debug("%s/%s: generation %d finished (%s)", *key, gen, prev.phase)
            return
        held = self._refusals.get(key)
        if held is not None and held[:2] == (search.uid, gen) and held[2].final:
            return  # an event from before the refusal's status write: refused already
        # Older generations go first, even when the new spec turns out invalid:
        # what runs must be what the spec says, or nothing. Only this search's own:
        # an earlier search of the same name may have left Jobs with the same labels.
        stale = [
            j
            for j in idx.jobs.get(key, ())
            if j.owner_uid == search.uid and j.generation not in (None, gen)
        ]
        for old in stale:  # a copy: the index changes while this awaits
            await self._delete_generation(body, search, old)
        spec = validate(search)  # InvalidSpecError: the status computes Failed from the same check
        await admit(self.kube, self.config, body, search, spec)
        if spec.s3 is None and self.config.default_s3 is not None:
            spec = spec.model_copy(update={"s3": self.config.default_s3})
        ref = children.SearchRef(search.name, search.namespace, search.uid, gen)
        config_map = children.config_map(ref, spec)
        job = children.job(ref, spec, spec.image or self.config.default_image)
        name = job["metadata"]["name"]
        kopf.adopt([config_map, job], owner=body)
        # After a name clash, the ConfigMap first: a Job made beside another owner's
        # ConfigMap would start pods with that owner's job config.
        careful = held is not None and held[:2] == (search.uid, gen)
        try:
            if careful:
                map_created = await self.kube.create(config_map)
                if not map_created and not await self._owned(search, config_map):
                    raise RefusedError(name_taken(self.config, [config_map]))
                created = await self.kube.create(job)
            else:  # together, the Job's request first: a pod waits for its ConfigMap
                created, map_created = await asyncio.gather(
                    self.kube.create(job), self.kube.create(config_map)
                )
        except RejectedError as err:
            message = f"the API server refused Job {name}: {err}"
            raise RefusedError(Refusal("JobRejected", message)) from None
        except ForbiddenError as err:
            raise forbidden(self.config, f"create Job {name} and ConfigMap {name}", err) from None
        # A 409 says an object of that name exists, not whose it is.
        taken = [
            obj
            for obj, made in ((job, created), (config_map, map_created))
            if not made and not await self._owned(search, obj)
        ]
        if taken:
            if created:  # its pods must not start with another owner's ConfigMap
                await self.kube.delete("Job", search.namespace, name)
            raise RefusedError(name_taken(self.config, taken))
        self._refusals.pop(key, None)
        # The Job exists now; until its watch event arrives, the status says so anyway:
        # one status write per new search instead of one before and one after.
        self._known_jobs[key] = ObservedJob.placeholder(job, search.uid)
        if created:
            log.info(
                "%s/%s: created Job %s: %d trial(s), %d at once",
                *key,
                job["metadata"]["name"],
                spec.training.seeds,
                spec.training.parallelism,
            )

    async def _owned(self, search: ObservedSearch, obj: dict[str, Any]) -> bool:
        """Whether the object that already has this child's name is this search's own."""
        meta = obj["metadata"]
        found = await self.kube.get(obj["kind"], meta["namespace"], meta["name"])
        if found is None:  # deleted since the 409: the next try creates it
            raise RuntimeError(f"{obj['kind']} {meta['name']} was deleted while being created")
        return controller_uid(found.get("metadata") or {}, "TransferSearch") == search.uid

    async def _delete_generation(self, body: Any, search: ObservedSearch, old: ObservedJob) -> None:
        assert old.generation is not None
        await self.kube.delete("Job", search.namespace, old.name)
        await self.kube.delete(
            "ConfigMap",
            search.namespace,
            old.config_map or children.child_name(search.name, search.uid, old.generation),
        )
        message = (
            f"spec changed: generation {search.generation} restarts the search; "
            f"Job {old.name} (generation {old.generation}) deleted"
        )
        log.info("%s/%s: %s", search.namespace, search.name, message)
        kopf.event(body, type="Normal", reason="Restarted", message=message)

    async def sync_status(self, key: Key, idx: Indexes) -> None:
        if key in self._running:
            self._dirty.add(key)  # the running sync goes round once more
            return
        self._running.add(key)
        try:
            while True:
                self._dirty.discard(key)
                if not await self._sync_once(key, idx):
                    # Our view of the search is older than the server's: its watch event
                    # is on the way and refreshes the index. Not waiting for it here:
                    # kopf updates a search's index in the same worker that may be
                    # running this very call.
                    self._retry_later(key, idx, CONFLICT_PAUSE)
                    break
                if key not in self._dirty:
                    break
        except Exception as err:  # counted by metrics.reconciling
            log.warning("%s/%s: could not update the status (%s); retrying soon", *key, err)
            self._retry_later(key, idx, self.config.retry_delay)
        finally:
            self._running.discard(key)

    async def _sync_once(self, key: Key, idx: Indexes, defer: bool = True) -> bool:
        """Write the status if it changed; False if the write lost to a newer version.

        Work first, reports after: while Jobs are being created, a status write waits
        (at most STATUS_DEFER_MAX) so that, when many searches arrive at once, their
        Jobs do not queue behind status writes at the API server; then it is computed
        again from what the watches brought meanwhile.
        """
        search = next(iter(idx.searches.get(key, ())), None)
        if search is None:
            return True  # deleted: its children go with their owner references
        if search.resource_version and self._written_over.get(key) == search.resource_version:
            # Our own write is on its way back; its event syncs again. Computing from this
            # view would repeat the write and lose on its resourceVersion (a 409).
            return True
        with self.metrics.reconciling("status"):
            held = self._refusals.get(key)
            jobs = list(idx.jobs.get(key, ()))
            known = self._known_jobs.get(key)
            if known is not None:
                if any(
                    j.owner_uid == known.owner_uid and j.generation == known.generation
                    for j in jobs
                ):
                    del self._known_jobs[key]  # the watch has caught up
                else:
                    jobs.append(known)
            status = compute_status(
                search,
                jobs,
                list(idx.pods.get(key, ())),
                now=self._clock(),
                refusal=held[2] if held and held[:2] == (search.uid, search.generation) else None,
            )
            wanted = status.to_patch_dict()
            patch = {k: v for k, v in wanted.items() if search.status.get(k) != v}
            deferred = bool(patch) and defer and not self._no_creations.is_set()
            if patch and not deferred:
                try:
                    written = await self.kube.patch_search_status(
                        search.namespace, search.name, search.resource_version, patch
                    )
                except ConflictError:
                    log.debug("%s/%s: the status view was stale; syncing again", *key)
                    return False
                if not written:
                    return True
                if search.resource_version:
                    self._written_over[key] = search.resource_version
                before = previous_status(search)
                self.metrics.count_trials(before, status)
                self.metrics.count_rejected(before, status)
                if "phase" in patch:
                    log.info("%s/%s: phase %s: %s", *key, status.phase, status.message)
            if not deferred:
                self.metrics.set_phase(search.uid, status.phase)
        if deferred:  # outside the reconcile-duration metric: waiting is not work
            with suppress(TimeoutError):
                await asyncio.wait_for(self._no_creations.wait(), STATUS_DEFER_MAX)
            return await self._sync_once(key, idx, defer=False)
        return True

    def _retry_later(self, key: Key, idx: Indexes, delay: float) -> None:
        if key in self._retrying:
            return
        self._retrying.add(key)

        async def retry() -> None:
            await asyncio.sleep(delay)
            self._retrying.discard(key)
            await self.sync_status(key, idx)

        task = asyncio.get_running_loop().create_task(retry())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """At shutdown: no retries left waiting to run, then the connections."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.kube.close()

    def forget(self, key: Key, uid: str) -> None:
        """The search is gone: drop what is kept about it (not about a new one of its name)."""
        held = self._refusals.get(key)
        if held is not None and held[0] == uid:
            del self._refusals[key]
        known = self._known_jobs.get(key)
        if known is not None and known.owner_uid == uid:
            del self._known_jobs[key]
        self._written_over.pop(key, None)
        self.metrics.forget(uid)
