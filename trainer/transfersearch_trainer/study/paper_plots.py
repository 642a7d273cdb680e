"""The paper-protocol study's figures (matplotlib, headless), from the analysis alone.

* ``final_score.png``: per regime, the source x target matrix of mean final score
  (diagonal: scratch), the paper's final-performance figure;
* ``gain.png``: the same matrices as gain over scratch;
* ``time_to_reference.png``: updates to reach the reference as a fraction of scratch's
  (diagonal 1; grey: not reached), the paper's training-time figure;
* ``curves_<target>.png``: mean learning curves on each target, with the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transfersearch_trainer.study.paper import REGIME_NAMES, REGIMES


@dataclass(frozen=True)
class Heatmap:
    """One figure: a source x target matrix per regime."""

    file: str
    title: str
    value: Callable[[dict[str, Any]], float | None]  # a pair's number (None: not reached)
    diagonal: Callable[[str], float]  # scratch's number on a task
    label: str  # format of the number written in a cell
    cmap: str
    centred: bool = False  # zero in the middle of the colour scale (a gain)


def plot_paper(a: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scratch = a["scratch"]

    def fraction(p: dict[str, Any]) -> float | None:
        mine, ref = p["time"], scratch[p["target"]]["time"]
        if mine is None or ref is None:
            return None
        return mine["updates"] / ref["updates"] if ref["updates"] > 0 else None

    figures = (
        Heatmap(
            "final_score.png",
            "final score (normalised)",
            lambda p: p["final"][0],
            lambda t: scratch[t]["final"][0],
            "{:.3f}",
            "viridis",
        ),
        Heatmap(
            "gain.png",
            "gain over scratch",
            lambda p: p["gain"][0],
            lambda t: 0.0,
            "{:+.3f}",
            "RdYlGn",
            centred=True,
        ),
        Heatmap(
            "time_to_reference.png",
            "updates to the reference / scratch's",
            fraction,
            lambda t: 1.0,
            "{:.2f}",
            "RdYlGn_r",
        ),
    )
    paths = [_heatmaps(a, out, h, plt) for h in figures]
    return paths + [_curves(a, out, t, plt) for t in a["settings"]["tasks"] if t in scratch]


def _heatmaps(a: dict[str, Any], out: Path, h: Heatmap, plt: Any) -> Path:
    tasks = a["settings"]["tasks"]
    n = len(tasks)
    grids, labels = [], []
    for regime in REGIMES:
        pairs = {(p["source"], p["target"]): p for p in a["pairs"] if p["regime"] == regime}
        grid = np.full((n, n), np.nan)
        text = [["" for _ in tasks] for _ in tasks]
        for i, src in enumerate(tasks):
            for j, tgt in enumerate(tasks):
                p = pairs.get((src, tgt))
                if src == tgt:
                    v = h.diagonal(tgt) if tgt in a["scratch"] else None
                else:
                    v = h.value(p) if p else None
                if p is not None and v is None:
                    text[i][j] = "n.r."  # not reached
                elif v is not None:
                    grid[i, j], text[i][j] = v, h.label.format(v)
        grids.append(grid)
        labels.append(text)
    finite = np.concatenate([g[np.isfinite(g)] for g in grids])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if h.centred:
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    fig, axes = plt.subplots(1, len(REGIMES), figsize=(4.2 * len(REGIMES), 0.8 * n + 2.4))
    for ax, regime, grid, text in zip(axes, REGIMES, grids, labels, strict=True):
        ax.imshow(np.ma.masked_invalid(grid), cmap=h.cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set_facecolor("0.85")  # not reached or missing
        ax.set_xticks(range(n), [t[:12] for t in tasks], rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(n), [t[:12] for t in tasks] if ax is axes[0] else [], fontsize=8)
        ax.set_xlabel("target")
        for i in range(n):
            for j in range(n):
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
        ax.set_title(REGIME_NAMES[regime], fontsize=9)
    axes[0].set_ylabel("source (diagonal: scratch)")
    fig.suptitle(f"{a['settings']['space']}: {h.title}")
    fig.tight_layout()
    fig.savefig(out / h.file, dpi=100)
    plt.close(fig)
    return out / h.file


def _curves(a: dict[str, Any], out: Path, target: str, plt: Any) -> Path:
    ref = a["scratch"][target]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p["updates"] for p in ref["curve"]]
    ax.plot(xs, [p["score"] for p in ref["curve"]], lw=2.5, color="k", label="scratch")
    style = {"finetune": "-", "retrain": "--"}  # colour: the source; line: the regime
    tasks = a["settings"]["tasks"]
    for p in a["pairs"]:
        if p["target"] == target and p["regime"] in style:
            ax.plot(
                [q["updates"] for q in p["curve"]],
                [q["score"] for q in p["curve"]],
                ls=style[p["regime"]],
                color=f"C{tasks.index(p['source']) % 10}",
                marker="o",
                markersize=2.5,
                lw=1.2,
                label=f"{REGIME_NAMES[p['regime']]} from {p['source']}",
            )
    ax.axhline(ref["reference"], color="k", lw=0.8, ls=":", label="reference")
    ax.set_xlabel("learner updates on the target")
    ax.set_ylabel("normalised greedy score (mean over seeds)")
    ax.set_title(f"{target}: scratch vs pretrained agents")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / f"curves_{target}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
