"""The paper-protocol study's cells into its figures' numbers and its two claims, as plain data.

Units: scores are normalised (1 = the target's optimum, 0 = its median architecture) on
the raw table, so they mean the same on every target. Intervals are 95% Student t
intervals over seeds, since training is what varies between agents.

* *Reference*: scratch's mean final score on the target (as in the paper: the scratch
  agent trained for as long as the pretraining).
* *Gain*: a regime's mean final score minus scratch's, with a Welch 95% interval of the
  difference (the two are separate trainings, not pairs: seed k of a source agent has
  nothing in common with seed k of scratch on the target).
* *Time to reach the reference*: on the mean curve over seeds (curve points sit at the
  same updates in every seed of a regime), the *first* point at or above the reference,
  in updates, distinct target queries and training seconds on the target; pretraining
  is not counted (the source agent serves every target). None: not reached. A point at
  0 updates is the agent as it is (the queries of its actors' first starts and the
  learner's set-up are not training): time 0, as for zero-shot. Scratch's own time is
  that of its mean curve, whose last point is the reference.
* *Speed-up*: scratch's time over the regime's (inf: there before its first update).

The two claims, computed: (1) "pretraining helps final performance in all but one
target": per target, the best (source, regime) by mean gain, and whether its gain is
above zero beyond its interval; holds when that is so for all targets but at most one.
(2) "training time is shortened significantly": per (source, target) pair, the fastest
pretrained regime's speed-up in updates; holds when more than half the pairs reach the
reference at least `SIGNIFICANT` times faster than scratch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transfersearch_trainer.search.stats import mean_ci, t95
from transfersearch_trainer.study.matrix import Cell
from transfersearch_trainer.study.paper import REGIMES, PaperSettings

KEYS = ("updates", "queries", "seconds")  # the units of time to reach the reference
SIGNIFICANT = 2.0  # claim 2: "significantly shorter" is at least this speed-up in updates
TOLERANCE = 1e-9  # "at or above": a mean of the same numbers may differ in the last bit


def mean_curve(curves: list[list[dict[str, Any]]]) -> list[dict[str, float]]:
    """Point-wise mean over seeds of the points every curve has (score and the time keys)."""
    n = min(len(c) for c in curves)
    return [
        {k: float(np.mean([c[i][k] for c in curves])) for k in (*KEYS, "score")} for i in range(n)
    ]


def time_to_reach(curve: list[dict[str, Any]], reference: float) -> dict[str, float] | None:
    """Updates, queries and seconds at the first point at or above `reference` (None: never)."""
    for p in curve:
        if p["score"] >= reference - TOLERANCE:
            if p["updates"] <= 0:  # the agent as it is, before any training: no time at all
                return {k: 0.0 for k in KEYS}
            return {k: float(p[k]) for k in KEYS}
    return None


def speedup(
    scratch: dict[str, float] | None, mine: dict[str, float] | None
) -> dict[str, float | None]:
    """Scratch's time over this agent's, per unit (inf: reached before any; None: not reached)."""
    out: dict[str, float | None] = {}
    for k in KEYS:
        if scratch is None or mine is None:
            out[k] = None
        else:
            out[k] = math.inf if mine[k] <= 0 else scratch[k] / mine[k]
    return out


def difference_ci(a: list[float], b: list[float]) -> tuple[float, float]:
    """mean(a) - mean(b) and the half-width of its Welch 95% interval (nan below 2 each)."""
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff, t95(max(1, math.floor(df))) * se  # whole df, rounded down: wider, not narrower


def beyond(gain: tuple[float, float] | list[float]) -> bool:
    """Above zero by more than its interval (an unknown interval, one seed: no)."""
    return bool(gain[1] == gain[1] and gain[0] - gain[1] > 0)


def _records(cells: dict[str, dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    return [cells[i] for i in ids if i in cells]


def _finals(records: list[dict[str, Any]], key: str = "score") -> list[float]:
    return [float(r["final"][key]) for r in records]


def analyse(cells: dict[str, dict[str, Any]], s: PaperSettings) -> dict[str, Any]:
    """Every number of the report: scratch per target, every (source, target, regime), claims."""
    seeds = range(s.seeds)
    scratch: dict[str, dict[str, Any]] = {}
    for t in s.tasks:
        recs = _records(cells, [Cell("scratch", t, k).id for k in seeds])
        if not recs:
            continue
        reference, ci = mean_ci(_finals(recs))
        curve = mean_curve([r["curve"] for r in recs])
        scratch[t] = {
            "target": t,
            "seeds": len(recs),
            "final": [reference, ci],
            "metric": list(mean_ci(_finals(recs, "metric"))),
            "finals": _finals(recs),
            "reference": reference,
            "time": time_to_reach(curve, reference),
            "reached_seeds": sum(time_to_reach(r["curve"], reference) is not None for r in recs),
            "shaping": recs[0]["shaping"],
            "curve": curve,
        }
    pairs = []
    for src in s.tasks:
        for tgt in s.tasks:
            if src == tgt or tgt not in scratch:
                continue
            ref = scratch[tgt]
            for regime in REGIMES:
                recs = _records(cells, [Cell("transfer", tgt, k, src, regime).id for k in seeds])
                if not recs:
                    continue
                curve = mean_curve([r["curve"] for r in recs])
                time = time_to_reach(curve, ref["reference"])
                gain = difference_ci(_finals(recs), ref["finals"])
                pairs.append(
                    {
                        "source": src,
                        "target": tgt,
                        "regime": regime,
                        "seeds": len(recs),
                        "updates": int(recs[0]["steps"]),
                        "final": list(mean_ci(_finals(recs))),
                        "metric": list(mean_ci(_finals(recs, "metric"))),
                        "gain": list(gain),
                        "beyond_ci": beyond(gain),
                        "time": time,
                        "reached_seeds": sum(
                            time_to_reach(r["curve"], ref["reference"]) is not None for r in recs
                        ),
                        "speedup": speedup(ref["time"], time),
                        "curve": curve,
                    }
                )
    return {
        "settings": s.to_dict(),
        "scratch": scratch,
        "pairs": pairs,
        "claims": {"final": claim_final(pairs), "time": claim_time(pairs)},
    }


def claim_final(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Claim 1: per target, does the best pretrained (source, regime) beat scratch?"""
    per_target = []
    for t in dict.fromkeys(p["target"] for p in pairs):
        mine = [p for p in pairs if p["target"] == t]
        best = max(mine, key=lambda p: p["gain"][0])
        per_target.append(
            {
                "target": t,
                "best_source": best["source"],
                "best_regime": best["regime"],
                "gain": best["gain"],
                "beyond_ci": best["beyond_ci"],
                "mean_gain_by_regime": {
                    r: float(np.mean([p["gain"][0] for p in mine if p["regime"] == r]))
                    for r in REGIMES
                    if any(p["regime"] == r for p in mine)
                },
            }
        )
    n = len(per_target)
    improved = sum(1 for x in per_target if x["beyond_ci"])
    return {
        "rule": "the best (source, regime) beats scratch beyond its 95% CI on >= targets - 1",
        "targets": n,
        "improved_beyond_ci": improved,
        "improved_mean": sum(1 for x in per_target if x["gain"][0] > 0),
        "holds": n >= 2 and improved >= n - 1,
        "per_target": per_target,
    }


def claim_time(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Claim 2: per pair, how much sooner the fastest pretrained regime reaches the reference."""
    per_pair = []
    for src, tgt in dict.fromkeys((p["source"], p["target"]) for p in pairs):
        mine = [p for p in pairs if (p["source"], p["target"]) == (src, tgt)]
        reached = [p for p in mine if p["speedup"]["updates"] is not None]
        fastest = max(reached, key=lambda p: p["speedup"]["updates"]) if reached else None
        up = fastest["speedup"]["updates"] if fastest else None
        per_pair.append(
            {
                "source": src,
                "target": tgt,
                "regime": fastest["regime"] if fastest else None,
                "speedup": fastest["speedup"] if fastest else {k: None for k in KEYS},
                "significant": up is not None and up >= SIGNIFICANT,
            }
        )
    by_regime = {}
    for r in REGIMES:
        mine = [p for p in pairs if p["regime"] == r]
        by_regime[r] = {
            "pairs": len(mine),
            "reached": sum(1 for p in mine if p["time"] is not None),
            "median_speedup": {
                k: _median([p["speedup"][k] for p in mine if p["speedup"][k] is not None])
                for k in KEYS
            },
        }
    shortened = sum(1 for x in per_pair if x["significant"])
    return {
        "rule": f"the fastest pretrained regime reaches the reference >= {SIGNIFICANT:g}x sooner "
        "(updates) than scratch in more than half the pairs",
        "threshold": SIGNIFICANT,
        "pairs": len(per_pair),
        "shortened": shortened,
        "never_reached": sum(1 for x in per_pair if x["regime"] is None),
        "holds": shortened * 2 > len(per_pair),
        "per_pair": per_pair,
        "by_regime": by_regime,
    }


def _median(values: list[float]) -> float | None:
    """The median, inf allowed (an agent already there counts as the fastest)."""
    return float(np.median(values)) if values else None
