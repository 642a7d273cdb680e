"""One search of a manifest's target with an agent in hand (protocol search).

`workflow.search.run_search` takes an agent *location*; the trial pod and
`transfersearch run` hold an `Agent` (pulled, or pretrained moments ago), so this
saves it to a temporary folder, runs the search, and names the agent in the report
by where it really lives (its store URI or folder), not by the temporary copy.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

from transfersearch_trainer.agent.artifact import Agent, save_agent
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.workflow.search import SearchRequest, run_search
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
    """One `run_search` with this agent; its report, the agent named by where it lives.

    `run_search` takes an agent location, so the agent in hand is saved to a temporary
    folder first (for scratch an untrained agent with the workspace's hyperparameters:
    run_search keeps only its shape). `mode` overrides spec.transfer.mode (the local
    run's scratch reference).
    """
    mode = mode or spec.transfer.mode
    agent = searcher.agent or Agent.new(ws.bench.space, ws.hp, seed)
    with tempfile.TemporaryDirectory(prefix="transfersearch-searcher-") as folder:
        digest = save_agent(agent, folder)
        request = SearchRequest(
            task=spec.target.task,
            budget=spec.evaluation.budget,
            mode=mode,
            seed=seed,
            parallel=spec.evaluation.parallel,
            agent=folder,
            digest=digest,
            device=str(ws.device),
        )
        with ws.reporter.task(f"{mode} search on {spec.target.task}", 1) as tick:
            report = run_search(ws.bench, request)
            tick(1, {"best": report["best_metric"], "rank": report["rank"]})
    report["agent"] = None if mode == "scratch" else searcher.to_dict()
    return report
