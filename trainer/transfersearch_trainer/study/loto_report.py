"""The leave-one-task-out study's summary: agents beside every baseline, per target and budget.

Baselines run here (numpy, seconds) with the same sources as the agent (all tasks but
the target), `seeds x searches` searches each, so they are measured as often as an
agent's searches. `summary.csv` has exactly the columns
``space,target,budget,method,mean,stderr,mean_rank,regret,n``: for agents `stderr` is
over pretraining seeds (n = seeds), for baselines over searches (n = searches;
deterministic methods 0). The rank of a best found and the regret read the target's
table *after* the searches, for reporting only.

The average rank of a method (NAS-Bench-Suite style) ranks the methods by mean best
found within each (target, budget) cell, ties sharing the mean of their ranks, and
averages over targets.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import run_searches
from transfersearch_trainer.search.runner import comparison_methods, transfer_context
from transfersearch_trainer.search.stats import fmt, mean_rank
from transfersearch_trainer.study.loto import LotoSettings, agent_rows

# RoBoT (He et al., ICLR 2024), Table: mean rank of the best architecture after 100 queries
# on TransNAS-Bench-101 (final-epoch validation metrics as NASLib reads them). Other
# people's runs under their own protocol; quoted for orientation only.
ROBOT_RANKS: dict[str, dict[str, dict[str, float]]] = {
    "micro": {
        "RoBoT": {
            "class_scene": 2,
            "class_object": 1,
            "jigsaw": 17,
            "room_layout": 17,
            "segmentsemantic": 4,
            "normal": 8,
            "autoencoder": 66,
        },
        "REA": {
            "class_scene": 26,
            "class_object": 23,
            "jigsaw": 24,
            "room_layout": 28,
            "segmentsemantic": 22,
            "normal": 22,
            "autoencoder": 18,
        },
    },
    "macro": {
        "RoBoT": {
            "class_scene": 1,
            "class_object": 6,
            "jigsaw": 3,
            "room_layout": 6,
            "segmentsemantic": 2,
            "normal": 2,
            "autoencoder": 5,
        },
    },
}

COLUMNS = ("space", "target", "budget", "method", "mean", "stderr", "mean_rank", "regret", "n")
BASELINE_SEED = 1000  # disjoint from the agents' search seeds 0..searches-1


def baseline_rows(bench: Benchmark, s: LotoSettings) -> list[dict[str, Any]]:
    rows = []
    n = s.seeds * s.searches
    for t in s.targets:
        ctx = transfer_context(bench, t, s.sources(bench.tasks, t))
        values = bench.metric(t)
        for b in s.budgets:
            for method in comparison_methods(ctx.sources):
                runs = run_searches(method, ctx, values, t, b, n, BASELINE_SEED)
                best = np.asarray(runs.best, dtype=np.float64)
                spread = 0.0 if method.deterministic else float(best.std(ddof=1) / np.sqrt(n))
                curve_se = (
                    np.zeros(b)
                    if method.deterministic
                    else runs.trajectory.std(axis=0, ddof=1) / np.sqrt(n)
                )
                rows.append(
                    {
                        "target": t,
                        "budget": b,
                        "method": method.name,
                        "mean": float(best.mean()),
                        "stderr": spread,
                        "mean_rank": mean_rank(values, runs.best),
                        "hit_rate": float(np.mean(best >= values.max())),
                        "n": 1 if method.deterministic else n,
                        "curve": [float(x) for x in runs.trajectory.mean(axis=0)],
                        "curve_se": [float(x) for x in curve_se],
                    }
                )
    return rows


def summarize_study(
    cells: dict[str, dict[str, Any]], s: LotoSettings, bench: Benchmark
) -> list[dict[str, Any]]:
    rows = agent_rows(cells, s, bench.tasks) + baseline_rows(bench, s)
    for r in rows:
        r["space"] = s.space
        r["regret"] = float(bench.metric(r["target"]).max()) - r["mean"]
    return rows


def is_single_source(method: str) -> bool:
    return method.startswith("agent-source:")


def average_ranks(rows: list[dict[str, Any]], budget: int) -> dict[str, float]:
    """Each method's rank by mean best within each target at `budget`, averaged over targets.

    Single-source agents are left out: each target has a different six of them (a task is
    never its own source), so their average would be over different cells."""
    per_method: dict[str, list[float]] = {}
    for t in sorted({r["target"] for r in rows}):
        cell = [
            r
            for r in rows
            if r["target"] == t and r["budget"] == budget and not is_single_source(r["method"])
        ]
        ranks = rankdata([-r["mean"] for r in cell], method="average")
        for r, rank in zip(cell, ranks, strict=True):
            per_method.setdefault(r["method"], []).append(float(rank))
    return {
        m: float(np.mean(v)) for m, v in sorted(per_method.items(), key=lambda kv: np.mean(kv[1]))
    }


def versus_cells(rows: list[dict[str, Any]], agent: str, budget: int) -> dict[tuple[str, str], int]:
    """(baseline, target) -> +1 win, 0 tie, -1 loss of `agent` (tie: within one SE of both)."""
    out: dict[tuple[str, str], int] = {}
    for t in sorted({r["target"] for r in rows}):
        cell = {r["method"]: r for r in rows if r["target"] == t and r["budget"] == budget}
        if agent not in cell:
            continue
        a = cell[agent]
        for m, r in cell.items():
            if m.startswith("agent-"):
                continue
            margin = max(a["stderr"] + r["stderr"], 1e-12)
            diff = a["mean"] - r["mean"]
            out[(m, t)] = 1 if diff > margin else -1 if diff < -margin else 0
    return out


def versus(rows: list[dict[str, Any]], agent: str, budget: int) -> dict[str, list[int]]:
    """Per baseline: [wins, ties, losses] of `agent` over targets (tie: within one SE of both)."""
    out: dict[str, list[int]] = {}
    for (m, _), outcome in versus_cells(rows, agent, budget).items():
        out.setdefault(m, [0, 0, 0])[1 - outcome] += 1
    return out


def evaluations_to_reach(curve: list[float], score: float) -> int | None:
    """The first evaluation count whose mean best-so-far reaches `score` (None: never)."""
    hit = np.flatnonzero(np.asarray(curve) >= score - 1e-9)
    return int(hit[0]) + 1 if hit.size else None


def roi(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Per target and agent: evaluations it needs to reach the best baseline's mean best at
    `budget`, i.e. trainings saved against the best baseline (negative or None: none saved)."""
    out = []
    for t in dict.fromkeys(r["target"] for r in rows):  # in the rows' order
        cell = [r for r in rows if r["target"] == t and r["budget"] == budget]
        baselines = [r for r in cell if not r["method"].startswith("agent-")]
        if not baselines:
            continue
        best = max(baselines, key=lambda r: r["mean"])
        for r in cell:
            if not r["method"].startswith("agent-") or is_single_source(r["method"]):
                continue
            n = evaluations_to_reach(r["curve"], best["mean"])
            out.append(
                {
                    "target": t,
                    "budget": budget,
                    "method": r["method"],
                    "best_baseline": best["method"],
                    "best_baseline_mean": best["mean"],
                    "baseline_evaluations": evaluations_to_reach(best["curve"], best["mean"]),
                    "evaluations": n,
                    "saved": None if n is None else budget - n,
                    "device_seconds": r.get("device_seconds"),
                }
            )
    return out


CURVES = ("curve", "curve_se", "seed_curves")  # per evaluation: the plots and the pack hold them


def summary_json(
    rows: list[dict[str, Any]], s: LotoSettings, returns: list[dict[str, Any]]
) -> dict[str, Any]:
    """The summary's rows without their per-evaluation curves (megabytes for a full study;
    the plots draw them and the cells pack keeps every search's steps)."""
    slim = [{k: v for k, v in r.items() if k not in CURVES} for r in rows]
    return {"settings": s.to_dict(), "rows": slim, "roi": returns}


def write_summary(rows: list[dict[str, Any]], s: LotoSettings, out: Path) -> Path:
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    returns = [x for b in s.budgets for x in roi(rows, b)]
    (out / "summary.json").write_text(json.dumps(summary_json(rows, s, returns), indent=1))
    path = out / "summary.md"
    path.write_text(markdown(rows, s))
    return path


def _cell_text(rows: list[dict[str, Any]], method: str, target: str, budget: int) -> str:
    r = next(
        (
            r
            for r in rows
            if r["method"] == method and r["target"] == target and r["budget"] == budget
        ),
        None,
    )
    return "" if r is None else f"{fmt(r['mean'])} ±{fmt(r['stderr'])} ({r['mean_rank']:.1f})"


def markdown(rows: list[dict[str, Any]], s: LotoSettings) -> str:
    lines = [
        f"# Leave-one-task-out study, {s.space}",
        "",
        f"Agents: pretrained on the other tasks ({s.updates} updates, {s.seeds} seeds), "
        f"{s.searches} searches per seed and budget; baselines: {s.seeds * s.searches} "
        "searches (deterministic ones once). Cells: mean best found ± SE (mean rank of the "
        "best found; 1 = the target's optimum). Average rank: the method's rank by mean best "
        "within each target, averaged over targets (lower is better).",
        "",
    ]
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if not is_single_source(m)]
    for b in s.budgets:
        lines += [f"## Budget {b}", ""]
        lines.append("| method | " + " | ".join(s.targets) + " | avg rank |")
        lines.append("|---" * (len(s.targets) + 2) + "|")
        ranks = average_ranks(rows, b)
        for m in sorted(methods, key=lambda m: ranks.get(m, 1e9)):
            cells = [_cell_text(rows, m, t, b) for t in s.targets]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {ranks.get(m, float('nan')):.2f} |")
        lines.append("")
        for agent in ("agent-online", "agent-zero-shot"):
            wtl = versus(rows, agent, b)
            if wtl:
                lines.append(
                    f"{agent} vs each baseline over targets (wins/ties/losses, tie = within the "
                    "sum of the two SEs): "
                    + ", ".join(f"{m} {w}/{t}/{lost}" for m, (w, t, lost) in wtl.items())
                )
                lines.append("")
    lines += _roi_lines(rows, s) + _single_source_lines(rows, s) + _reference_lines(rows, s)
    return "\n".join(lines) + "\n"


def _roi_lines(rows: list[dict[str, Any]], s: LotoSettings) -> list[str]:
    lines = [
        "## Evaluations to reach the best baseline",
        "",
        "Per budget B and target: the best baseline's mean best at B, and the evaluations "
        "each agent's mean best-so-far curve needs to reach it (— : not within B). Trainings "
        "saved = B minus that; a user pays one training per evaluation.",
        "",
        "| budget | target | best baseline | its score | "
        + " | ".join(f"agent-{m}" for m in s.modes)
        + " |",
        "|---" * (4 + len(s.modes)) + "|",
    ]
    for b in s.budgets:
        table = roi(rows, b)
        for t in s.targets:
            mine = {r["method"]: r for r in table if r["target"] == t}
            if not mine:
                continue
            first = next(iter(mine.values()))
            counts = []
            for m in s.modes:
                r = mine.get(f"agent-{m}")
                counts.append(
                    "—" if r is None or r["evaluations"] is None else str(r["evaluations"])
                )
            lines.append(
                f"| {b} | {t} | {first['best_baseline']} | {fmt(first['best_baseline_mean'])} | "
                + " | ".join(counts)
                + " |"
            )
    seconds = [
        r["device_seconds"]
        for r in rows
        if r["method"] == "agent-online" and r.get("device_seconds")
    ]
    if seconds:
        lines += [
            "",
            f"Device seconds of the agent's own work per online search (choosing and learning, "
            f"not the trainings it asks for): mean {np.mean(seconds):.2f} s.",
        ]
    return [*lines, ""]


def _single_source_lines(rows: list[dict[str, Any]], s: LotoSettings) -> list[str]:
    single = [r for r in rows if is_single_source(r["method"])]
    if not single:
        return []
    lines = [
        "## Single-source agents",
        "",
        "Each agent pretrained on one task, searching every other target online. Per target "
        "and budget: the best and the worst single-source agent, their mean, and the "
        "leave-one-task-out agent (online) for comparison.",
        "",
        "| budget | target | best single source | worst single source | mean of them "
        "| agent-online |",
        "|---|---|---|---|---|---|",
    ]
    for b in s.budgets:
        for t in s.targets:
            mine = [r for r in single if r["target"] == t and r["budget"] == b]
            if not mine:
                continue
            hi = max(mine, key=lambda r: r["mean"])
            lo = min(mine, key=lambda r: r["mean"])
            lines.append(
                f"| {b} | {t} | {hi['method'].split(':', 1)[1]} {fmt(hi['mean'])} | "
                f"{lo['method'].split(':', 1)[1]} {fmt(lo['mean'])} | "
                f"{fmt(float(np.mean([r['mean'] for r in mine])))} | "
                f"{_cell_text(rows, 'agent-online', t, b)} |"
            )
    return [*lines, ""]


def _reference_lines(rows: list[dict[str, Any]], s: LotoSettings) -> list[str]:
    refs = ROBOT_RANKS.get(s.space, {})
    if 100 not in s.budgets or not refs:
        return []
    ours = sorted(
        {r["method"] for r in rows if r["budget"] == 100 and not is_single_source(r["method"])}
    )
    lines = [
        "## Reference points: mean rank after 100 evaluations",
        "",
        "RoBoT and REA rows are quoted from RoBoT (He et al., ICLR 2024): other people's runs "
        "under their own protocol (their seeds, their search code, final-epoch validation "
        "metrics as NASLib reads them). They orient; they are not a comparison we ran.",
        "",
        "| method | " + " | ".join(s.targets) + " |",
        "|---" * (len(s.targets) + 1) + "|",
    ]
    for name, ranks in refs.items():
        lines.append(
            f"| {name} (quoted) | "
            + " | ".join(f"{ranks.get(t, float('nan')):g}" for t in s.targets)
            + " |"
        )
    for m in ours:
        vals = []
        for t in s.targets:
            r = next(
                (r for r in rows if r["method"] == m and r["target"] == t and r["budget"] == 100),
                None,
            )
            vals.append("" if r is None else f"{r['mean_rank']:.1f}")
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return [*lines, ""]
