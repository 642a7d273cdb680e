"""The transfer matrix's figures (matplotlib, headless)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from transfersearch_trainer.study.analysis import normalised


def plot_report(a: dict[str, Any], out: Path) -> None:
    """Heatmaps of gain and of training-time reduction, learning curves, the honest plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = a["settings"]["tasks"]
    b = a["summary"]["budget"]
    fine = {(p["source"], p["target"]): p for p in a["pairs"] if p["mode"] == "finetune"}

    def gain(p: dict[str, Any]) -> float | None:
        return float(p["gain"][b][0])

    def speedup(p: dict[str, Any]) -> float | None:
        v = p["reduction"]["updates"]
        return None if v is None else float(v)

    heatmaps = (
        ("gain_heatmap.png", gain, f"fine-tuning gain over scratch (budget {b})", "{:+.3f}"),
        ("reduction_heatmap.png", speedup, "training-time reduction (updates)", "{:.2f}x"),
    )
    for name, value, title, fmt in heatmaps:
        grid = np.full((len(tasks), len(tasks)), np.nan)
        labels = [["" for _ in tasks] for _ in tasks]
        for i, t in enumerate(tasks):
            for j, src in enumerate(tasks):
                p = fine.get((src, t))
                v = value(p) if p else None
                if v is not None:
                    labels[i][j] = "inf" if math.isinf(v) else fmt.format(v)
                    grid[i, j] = min(v, 10.0) if math.isinf(v) else v
        fig, ax = plt.subplots(figsize=(1.4 * len(tasks) + 2, 1.1 * len(tasks) + 1.5))
        im = ax.imshow(grid, cmap="RdYlGn")
        ax.set_xticks(range(len(tasks)), tasks, rotation=35, ha="right")
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_xlabel("source")
        ax.set_ylabel("target")
        for i in range(len(tasks)):
            for j in range(len(tasks)):
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8)
        fig.colorbar(im, ax=ax)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    _curve_plots(a, out, plt)
    _honest_plot(a, out, plt)


def _curve_plots(a: dict[str, Any], out: Path, plt: Any) -> None:
    cells_dir = out / "cells"
    curves: dict[tuple[str, str, str], list[list[dict[str, Any]]]] = defaultdict(list)
    for path in cells_dir.glob("*.json"):
        r = json.loads(path.read_text())
        c = r["cell"]
        if c["kind"] == "scratch":
            curves[(c["target"], "scratch", "")].append(r["curve"])
        elif c["kind"] == "transfer" and c["mode"] == "finetune":
            curves[(c["target"], f"from {c['source']}", "")].append(r["curve"])
    for t in a["settings"]["tasks"]:
        fig, ax = plt.subplots(figsize=(7, 4))
        for (tgt, name, _), runs in sorted(curves.items()):
            if tgt != t or not runs:
                continue
            n = min(len(r) for r in runs)
            xs = [runs[0][i]["updates"] for i in range(n)]
            ys = [float(np.mean([normalised(r[i]) for r in runs])) for i in range(n)]
            ax.plot(
                xs,
                ys,
                marker="o",
                markersize=3,
                label=name,
                linewidth=2.5 if name == "scratch" else 1.2,
            )
        ax.set_xlabel("learner updates on the target")
        ax.set_ylabel("normalised greedy score (mean over seeds)")
        ax.set_title(f"{t}: scratch vs fine-tuned from each source")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"curves_{t}.png", dpi=100)
        plt.close(fig)


def _honest_plot(a: dict[str, Any], out: Path, plt: Any) -> None:
    rows = a["summary"]["honest"]
    if not rows:
        return
    tasks = a["settings"]["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks, strict=True):
        mine = [r for r in rows if r["target"] == t]
        totals = [r["total"] for r in mine]
        for key, label in (
            ("agent_metric", "best agent"),
            ("local", "local"),
            ("evolution", "evolution"),
            ("random", "random"),
            ("source_top", "best source top-k"),
        ):
            ys = [r.get(key, math.nan) for r in mine]
            ax.plot(
                totals, ys, marker="o", label=label, linewidth=2.5 if key == "agent_metric" else 1
            )
        ax.set_xscale("log")
        ax.set_title(t)
        ax.set_xlabel("total target evaluations")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean best-found metric")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "honest.png", dpi=100)
    plt.close(fig)
