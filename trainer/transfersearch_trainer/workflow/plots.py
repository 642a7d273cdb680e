"""Learning curves and comparison charts, as CSV (the data) and PNG (for people)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CURVE_FIELDS = (
    "updates",
    "env_steps",
    "task_evaluations",
    "device_seconds",
    "score",
    "normalised_regret",
)


def write_curves_csv(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> None:
    """One row per curve point, the curve's name (e.g. 'finetune s0') in the first column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("agent", *CURVE_FIELDS))
        for name, points in curves.items():
            for p in points:
                writer.writerow((name, *(p[k] for k in CURVE_FIELDS)))


def plot_curves(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    path: Path,
    title: str,
    references: Mapping[str, float] | None = None,
) -> None:
    """Score against learner updates, task evaluations consumed, and device seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = (
        ("updates", "learner updates"),
        ("task_evaluations", "task evaluations in training"),
        ("device_seconds", "device seconds"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, (key, label) in zip(axes, axes_keys, strict=True):
        for name, points in curves.items():
            if points:
                ax.plot(
                    [p[key] for p in points],
                    [p["score"] for p in points],
                    marker="o",
                    markersize=3,
                    label=name,
                )
        for ref_name, value in (references or {}).items():
            ax.axhline(value, linestyle="--", linewidth=1, color="grey")
            ax.annotate(
                ref_name,
                (0.01, value),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                color="grey",
                va="bottom",
            )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean best-found metric (greedy evaluation)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comparison(
    rows: Sequence[tuple[str, float, float]], path: Path, title: str, optimum: float
) -> None:
    """Bar chart of mean best-found metric with 95% intervals, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4))
    names = [r[0] for r in rows]
    ax.bar(names, [r[1] for r in rows], yerr=[r[2] for r in rows], capsize=4, color="#4878a8")
    ax.axhline(optimum, linestyle="--", color="black", linewidth=1, label="task optimum")
    low = min(r[1] - r[2] for r in rows)
    ax.set_ylim(low - 0.25 * (optimum - low + 1e-9), optimum + 0.1 * (optimum - low + 1e-9))
    ax.set_ylabel("mean best-found metric")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=25)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
