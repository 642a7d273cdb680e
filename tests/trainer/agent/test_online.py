"""The search on a target: every evaluation paid, nothing known beyond what was paid for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from tests.trainer.agent.test_agent import TINY, synthetic
from transfersearch_trainer.agent.artifact import Agent, save_agent
from transfersearch_trainer.agent.online import SEARCH_MODES, OnlineSettings, search_target
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.observed import ObservedSearch
from transfersearch_trainer.search.oracle import SearchContext
from transfersearch_trainer.workflow.search import SearchRequest, run_agent_search, search_starts

CPU = torch.device("cpu")
FAST = OnlineSettings(updates_per_evaluation=1, batch_size=8, learning_starts=4)


def counting(table: npt.NDArray[np.float64], log: list[int]):  # type: ignore[no-untyped-def]
    def evaluate(archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        log.extend(int(a) for a in archs)
        out: npt.NDArray[np.float64] = table[archs]
        return out

    return evaluate


def run(
    bench: Benchmark,
    table: npt.NDArray[np.float64],
    mode: str,
    budget: int = 24,
    parallel: int = 1,
    seed: int = 3,
) -> tuple[list[int], list[float], list[int]]:
    agent = Agent.new(bench.space, TINY, seed=0)
    calls: list[int] = []
    result = search_target(
        agent.net,
        agent.hp,
        bench.space,
        counting(table, calls),
        budget,
        mode,
        seed,
        CPU,
        parallel=parallel,
        settings=FAST,
    )
    return result.trajectory.arch, result.trajectory.metric, calls


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_a_search_never_looks_at_what_it_did_not_pay_for(mode: str) -> None:
    """The same search on a table whose unevaluated entries are NaN makes the same moves."""
    bench = synthetic()
    full = bench.metric("jigsaw").copy()
    archs, metrics, _ = run(bench, full, mode, parallel=2)
    blind = np.full_like(full, np.nan)
    blind[archs] = full[archs]
    archs2, metrics2, _ = run(bench, blind, mode, parallel=2)
    assert archs2 == archs
    assert metrics2 == metrics


@pytest.mark.parametrize("parallel", [1, 4])
def test_the_budget_counts_distinct_evaluations(parallel: int) -> None:
    bench = synthetic()
    archs, metrics, calls = run(bench, bench.metric("jigsaw"), "online", 30, parallel)
    assert len(archs) == 30
    assert len(set(archs)) == 30  # every paid evaluation is a new architecture
    assert sorted(calls) == sorted(archs)  # the evaluator saw exactly those, once each
    assert max(metrics) == pytest.approx(max(bench.metric("jigsaw")[archs]))


def test_same_seed_same_search_and_zero_shot_keeps_its_weights() -> None:
    bench = synthetic()
    table = bench.metric("jigsaw")
    assert run(bench, table, "online") == run(bench, table, "online")
    assert run(bench, table, "online", seed=4) != run(bench, table, "online")
    agent = Agent.new(bench.space, TINY, seed=0)
    before = [p.detach().clone() for p in agent.net.parameters()]
    for mode in ("zero-shot", "online"):
        result = search_target(
            agent.net, agent.hp, bench.space, lambda a: table[a], 20, mode, 0, CPU, settings=FAST
        )
        assert (result.updates == 0) == (mode == "zero-shot")
    after = list(agent.net.parameters())  # online learns on a copy: the agent is not changed
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_an_evaluator_without_an_answer_is_a_clear_error() -> None:
    bench = synthetic()

    def broken(archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return np.full(archs.size, np.nan)

    with pytest.raises(TransferSearchError, match="no finite metric"):
        ObservedSearch(bench.space, broken, 10, 1, np.array([0]))
    with pytest.raises(TransferSearchError, match="parallel"):
        ObservedSearch(bench.space, lambda a: bench.metric("jigsaw")[a], 3, 4, np.arange(4))


def test_search_command_reports_the_paid_evaluations(data_dir: Path, tmp_path: Path) -> None:
    """`transfersearch search --json` on the real table: budget spent exactly, rank and regret."""
    agent = Agent.new(synthetic().space, TINY, seed=0)
    save_agent(agent, tmp_path / "agent")
    cmd = [
        sys.executable,
        "-m",
        "transfersearch_trainer.cli.main",
        "search",
        "--task",
        "class_object",
        "--budget",
        "12",
        "--agent",
        str(tmp_path / "agent"),
        "--mode",
        "zero-shot",
        "--parallel",
        "3",
        "--data",
        str(data_dir),
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, timeout=240)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("task", "space", "mode", "budget", "evaluations", "best_arch", "best_metric"):
        assert key in r
    assert r["evaluations"] == r["budget"] == len(r["trajectory"]) == 12
    assert r["best_metric"] == max(p["metric"] for p in r["trajectory"])
    assert r["regret"] == pytest.approx(r["optimum"] - r["best_metric"])
    assert r["rank"] >= 1
    assert (r["rank"] == 1) == r["hit"]
    assert r["device_seconds"] > 0
    bad = subprocess.run(
        [*cmd[:4], "--task", "class_objekt", "--json"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "--task" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_pretrained_agent_starts_at_its_sources_best_and_never_at_the_targets() -> None:
    """The prior start reads the source tasks' tables only: the target is never a source."""
    bench = synthetic()
    agent = Agent.new(bench.space, TINY, seed=0)
    sources = [t for t in bench.tasks if t != "jigsaw"]
    agent.training = {"tasks": [*sources, "jigsaw"]}  # even an agent that saw the target
    request = SearchRequest("jigsaw", 20, "zero-shot", seed=1, parallel=3)
    starts, info = search_starts(bench, request, agent)
    order = SearchContext.from_benchmark(bench, "jigsaw", sources).order
    assert starts is not None
    assert starts.tolist() == order[:3].tolist()
    assert info == {"start": "prior", "sources": sources}
    report = run_agent_search(bench, request, agent)
    assert {report["trajectory"][i]["arch"] for i in range(3)} == {
        bench.space.arch_str(int(a)) for a in order[:3]
    }
    assert search_starts(bench, replace(request, mode="scratch"), agent)[0] is None
    assert search_starts(bench, replace(request, start="random"), agent)[0] is None
    agent.training, agent.task = {}, "jigsaw"  # trained on the target only: no prior to use
    assert search_starts(bench, request, agent)[1] == {"start": "random", "sources": []}
    with pytest.raises(TransferSearchError, match="--start: unknown 'best'"):
        search_starts(bench, replace(request, start="best"), agent)
