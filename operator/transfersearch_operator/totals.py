"""What a search's trials spent on the target, against what the spec allows.

Summed over the finished trials' summaries (never accumulated from events, like the
rest of the status), so the status's `evaluations` column reads e.g. 120/150.
"""

from __future__ import annotations

from transfersearch_trainer.api.spec import TransferSearchSpec

from .status import TrialResult


def search_budget(spec: TransferSearchSpec) -> int | None:
    """Target evaluations all trials together may spend; None when uncapped.

    Under protocol search each trial is one search of evaluation.budget; under paper
    the cap is training.targetEvaluations per trial (the evaluation searches after
    training are free benchmark queries, as the paper's protocol has them).
    """
    per_trial = (
        spec.evaluation.budget
        if spec.transfer.protocol == "search"
        else spec.training.target_evaluations
    )
    return None if per_trial is None else per_trial * spec.training.seeds


def evaluations_spent(
    spec: TransferSearchSpec, results: list[TrialResult]
) -> tuple[int, int | None]:
    """(target evaluations the finished trials report, the search's budget)."""
    done = sum(r.evaluations or 0 for r in results if r.status == "Succeeded")
    return done, search_budget(spec)
