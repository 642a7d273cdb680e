"""Checkpoints of the learner: a killed-and-resumed training equals an uninterrupted one.

In-process and on a synthetic benchmark, so they are fast; the subprocess test in
test_trainer.py kills a real trainer with SIGKILL.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainer.agent.test_agent import TINY, synthetic
from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.checkpoint import Checkpointer
from transfersearch_trainer.agent.evaluate import curve_evaluator
from transfersearch_trainer.agent.hooks import LearnerHooks, TrainStats
from transfersearch_trainer.agent.learner import Learner, TrainingRun, Watch
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.store.blobs import LocalBlobs

CPU = torch.device("cpu")
HP = TINY.replace(augment=0.3, eval_interval=20, eval_searches=4, eval_budget=6)
STEPS = 100
FINGERPRINT = {"task": "jigsaw", "seed": 3, "steps": STEPS}


class KilledError(Exception):
    pass


class KillAt(LearnerHooks):
    """Stands in for SIGKILL: the run ends abruptly after `updates` updates."""

    def __init__(self, updates: int) -> None:
        self.updates = updates

    def on_step(self, learner: Learner) -> None:
        if learner.stats.updates >= self.updates:
            raise KilledError


def make_learner(hooks: list[LearnerHooks], seed: int = 3) -> Learner:
    bench = synthetic()
    agent = Agent.new(bench.space, HP, seed=seed)
    evaluator = curve_evaluator(bench, "jigsaw", HP.eval_budget, HP.eval_searches, CPU)
    run = TrainingRun(bench, "jigsaw", HP, STEPS, seed, CPU)
    return Learner(agent.net, run, Watch(evaluator=evaluator, hooks=hooks))


def timeless(stats: TrainStats) -> dict[str, object]:
    d = stats.to_dict()
    d.pop("device_seconds")
    d["curve"] = [{k: v for k, v in p.items() if k != "device_seconds"} for p in d["curve"]]
    return d


@pytest.fixture(scope="module")
def uninterrupted() -> tuple[Learner, TrainStats]:
    learner = make_learner([])
    return learner, learner.run()


@pytest.mark.parametrize("kill_at", [45, 52])
def test_resumed_training_is_bit_identical(
    tmp_path: Path, uninterrupted: tuple[Learner, TrainStats], kill_at: int
) -> None:
    blobs = LocalBlobs(tmp_path)
    first = Checkpointer(blobs, "ckpt", 20, FINGERPRINT)
    with pytest.raises(KilledError):
        make_learner([first, KillAt(kill_at)]).run()
    assert first.published == "ckpt-000000040"  # the kill lost at most one interval

    second = Checkpointer(blobs, "ckpt", 20, FINGERPRINT)
    learner = make_learner([second])
    stats = learner.run()
    assert second.resumed_from == 40
    assert stats.updates == STEPS
    reference, ref_stats = uninterrupted
    assert timeless(stats) == timeless(ref_stats)
    for (name, a), b in zip(
        learner.net.state_dict().items(), reference.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(learner.replay.tree.tree, reference.replay.tree.tree)
    # every array of the environment, not just the ones the checkpoint lists
    for name, value in vars(reference.env).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(learner.env, name), value, err_msg=name)
    # only the newest two checkpoints are kept, and the final one is published
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert names == {"ckpt-000000080", "ckpt-000000100-final", "latest.json"}
    latest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert latest["checkpoint"] == "ckpt-000000100-final"


def test_a_finished_training_resumes_as_finished(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path)
    make_learner([Checkpointer(blobs, "c", 50, FINGERPRINT)]).run()
    again = Checkpointer(blobs, "c", 50, FINGERPRINT)
    learner = make_learner([again])
    stats = learner.run()
    assert again.resumed_from == STEPS
    assert again.saves == []  # nothing left to do, nothing written
    assert stats.updates == STEPS


def test_unpublished_and_corrupt_checkpoints_are_never_used(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path)
    with pytest.raises(KilledError):
        make_learner([Checkpointer(blobs, "c", 20, FINGERPRINT), KillAt(62)]).run()
    folder = tmp_path / "c"
    assert json.loads((folder / "latest.json").read_text())["checkpoint"] == "ckpt-000000060"
    # a half-written newer checkpoint (state written, pod killed before meta and pointer)
    (folder / "ckpt-000000080").mkdir()
    (folder / "ckpt-000000080" / "state.safetensors").write_bytes(b"partial")
    # and the published one is damaged: its state no longer matches the digest in its meta
    state = folder / "ckpt-000000060" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-10] + b"\0" * 10)
    ckpt = Checkpointer(blobs, "c", 20, FINGERPRINT)
    stats = make_learner([ckpt]).run()
    assert ckpt.resumed_from == 40  # the previous intact checkpoint
    assert stats.updates == STEPS


def test_checkpoint_of_another_training_is_refused(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path)
    with pytest.raises(KilledError):
        make_learner([Checkpointer(blobs, "c", 20, FINGERPRINT), KillAt(20)]).run()
    other = Checkpointer(blobs, "c", 20, {**FINGERPRINT, "seed": 4})
    with pytest.raises(TransferSearchError, match=r"different training \(differs in: seed\)"):
        make_learner([other], seed=4).run()


def test_stop_request_saves_then_stops(tmp_path: Path) -> None:
    blobs = LocalBlobs(tmp_path)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 30

    ckpt = Checkpointer(blobs, "c", 1000, FINGERPRINT, should_stop=stop)
    with pytest.raises(TransferSearchError, match="stopped on request") as info:
        make_learner([ckpt]).run()
    assert info.value.exit_code == 75
    assert ckpt.published is not None
    resumed = Checkpointer(blobs, "c", 1000, FINGERPRINT)
    make_learner([resumed]).run()
    assert resumed.resumed_from == ckpt.last_saved
