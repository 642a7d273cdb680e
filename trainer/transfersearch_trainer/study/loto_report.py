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
from transfersearch_trainer.search.runner import build_methods, transfer_context
from transfersearch_trainer.search.stats import fmt, mean_rank
from transfersearch_trainer.study.loto import LotoSettings, agent_rows

COLUMNS = ("space", "target", "budget", "method", "mean", "stderr", "mean_rank", "regret", "n")
BASELINE_SEED = 1000  # disjoint from the agents' search seeds 0..searches-1


def baseline_rows(bench: Benchmark, s: LotoSettings) -> list[dict[str, Any]]:
    rows = []
    n = s.seeds * s.searches
    for t in s.targets:
        ctx = transfer_context(bench, t)
        values = bench.metric(t)
        for b in s.budgets:
            for method in build_methods("all", ctx.sources):
                if method.name.startswith("source-top-k"):
                    continue  # one per source; multi-top-k is the prior over all of them
                runs = run_searches(method, ctx, values, t, b, n, BASELINE_SEED)
                best = np.asarray(runs.best, dtype=np.float64)
                spread = 0.0 if method.deterministic else float(best.std(ddof=1) / np.sqrt(n))
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
                    }
                )
    return rows


def summarize_study(
    cells: dict[str, dict[str, Any]], s: LotoSettings, bench: Benchmark
) -> list[dict[str, Any]]:
    rows = agent_rows(cells, s) + baseline_rows(bench, s)
    for r in rows:
        r["space"] = s.space
        r["regret"] = float(bench.metric(r["target"]).max()) - r["mean"]
    return rows


def average_ranks(rows: list[dict[str, Any]], budget: int) -> dict[str, float]:
    """Each method's rank by mean best within each target at `budget`, averaged over targets."""
    per_method: dict[str, list[float]] = {}
    for t in sorted({r["target"] for r in rows}):
        cell = [r for r in rows if r["target"] == t and r["budget"] == budget]
        ranks = rankdata([-r["mean"] for r in cell], method="average")
        for r, rank in zip(cell, ranks, strict=True):
            per_method.setdefault(r["method"], []).append(float(rank))
    return {
        m: float(np.mean(v)) for m, v in sorted(per_method.items(), key=lambda kv: np.mean(kv[1]))
    }


def versus(rows: list[dict[str, Any]], agent: str, budget: int) -> dict[str, list[int]]:
    """Per baseline: [wins, ties, losses] of `agent` over targets (tie: within one SE of both)."""
    out: dict[str, list[int]] = {}
    for t in sorted({r["target"] for r in rows}):
        cell = {r["method"]: r for r in rows if r["target"] == t and r["budget"] == budget}
        if agent not in cell:
            continue
        a = cell[agent]
        for m, r in cell.items():
            if m.startswith("agent-"):
                continue
            margin = max(a["stderr"] + r["stderr"], 1e-12)
            wtl = out.setdefault(m, [0, 0, 0])
            diff = a["mean"] - r["mean"]
            wtl[0 if diff > margin else 2 if diff < -margin else 1] += 1
    return out


def write_summary(rows: list[dict[str, Any]], s: LotoSettings, out: Path) -> Path:
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    (out / "summary.json").write_text(json.dumps({"settings": s.to_dict(), "rows": rows}, indent=1))
    path = out / "summary.md"
    path.write_text(markdown(rows, s))
    return path


def markdown(rows: list[dict[str, Any]], s: LotoSettings) -> str:
    lines = [
        f"# Leave-one-task-out study, {s.space}",
        "",
        f"Agents: pretrained on the other tasks ({s.updates} updates, {s.seeds} seeds), "
        f"{s.searches} searches per seed and budget; baselines: {s.seeds * s.searches} "
        "searches (deterministic ones once). Cells: mean best found ± SE (mean rank of the "
        "best found; 1 = the target's optimum).",
        "",
    ]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for b in s.budgets:
        lines += [f"## Budget {b}", ""]
        lines.append("| method | " + " | ".join(s.targets) + " | avg rank |")
        lines.append("|---" * (len(s.targets) + 2) + "|")
        ranks = average_ranks(rows, b)
        for m in sorted(methods, key=lambda m: ranks.get(m, 1e9)):
            cells = []
            for t in s.targets:
                r = next(
                    (r for r in rows if r["method"] == m and r["target"] == t and r["budget"] == b),
                    None,
                )
                cells.append(
                    ""
                    if r is None
                    else f"{fmt(r['mean'])} ±{fmt(r['stderr'])} ({r['mean_rank']:.1f})"
                )
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
    return "\n".join(lines) + "\n"
