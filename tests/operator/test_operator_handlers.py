"""What the operator registers with kopf, and how its reconciler orders its API calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import pytest

from tests.fakes.emulator import NS, manifest
from transfersearch_operator import reconcile
from transfersearch_operator.config import OperatorConfig
from transfersearch_operator.handlers import NoDiffBase, configure, register
from transfersearch_operator.kube import Kube, config_for
from transfersearch_operator.metrics import OperatorMetrics
from transfersearch_operator.observed import ObservedSearch
from transfersearch_operator.reconcile import Indexes, Reconciler


def test_no_change_handlers_because_kopf_keeps_no_diff_base() -> None:
    """NoDiffBase is only right while no handler needs a diff (on.create/update/resume...)."""
    registry = kopf.OperatorRegistry()
    register(registry)
    assert registry._watching.get_all_handlers()  # the event handlers are there
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()  # daemons and timers reset on diffs
    settings = kopf.OperatorSettings()
    configure(settings)
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBase)


class GatedKube(Kube):
    """The real client's interface; Job POSTs of `slow` wait for a gate, nothing goes out."""

    def __init__(self) -> None:
        super().__init__(config_for("http://127.0.0.1:9"))  # never dialled
        self.gate = asyncio.Event()
        self.written: dict[str, float] = {}  # search -> when its status was written

    async def create(self, body: dict[str, Any]) -> bool:
        if body["kind"] == "Job" and body["metadata"]["name"].startswith("slow-"):
            await self.gate.wait()
        return True

    async def patch_search_status(
        self, namespace: str, name: str, resource_version: str | None, status: dict[str, Any]
    ) -> bool:
        self.written[name] = time.monotonic()
        return True


def _search(name: str) -> dict[str, Any]:
    body = manifest(name)
    body["metadata"].update(uid=f"uid-{name}", generation=1, resourceVersion="1")
    return body


@pytest.mark.asyncio
async def test_status_writes_wait_for_job_creations_but_not_for_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Jobs first when searches arrive together; a stuck creation delays others' status only
    by STATUS_DEFER_MAX."""
    monkeypatch.setattr(reconcile, "STATUS_DEFER_MAX", 0.3)
    kube = GatedKube()
    reconciler = Reconciler(kube, OperatorMetrics(), OperatorConfig())
    bodies = {name: _search(name) for name in ("slow", "quick", "later")}
    idx = Indexes(
        searches={(NS, n): [ObservedSearch.from_body(b)] for n, b in bodies.items()},
        jobs={},
        pods={},
    )
    slow = asyncio.create_task(reconciler.ensure_children(bodies["slow"], idx))
    await asyncio.sleep(0.01)  # slow's Job POST is in flight
    started = time.monotonic()
    await asyncio.wait_for(reconciler.ensure_children(bodies["quick"], idx), timeout=10)
    assert "slow" not in kube.written
    assert not slow.done()
    assert kube.written["quick"] - started >= 0.3  # it waited for slow's creation, then wrote
    kube.gate.set()
    await asyncio.wait_for(slow, timeout=10)
    assert "slow" in kube.written

    # With no creation in flight, a status write does not wait (were it to, this would
    # take STATUS_DEFER_MAX, 30 s, and time out).
    monkeypatch.setattr(reconcile, "STATUS_DEFER_MAX", 30.0)
    await asyncio.wait_for(reconciler.ensure_children(bodies["later"], idx), timeout=10)
    assert "later" in kube.written
    await reconciler.close()
