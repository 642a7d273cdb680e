"""What a committed study says about one target: read from its summary.csv.

The demo and a local search print this beside their own result, because one search is
one draw: the study's means over pretraining seeds and searches are what to expect.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.study.loto_report import average_ranks

AGENTS = ("agent-online", "agent-zero-shot")


def read_summary(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["budget"] = int(r["budget"])
        for k in ("mean", "stderr", "mean_rank", "regret"):
            r[k] = float(r[k])
    return rows


def study_lines(path: Path, target: str, budget: int) -> list[str]:
    """Plain-text lines on `target` at `budget` (none when the study has no such cell)."""
    if not path.is_file():
        return []
    rows = read_summary(path)
    cell = {r["method"]: r for r in rows if r["target"] == target and r["budget"] == budget}
    if not cell:
        return []
    ranks = average_ranks(rows, budget)
    order = list(ranks)
    best = max((r for m, r in cell.items() if not m.startswith("agent-")), key=lambda r: r["mean"])
    lines = [f"What the study ({path}) says about {target} at budget {budget}:"]
    for m in AGENTS:
        if m in cell:
            r = cell[m]
            lines.append(
                f"  {m}: mean best {fmt(r['mean'])} ± {fmt(r['stderr'])} (mean rank "
                f"{r['mean_rank']:.1f}, n={r['n']} pretraining seeds); average rank over "
                f"targets {ranks[m]:.2f}, {order.index(m) + 1} of {len(order)} methods"
            )
    lines.append(
        f"  best baseline here: {best['method']} {fmt(best['mean'])} ± {fmt(best['stderr'])} "
        f"(mean rank {best['mean_rank']:.1f})"
    )
    return lines
