"""The leave-one-task-out study's figures, from the summary rows alone (no cells needed).

* ``curves-b<B>.png``: best found against evaluations per target at the largest budget;
  agents with a 95% band over pretraining seeds, baselines with one over searches;
* ``wins.png``: per budget, agent-online against each baseline and target: win, tie or
  loss (the rule of `loto_report.versus`);
* ``avg-rank.png``: each method's average rank over targets, one bar per budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transfersearch_trainer.study.loto import LotoSettings
from transfersearch_trainer.study.loto_report import average_ranks, is_single_source, versus_cells

AGENT_STYLE = {"agent-online": "C3", "agent-zero-shot": "C1", "agent-scratch": "C7"}
Z95 = 1.96


def plot_study(rows: list[dict[str, Any]], s: LotoSettings, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [_curves(rows, s, out, plt), _wins(rows, s, out, plt), _ranks(rows, s, out, plt)]
    return [p for p in paths if p is not None]


def _save(fig: Any, path: Path, plt: Any, rect: tuple[float, ...] | None = None) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _band(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(curves, dtype=np.float64)
    mean = arr.mean(axis=0)
    half = Z95 * arr.std(axis=0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else 0 * mean
    return mean, half


def _curves(rows: list[dict[str, Any]], s: LotoSettings, out: Path, plt: Any) -> Path | None:
    budget = max(s.budgets)
    targets = [
        t for t in s.targets if any(r["target"] == t and r["budget"] == budget for r in rows)
    ]
    if not targets:
        return None
    cols = min(4, len(targets))
    nrows = -(-len(targets) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, t in zip(axes.flat, targets, strict=False):
        cell = [r for r in rows if r["target"] == t and r["budget"] == budget]
        for r in cell:
            m = r["method"]
            if is_single_source(m) or "curve" not in r:
                continue
            x = np.arange(1, len(r["curve"]) + 1)
            if m in AGENT_STYLE:
                mean, half = _band(r.get("seed_curves") or [r["curve"]])
                ax.plot(x, mean, color=AGENT_STYLE[m], lw=2, label=m)
                ax.fill_between(x, mean - half, mean + half, color=AGENT_STYLE[m], alpha=0.2)
            else:
                mean = np.asarray(r["curve"])
                half = Z95 * np.asarray(r.get("curve_se") or np.zeros_like(mean))
                (line,) = ax.plot(x, mean, lw=1, ls="--", label=m)
                ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.1)
        best = [r["curve"][-1] for r in cell if "curve" in r]
        if best:  # the interesting range: from the worst final best to a bit above the best
            lo, hi = min(best), max(best)
            pad = max(hi - lo, 1e-6)
            ax.set_ylim(lo - 1.5 * pad, hi + 0.3 * pad)
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("evaluations")
    for ax in list(axes.flat)[len(targets) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle(f"{s.space}: best found vs evaluations (budget {budget}; 95% bands)")
    return _save(fig, out / f"curves-b{budget}.png", plt, rect=(0, 0.08, 1, 0.96))


def _wins(rows: list[dict[str, Any]], s: LotoSettings, out: Path, plt: Any) -> Path | None:
    budgets = [b for b in s.budgets if any(r["budget"] == b for r in rows)]
    baselines = sorted({r["method"] for r in rows if not r["method"].startswith("agent-")})
    if not budgets or not baselines:
        return None
    fig, axes = plt.subplots(
        1, len(budgets), figsize=(3.2 * len(budgets) + 1, 0.4 * len(baselines) + 2), squeeze=False
    )
    for ax, b in zip(axes.flat, budgets, strict=True):
        grid = np.full((len(baselines), len(s.targets)), np.nan)
        for (m, t), outcome in versus_cells(rows, "agent-online", b).items():
            if m in baselines and t in s.targets:
                grid[baselines.index(m), s.targets.index(t)] = outcome
        ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(s.targets)), [t[:8] for t in s.targets], rotation=60, fontsize=7)
        ax.set_yticks(range(len(baselines)), baselines if ax is axes.flat[0] else [], fontsize=7)
        ax.set_title(f"B={b}", fontsize=9)
    fig.suptitle(f"{s.space}: agent-online vs each baseline (green win, yellow tie, red loss)")
    return _save(fig, out / "wins.png", plt)


def _ranks(rows: list[dict[str, Any]], s: LotoSettings, out: Path, plt: Any) -> Path | None:
    per_budget = {b: average_ranks(rows, b) for b in s.budgets}
    methods = sorted(
        {m for r in per_budget.values() for m in r},
        key=lambda m: per_budget[max(s.budgets)].get(m, 1e9),
    )
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(methods) * len(s.budgets) / 2 + 1.5))
    height = 0.8 / len(s.budgets)
    y = np.arange(len(methods))
    for i, b in enumerate(s.budgets):
        vals = [per_budget[b].get(m, np.nan) for m in methods]
        ax.barh(y + i * height, vals, height, label=f"B={b}")
    ax.set_yticks(y + 0.4 - height / 2, methods, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("average rank over targets (lower is better)")
    ax.legend(fontsize=8)
    ax.set_title(f"{s.space}: average rank per budget")
    return _save(fig, out / "avg-rank.png", plt)
