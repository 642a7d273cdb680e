"""kopf handlers: one small function per concern, registered into a given registry.

A registry argument (instead of kopf's global one) lets each test, and each
operator process, start from a clean set of handlers. Indexes summarise the
watched objects (searches, trial Jobs, trial pods) per search; every event of
any of them re-syncs that search's status, and a search event whose
generation the status has not observed yet (creation, a spec change) or whose
running Job is unknown (a restart) first makes the children. The status's
observedGeneration is the record of what was handled: kopf writes nothing on
the search (no annotations), and no handler needs a finalizer:
children are deleted by Kubernetes' garbage collector through their owner
references, so a search is deleted even while the operator is down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from transfersearch_trainer.api.spec import API_GROUP, API_VERSION, PLURAL

from .children import SEARCH_LABEL
from .observed import ObservedJob, ObservedPod, ObservedSearch
from .reconcile import Indexes, Key, Reconciler

SEARCHES = (API_GROUP, API_VERSION, PLURAL)
CHILD_LABELS = {SEARCH_LABEL: kopf.PRESENT}


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    return reconciler


def _indexes(kwargs: dict[str, Any]) -> Indexes:
    return Indexes(
        searches=kwargs["search_index"], jobs=kwargs["job_index"], pods=kwargs["pod_index"]
    )


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the operator's handlers to `registry`."""

    @kopf.index(*SEARCHES, id="search_index", registry=registry)
    async def search_index(body: Any, namespace: str | None, name: str, **_: Any) -> dict[Key, Any]:
        return {(namespace or "", name): ObservedSearch.from_body(body)}

    @kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS, id="job_index", registry=registry)
    async def job_index(body: Any, namespace: str | None, labels: Any, **_: Any) -> dict[Key, Any]:
        return {(namespace or "", labels[SEARCH_LABEL]): ObservedJob.from_body(body)}

    @kopf.index("", "v1", "pods", labels=CHILD_LABELS, id="pod_index", registry=registry)
    async def pod_index(body: Any, namespace: str | None, labels: Any, **_: Any) -> dict[Key, Any]:
        return {(namespace or "", labels[SEARCH_LABEL]): ObservedPod.from_body(body)}

    @kopf.on.event(*SEARCHES, id="search", registry=registry)
    async def search_changed(
        type: str, body: Any, namespace: str | None, name: str, memo: Any, **kw: Any
    ) -> None:
        # One handler for every search event, the initial listing included (a restart):
        # a generation the status has not observed yet gets its children; any other
        # event re-syncs the status. The status's observedGeneration is the record of
        # what was handled, so kopf keeps no annotations of its own on the search.
        reconciler = _reconciler(memo)
        key = (namespace or "", name)
        if type == "DELETED":
            reconciler.forget(key, body.get("metadata", {}).get("uid", ""))
            return
        idx = _indexes(kw)
        if reconciler.needs_children(ObservedSearch.from_body(body), idx):
            await reconciler.ensure_children(body, idx)
        else:
            await reconciler.sync_status(key, idx)

    @kopf.on.cleanup(id="close", registry=registry)
    async def close(memo: Any, **_: Any) -> None:
        await _reconciler(memo).close()

    @kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS, id="job-status", registry=registry)
    @kopf.on.event("", "v1", "pods", labels=CHILD_LABELS, id="pod-status", registry=registry)
    async def child_changed(namespace: str | None, labels: Any, memo: Any, **kw: Any) -> None:
        key = (namespace or "", labels[SEARCH_LABEL])
        await _reconciler(memo).sync_status(key, _indexes(kw))


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf diffs each event's body with the last handled one for change
    handlers (on.create/update/resume), and this operator registers none.

    kopf builds that diff on every event of every watched object, deep-copying the
    body; that was a quarter of the operator's CPU when 100 searches arrived at once.
    tests/operator/test_operator_handlers.py fails if a change handler is ever registered.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def configure(settings: kopf.OperatorSettings) -> None:
    """Settings every run uses: server-side child filtering, little event noise."""
    # Only event and index handlers are registered, so kopf stores no progress; were a
    # change handler added, its bookkeeping would go to annotations, never the typed status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="transfersearch.io"
    )
    settings.persistence.diffbase_storage = NoDiffBase()
    # Events for problems and restarts only: one per successful handler is noise,
    # and API load at scale.
    settings.posting.level = logging.WARNING
    # Only the operator's own Jobs and pods travel over the watch streams.
    settings.watching.label_selectors["batch", "jobs"] = SEARCH_LABEL
    settings.watching.label_selectors["v1", "pods"] = SEARCH_LABEL
