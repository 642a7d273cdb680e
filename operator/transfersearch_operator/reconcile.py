"""The two reconciliations: children for the current generation, and the status.

`ensure_children` runs when a search's status has not observed its generation yet
(creation, a spec change) or a running search's Job is unknown (restart): it creates the
generation's ConfigMap and Job (a 409 means done already) and deletes the
children of older generations, which is the spec-change policy: *a spec change
restarts the search* with a new Job (`<name>-g<generation>`); the old Job and
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
from .compute import InvalidSpecError, compute_status, previous_status, validate
from .config import OperatorConfig
from .kube import ConflictError, Kube, RejectedError
from .metrics import OperatorMetrics
from .observed import ObservedJob, ObservedPod, ObservedSearch
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
    a Job just created, a Job the server refused, a status write not seen yet.
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
        # Jobs the API server refused, by search: (generation, its message). Kept in
        # memory only: after a restart the next event of the search tries (and learns) again.
        self._rejected: dict[Key, tuple[int, str]] = {}
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
            any(j.generation == search.generation for j in idx.jobs.get(key, ()))
            or (known is not None and known.generation == search.generation)
        )

    async def ensure_children(self, body: Any, idx: Indexes) -> None:
        search = ObservedSearch.from_body(body)
        key = (search.namespace, search.name)
        self._creating += 1
        self._no_creations.clear()
        try:
            with self.metrics.reconciling("children"):
                await self._ensure_children(body, search, idx)
        except (InvalidSpecError, RejectedError):
            pass  # permanent: the status says why (Failed), and nothing is retried
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
            if latest is not None and latest.generation == search.generation:
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
        # Older generations go first, even when the new spec turns out invalid:
        # what runs must be what the spec says, or nothing.
        stale = [j for j in idx.jobs.get(key, ()) if j.generation not in (None, gen)]
        for old in stale:  # a copy: the index changes while this awaits
            await self._delete_generation(body, search, old)
        spec = validate(search)  # InvalidSpecError: the status computes Failed from the same check
        if spec.s3 is None and self.config.default_s3 is not None:
            spec = spec.model_copy(update={"s3": self.config.default_s3})
        ref = children.SearchRef(search.name, search.namespace, search.uid, gen)
        config_map = children.config_map(ref, spec)
        job = children.job(ref, spec, spec.image or self.config.default_image)
        kopf.adopt([config_map, job], owner=body)
        try:
            # Together, the Job's request first: a pod waits for its ConfigMap.
            created, _ = await asyncio.gather(self.kube.create(job), self.kube.create(config_map))
        except RejectedError as err:
            self._rejected[key] = (gen, str(err))
            log.warning("%s/%s: the API server refused the trial Job: %s", *key, err)
            raise
        # The Job exists now; until its watch event arrives, the status says so anyway:
        # one status write per new search instead of one before and one after.
        self._known_jobs[key] = ObservedJob.placeholder(job["metadata"]["name"], gen)
        if created:
            log.info(
                "%s/%s: created Job %s: %d trial(s), %d at once",
                *key,
                job["metadata"]["name"],
                spec.training.seeds,
                spec.training.parallelism,
            )

    async def _delete_generation(self, body: Any, search: ObservedSearch, old: ObservedJob) -> None:
        assert old.generation is not None
        await self.kube.delete("Job", search.namespace, old.name)
        await self.kube.delete(
            "ConfigMap", search.namespace, children.child_name(search.name, old.generation)
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
            rejected = self._rejected.get(key)
            jobs = list(idx.jobs.get(key, ()))
            known = self._known_jobs.get(key)
            if known is not None:
                if any(j.generation == known.generation for j in jobs):
                    del self._known_jobs[key]  # the watch has caught up
                else:
                    jobs.append(known)
            status = compute_status(
                search,
                jobs,
                list(idx.pods.get(key, ())),
                now=self._clock(),
                rejected=rejected[1] if rejected and rejected[0] == search.generation else None,
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
                self.metrics.count_trials(previous_status(search), status)
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
        """The search is gone: drop what is kept about it."""
        self._rejected.pop(key, None)
        self._known_jobs.pop(key, None)
        self._written_over.pop(key, None)
        self.metrics.forget(uid)
