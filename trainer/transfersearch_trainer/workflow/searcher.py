"""One search of a manifest's target with an agent in hand (protocol search).

The trial pod and `transfersearch run` hold an `Agent` (pulled, or pretrained moments
ago): this runs `workflow.search.run_agent_search` with it and names the agent in the
report by where it really lives (its store URI or folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.workflow.search import SearchRequest, run_agent_search
from transfersearch_trainer.workflow.workspace import Workspace


@dataclass(frozen=True)
class Searcher:
    """The agent that searches and where it came from (None for scratch)."""

    agent: Agent | None
    uri: str | None  # the store URI or folder it was pulled from or pushed to
    pretrained_here: bool = False

    def to_dict(self) -> dict[str, Any] | None:
        if self.agent is None:
            return None
        return {
            "uri": self.uri,
            "digest": f"sha256:{self.agent.digest}" if self.agent.digest else None,
            "task": self.agent.task,
            "tasks": list(self.agent.training.get("tasks") or []) or None,
            "steps": self.agent.steps,
            "pretrained_here": self.pretrained_here,
        }


def search_once(
    ws: Workspace,
    spec: TransferSearchSpec,
    searcher: Searcher,
    seed: int,
    mode: str | None = None,
) -> dict[str, Any]:
    """One search with this agent; its report, the agent named by where it lives.

    For scratch the searcher is an untrained agent of the same shape (the workspace's
    hyperparameters when there is no agent). `mode` overrides spec.transfer.mode (the
    local run's scratch reference).
    """
    mode = mode or spec.transfer.mode
    agent = searcher.agent
    if agent is None or mode == "scratch":
        agent = Agent.new(ws.bench.space, agent.hp if agent is not None else ws.hp, seed)
    request = SearchRequest(
        task=spec.target.task,
        budget=spec.evaluation.budget,
        mode=mode,
        seed=seed,
        parallel=spec.evaluation.parallel,
        device=str(ws.device),
    )
    with ws.reporter.task(f"{mode} search on {spec.target.task}", 1) as tick:
        report = run_agent_search(ws.bench, request, agent)
        tick(1, {"best": report["best_metric"], "rank": report["rank"]})
    report["agent"] = None if mode == "scratch" else searcher.to_dict()
    return report
