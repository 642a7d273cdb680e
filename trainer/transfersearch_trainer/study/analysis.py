"""Matrix cells into evidence: tables, claims, similarity, source choice, ROI, plots, report.md.

Units: scores are *normalised* (``u = 1 - regret ratio``: 1 at the task's optimum,
0 at its median architecture) so that gains mean the same on every task. A
*gain* is transferred minus scratch, both at the same search budget. Confidence
intervals are over training seeds (Student t, 95%), since training is what varies
between agents; evaluation searches are pooled within a seed.

Time to threshold: the first learning-curve point at which an agent's greedy
score reaches `threshold` x the scratch agent's final score on that target (same
seed); the reduction factor is scratch's time over the transferred agent's, in
learner updates, target evaluations and device seconds. An agent that starts
above the threshold (0 updates) has an infinite factor, reported as such.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import METHODS, run_baseline
from transfersearch_trainer.search.priors import source_top_k
from transfersearch_trainer.search.similarity import (
    probe_architectures,
    similarity_matrix,
    spearman,
)
from transfersearch_trainer.search.stats import mean_ci, summarize
from transfersearch_trainer.study.matrix import MatrixSettings


def normalised(curve_point: dict[str, Any]) -> float:
    return 1.0 - float(curve_point["normalised_regret"])


def time_to_threshold(curve: list[dict[str, Any]], threshold: float, key: str) -> float | None:
    """`key` (updates, task_evaluations, device_seconds) at the first point reaching `threshold`."""
    for point in curve:
        if normalised(point) >= threshold:
            return float(point[key])
    return None


def threshold_for(final_score: float, fraction: float) -> float:
    """`fraction` of a positive final score; a non-positive one must simply be matched."""
    return fraction * final_score if final_score > 0 else final_score


def reduction(scratch_time: float | None, transfer_time: float | None) -> float | None:
    if scratch_time is None or transfer_time is None:
        return None
    if transfer_time <= 0:
        return math.inf
    return scratch_time / transfer_time


@dataclass
class PairStats:
    source: str
    target: str
    mode: str
    score: dict[int, tuple[float, float]]  # budget -> (mean normalised score, ci)
    metric: dict[int, tuple[float, float]]  # budget -> (mean best metric, ci)
    gain: dict[int, tuple[float, float]]  # budget -> (mean gain over scratch, ci)
    reduction: dict[str, float | None]  # updates / task_evaluations / device_seconds
    saved_seconds: float | None
    saved_evaluations: float | None


KEYS = ("updates", "task_evaluations", "device_seconds")


def _score(record: dict[str, Any], budget: int) -> float:
    return 1.0 - float(record["evals"][str(budget)]["normalised_regret"])


def _metric(record: dict[str, Any], budget: int) -> float:
    return float(record["evals"][str(budget)]["mean"])


def _median(values: list[float]) -> float | None:
    finite = sorted(values)
    return float(np.median(finite)) if finite else None


def analyse(
    cells: dict[str, dict[str, Any]], s: MatrixSettings, bench: Benchmark
) -> dict[str, Any]:
    """Every table and summary of the report, as plain data (also written as JSON)."""
    scratch = {
        (r["cell"]["target"], r["cell"]["seed"]): r
        for r in cells.values()
        if r["cell"]["kind"] == "scratch"
    }
    transfer: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    honest: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in cells.values():
        c = r["cell"]
        if c["kind"] == "transfer":
            transfer[(c["source"], c["target"], c["mode"])].append(r)
        elif c["kind"] == "honest":
            honest[(c["source"], c["target"], c["mode"], int(c["cap"]))].append(r)

    pairs: list[PairStats] = []
    for (src, tgt, mode), records in sorted(transfer.items()):
        score, metric, gain = {}, {}, {}
        for b in s.budgets:
            score[b] = mean_ci([_score(r, b) for r in records])
            metric[b] = mean_ci([_metric(r, b) for r in records])
            gain[b] = mean_ci(
                [
                    _score(r, b) - _score(scratch[(tgt, r["cell"]["seed"])], b)
                    for r in records
                    if (tgt, r["cell"]["seed"]) in scratch
                ]
            )
        factors: dict[str, list[float]] = {k: [] for k in KEYS}
        saved_s, saved_e = [], []
        for r in records:
            ref = scratch.get((tgt, r["cell"]["seed"]))
            if ref is None or not ref["curve"]:
                continue
            thr = threshold_for(normalised(ref["curve"][-1]), s.threshold)
            times = {
                k: (time_to_threshold(ref["curve"], thr, k), time_to_threshold(r["curve"], thr, k))
                for k in KEYS
            }
            for k, (ts, tt) in times.items():
                f = reduction(ts, tt)
                if f is not None:
                    factors[k].append(f)
            ts, tt = times["device_seconds"]
            if ts is not None and tt is not None:
                saved_s.append(ts - tt)
            es, et = times["task_evaluations"]
            if es is not None and et is not None:
                saved_e.append(es - et)
        pairs.append(
            PairStats(
                src,
                tgt,
                mode,
                score,
                metric,
                gain,
                {k: _median(v) for k, v in factors.items()},
                _median(saved_s),
                _median(saved_e),
            )
        )

    # baselines at the paper budgets and at every honest total, on the same starts
    stats = {t: bench.stats(t) for t in s.tasks}
    totals = sorted({*s.budgets, s.eval_budget, *(c + s.eval_budget for c in s.caps)})
    baselines: dict[str, dict[str, dict[str, float]]] = {}
    for t in s.tasks:
        baselines[t] = {}
        for b in totals:
            for m in METHODS:
                runs = run_baseline(bench, t, m, b, s.searches, s.eval_seed)
                baselines[t][f"{m}@{b}"] = summarize(runs.best, stats[t]).to_dict()
            for src in s.tasks:
                if src != t:
                    runs = source_top_k(bench, src, t, b, s.searches)
                    baselines[t][f"{src}-top@{b}"] = summarize(runs.best, stats[t]).to_dict()

    honest_rows = []
    for (src, tgt, mode, cap), records in sorted(honest.items()):
        honest_rows.append(
            {
                "source": src,
                "target": tgt,
                "mode": mode,
                "cap": cap,
                "total_evaluations_budget": cap + s.eval_budget,
                "used_evaluations": mean_ci(
                    [float(r["training"]["distinct_evaluations"]) for r in records]
                )[0],
                "metric": mean_ci([_metric(r, s.eval_budget) for r in records]),
                "score": mean_ci([_score(r, s.eval_budget) for r in records]),
            }
        )

    probe = probe_architectures(bench.space.size, s.probe)
    sim = similarity_matrix(bench, s.tasks, probe)
    sim_of = {
        (a, b): float(sim[i, j]) for i, a in enumerate(s.tasks) for j, b in enumerate(s.tasks)
    }
    summary = _claims(pairs, s, sim_of, honest_rows, baselines, stats)
    return {
        "settings": s.to_dict(),
        "pairs": [p.__dict__ for p in pairs],
        "honest": honest_rows,
        "baselines": baselines,
        "similarity": {"probe_size": s.probe, "tasks": list(s.tasks), "matrix": sim.tolist()},
        "summary": summary,
    }


def _claims(
    pairs: list[PairStats],
    s: MatrixSettings,
    sim: dict[tuple[str, str], float],
    honest_rows: list[dict[str, Any]],
    baselines: dict[str, dict[str, dict[str, float]]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    b = 50 if 50 in s.budgets else s.budgets[len(s.budgets) // 2]
    fine = [p for p in pairs if p.mode == "finetune"]
    by_target: dict[str, list[PairStats]] = defaultdict(list)
    for p in fine:
        by_target[p.target].append(p)
    # claim 1: per target, does pretraining on another task improve final performance?
    improved_mean = [t for t, ps in by_target.items() if np.mean([p.gain[b][0] for p in ps]) > 0]
    improved_best = [t for t, ps in by_target.items() if max(p.gain[b][0] for p in ps) > 0]
    # claim 2: training-time reduction (median over pairs and seeds' medians)
    red = {k: [float(v) for p in fine if (v := p.reduction[k]) is not None] for k in KEYS}
    med = {k: (float(np.median(v)) if v else None) for k, v in red.items()}
    # similarity vs gain, across pairs
    gains = [(sim[(p.source, p.target)], p.gain[b][0]) for p in fine]
    sim_gain = spearman([g[0] for g in gains], [g[1] for g in gains]) if len(gains) > 2 else None
    # automatic source choice by similarity, for fine-tuning and for zero-shot
    choice = {}
    for mode in ("finetune", "zero-shot"):
        ps = [p for p in pairs if p.mode == mode]
        per_t: dict[str, list[PairStats]] = defaultdict(list)
        for p in ps:
            per_t[p.target].append(p)
        hits, regrets = 0, []
        picks = {}
        for t, cands in per_t.items():
            chosen = max(cands, key=lambda p: sim[(p.source, t)])
            best = max(cands, key=lambda p: p.score[b][0])
            hits += int(chosen.source == best.source)
            regrets.append(best.score[b][0] - chosen.score[b][0])
            picks[t] = {
                "chosen": chosen.source,
                "best": best.source,
                "regret": best.score[b][0] - chosen.score[b][0],
            }
        choice[mode] = {
            "targets": len(per_t),
            "hits": hits,
            "hit_rate": hits / len(per_t) if per_t else None,
            "mean_regret": float(np.mean(regrets)) if regrets else None,
            "picks": picks,
        }
    # honest protocol: at equal total target evaluations, who wins?
    honest: list[dict[str, Any]] = []
    for t in s.tasks:
        candidates: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for p in pairs:
            if p.target == t and p.mode == "zero-shot" and s.eval_budget in p.metric:
                candidates[s.eval_budget].append(
                    (f"zero-shot from {p.source}", p.metric[s.eval_budget][0])
                )
        for r in honest_rows:
            if r["target"] == t:
                name = "scratch" if r["source"] == "-" else f"finetune from {r['source']}"
                candidates[int(r["total_evaluations_budget"])].append(
                    (f"{name} (cap {r['cap']})", r["metric"][0])
                )
        for total, agents in sorted(candidates.items()):
            name, value = max(agents, key=lambda a: a[1])
            row: dict[str, Any] = {
                "target": t,
                "total": total,
                "agent": name,
                "agent_metric": value,
            }
            for m in METHODS:
                row[m] = baselines[t][f"{m}@{total}"]["mean"]
            row["source_top"] = max(
                (v["mean"] for k, v in baselines[t].items() if k.endswith(f"-top@{total}")),
                default=math.nan,
            )
            best_baseline = max(float(row[k]) for k in (*METHODS, "source_top") if row[k] == row[k])
            row["agent_wins"] = bool(value > best_baseline)
            honest.append(row)
    honest_wins = sum(1 for h in honest if h["agent_wins"])
    return {
        "budget": b,
        "targets": len(by_target),
        "targets_improved_mean_over_sources": len(improved_mean),
        "targets_improved_best_source": len(improved_best),
        "median_reduction": med,
        "reduction_samples": {k: len(v) for k, v in red.items()},
        # pairs already at the threshold when fine-tuning starts: the factor is unbounded
        "reduction_at_start": {k: sum(1 for x in v if math.isinf(x)) for k, v in red.items()},
        "similarity_gain_spearman": sim_gain,
        "auto_choice": choice,
        "honest": honest,
        "honest_agent_wins": honest_wins,
        "honest_cells": len(honest),
    }
