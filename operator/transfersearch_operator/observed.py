"""Small, immutable summaries of what the operator watches (kopf index values).

The watch streams carry whole objects; the status needs a few fields of each.
Summarising at the edge keeps the in-memory indexes small (a cluster may run
thousands of trial pods) and the status computation free of raw dict digging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .children import (
    COMPLETION_INDEX_ANNOTATION,
    COMPLETION_INDEX_LABEL,
    CONFIG_VOLUME,
    CONTAINER,
    GENERATION_LABEL,
)

Body = dict[str, Any]


@dataclass(frozen=True)
class ObservedSearch:
    name: str
    namespace: str
    uid: str
    generation: int
    resource_version: str | None
    spec: Body
    status: Body

    @classmethod
    def from_body(cls, body: Any) -> ObservedSearch:
        meta = body.get("metadata", {})
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 1),
            resource_version=meta.get("resourceVersion"),
            spec=_plain(body.get("spec") or {}),
            status=_plain(body.get("status") or {}),
        )


@dataclass(frozen=True)
class JobCondition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None


@dataclass(frozen=True)
class ObservedJob:
    name: str
    generation: int | None
    active: int
    succeeded: int
    failed: int
    conditions: tuple[JobCondition, ...]
    start_time: str | None
    completion_time: str | None
    uid: str = ""
    owner_uid: str = ""
    """The uid of the TransferSearch that controls it: the label names a search, this says which."""
    config_map: str = ""
    """The ConfigMap its pods mount (a Job made by an older operator may name it differently)."""

    @classmethod
    def from_body(cls, body: Any) -> ObservedJob:
        meta = body.get("metadata", {})
        status = body.get("status") or {}
        conditions = tuple(
            JobCondition(
                type=str(c.get("type", "")),
                status=str(c.get("status", "")),
                reason=str(c.get("reason") or ""),
                message=str(c.get("message") or ""),
                last_transition_time=c.get("lastTransitionTime"),
            )
            for c in status.get("conditions") or []
        )
        return cls(
            name=meta.get("name", ""),
            generation=_int(meta.get("labels", {}).get(GENERATION_LABEL)),
            active=_int(status.get("active")) or 0,
            succeeded=_int(status.get("succeeded")) or 0,
            failed=_int(status.get("failed")) or 0,
            conditions=conditions,
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
            uid=meta.get("uid", ""),
            owner_uid=controller_uid(meta, "TransferSearch"),
            config_map=_config_volume(body),
        )

    @classmethod
    def placeholder(cls, job: Body, owner_uid: str) -> ObservedJob:
        """A Job just created, before its first watch event: nothing has run yet."""
        meta = job["metadata"]
        return cls(
            name=meta["name"],
            generation=_int(meta.get("labels", {}).get(GENERATION_LABEL)),
            active=0,
            succeeded=0,
            failed=0,
            conditions=(),
            start_time=None,
            completion_time=None,
            uid=meta.get("uid", ""),
            owner_uid=owner_uid,
            config_map=_config_volume(job),
        )

    def condition(self, *types: str) -> JobCondition | None:
        """The first of these condition types that is True."""
        for c in self.conditions:
            if c.type in types and c.status == "True":
                return c
        return None


@dataclass(frozen=True)
class Terminated:
    exit_code: int | None
    reason: str
    message: str
    started_at: str | None
    finished_at: str | None

    @property
    def seconds(self) -> float:
        start, end = _time(self.started_at), _time(self.finished_at)
        if start is None or end is None:
            return 0.0
        return max(0.0, (end - start).total_seconds())


@dataclass(frozen=True)
class ObservedPod:
    name: str
    generation: int | None
    index: int | None
    phase: str
    terminated: Terminated | None
    job_uid: str = ""
    """The uid of the Job that controls it: an old Job's pods carry the same labels."""

    @classmethod
    def from_body(cls, body: Any) -> ObservedPod:
        meta = body.get("metadata", {})
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        index = _int(annotations.get(COMPLETION_INDEX_ANNOTATION))
        if index is None:
            index = _int(labels.get(COMPLETION_INDEX_LABEL))
        status = body.get("status") or {}
        terminated = None
        for cs in status.get("containerStatuses") or []:
            state = (cs.get("state") or {}).get("terminated")
            if cs.get("name") == CONTAINER and state:
                terminated = Terminated(
                    exit_code=_int(state.get("exitCode")),
                    reason=str(state.get("reason") or ""),
                    message=str(state.get("message") or ""),
                    started_at=state.get("startedAt"),
                    finished_at=state.get("finishedAt"),
                )
        return cls(
            name=meta.get("name", ""),
            generation=_int(labels.get(GENERATION_LABEL)),
            index=index,
            phase=str(status.get("phase") or "Pending"),
            terminated=terminated,
            job_uid=controller_uid(meta, "Job"),
        )

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def controller_uid(meta: Any, kind: str) -> str:
    """The uid of the object's controller of this kind, "" if it has none.

    Names and labels are reused: a search deleted and created again under the same
    name, or a Job orphaned by `kubectl delete --cascade=orphan`, keeps them. The
    controller's uid is what tells whose child an object is.
    """
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("uid") or "")
    return ""


def _config_volume(job: Any) -> str:
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for volume in pod.get("volumes") or []:
        if volume.get("name") == CONFIG_VOLUME:
            return str((volume.get("configMap") or {}).get("name") or "")
    return ""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf hands out read-only views)."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
