"""What the operator registers with kopf, and the settings that depend on it."""

from __future__ import annotations

import kopf

from transfersearch_operator.handlers import NoDiffBase, configure, register


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
