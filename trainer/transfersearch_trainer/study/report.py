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

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transfersearch_trainer.agent.evaluate import source_top_k
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import METHODS, run_baseline
from transfersearch_trainer.search.similarity import (
    probe_architectures,
    similarity_matrix,
    spearman,
)
from transfersearch_trainer.search.stats import summarize
from transfersearch_trainer.study.matrix import MatrixSettings

# two-sided 95% Student t quantiles by degrees of freedom (df > 30: normal)
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t95(df: int) -> float:
    if df <= 0:
        return float("nan")
    if df in _T95:
        return _T95[df]
    if df > 30:
        return 1.96
    lower = max(k for k in _T95 if k < df)
    return _T95[lower]  # conservative: the next smaller df has the wider interval


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan with one value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), float("nan")
    return float(arr.mean()), t95(arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)


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


def write_report(analysis: dict[str, Any], out: Path) -> Path:
    """matrix.json, pairs.csv, honest.csv, plots and report.md in `out`."""
    (out / "matrix.json").write_text(json.dumps(analysis, indent=1, default=_json_default))
    with (out / "pairs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        budgets = analysis["settings"]["budgets"]
        w.writerow(
            [
                "source",
                "target",
                "mode",
                *[f"score@{b}" for b in budgets],
                *[f"ci@{b}" for b in budgets],
                *[f"gain@{b}" for b in budgets],
                "reduction_updates",
                "reduction_evaluations",
                "reduction_seconds",
                "saved_seconds",
                "saved_evaluations",
            ]
        )
        for p in analysis["pairs"]:
            w.writerow(
                [
                    p["source"],
                    p["target"],
                    p["mode"],
                    *[p["score"][b][0] for b in budgets],
                    *[p["score"][b][1] for b in budgets],
                    *[p["gain"][b][0] for b in budgets],
                    p["reduction"]["updates"],
                    p["reduction"]["task_evaluations"],
                    p["reduction"]["device_seconds"],
                    p["saved_seconds"],
                    p["saved_evaluations"],
                ]
            )
    with (out / "honest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "target", "mode", "cap", "used_evaluations", "metric", "ci"])
        for r in analysis["honest"]:
            w.writerow(
                [
                    r["source"],
                    r["target"],
                    r["mode"],
                    r["cap"],
                    r["used_evaluations"],
                    r["metric"][0],
                    r["metric"][1],
                ]
            )
    _plots(analysis, out)
    path = out / "report.md"
    path.write_text(_markdown(analysis))
    return path


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return str(x)


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _markdown(a: dict[str, Any]) -> str:
    s = a["settings"]
    m = a["summary"]
    b = m["budget"]
    lines = [
        f"# Transfer matrix: {s['space']} space, tasks {', '.join(s['tasks'])}",
        "",
        f"{s['seeds']} seed(s); {s['steps']} learner updates per agent (paper protocol); "
        f"evaluation: {s['searches']} searches per agent and budget, starts from seed "
        f"{s['eval_seed']}; honest protocol: caps {s['caps']} target evaluations, "
        f"{s['honest_steps']} updates, then a {s['eval_budget']}-evaluation search.",
        "Scores are normalised (1 = the task's optimum, 0 = its median architecture); gains are "
        "transferred minus scratch at the same budget; intervals are 95% t-intervals over seeds.",
        "",
        "## Claims",
        "",
        f"* **Pretraining on another task improves final performance** (fine-tuning, budget {b}): "
        f"on {m['targets_improved_mean_over_sources']} of {m['targets']} targets on average over "
        f"sources, and on {m['targets_improved_best_source']} of {m['targets']} with the best "
        "source. The paper reports all but one of four targets.",
        f"* **Transfer shortens training**: median reduction factor to reach "
        f"{s['threshold']:.0%} of scratch's final score: "
        f"{_fmt(m['median_reduction']['updates'], 2)}x "
        f"in learner updates, {_fmt(m['median_reduction']['task_evaluations'], 2)}x in target "
        f"evaluations, {_fmt(m['median_reduction']['device_seconds'], 2)}x in device seconds "
        f"(over {m['reduction_samples']['updates']} fine-tuned pairs that reached it; "
        f"{m['reduction_at_start']['updates']} of them were there before their first update, "
        "an unbounded factor, `inf`, in updates: their evaluations and seconds then count only "
        "the first greedy evaluation and the actors' start).",
        f"* **Task similarity predicts the gain**: Spearman correlation between probe similarity "
        f"({a['similarity']['probe_size']} architectures, i.e. that many target evaluations) and "
        f"measured gain across pairs: {_fmt(m['similarity_gain_spearman'])}.",
    ]
    for mode, c in m["auto_choice"].items():
        lines.append(
            f"* **Automatic source choice** ({mode}): the most similar source was the best "
            "available "
            f"one for {c['hits']} of {c['targets']} targets; mean regret of the choice "
            f"{_fmt(c['mean_regret'])} (normalised score)."
        )
    lines += [
        f"* **Honest protocol** (a target evaluation trains a network; agents and baselines at the "
        f"same total): the best agent beats every baseline in {m['honest_agent_wins']} of "
        f"{m['honest_cells']} (target, total) cells.",
        "",
        "## Paper protocol: transferred vs scratch",
        "",
        f"| target | source | mode | score@{b} | ± | gain@{b} | ± | reduction (updates) | "
        "reduction (evals) | reduction (s) | saved s | saved evals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(a["pairs"], key=lambda p: (p["target"], p["source"], p["mode"])):
        sc, gn = p["score"][b], p["gain"][b]
        r = p["reduction"]
        lines.append(
            f"| {p['target']} | {p['source']} | {p['mode']} | {_fmt(sc[0])} | {_fmt(sc[1])} | "
            f"{_fmt(gn[0])} | {_fmt(gn[1])} | {_fmt(r['updates'], 2)} | "
            f"{_fmt(r['task_evaluations'], 2)} | {_fmt(r['device_seconds'], 2)} | "
            f"{_fmt(p['saved_seconds'], 1)} | {_fmt(p['saved_evaluations'], 0)} |"
        )
    lines += [
        "",
        "## Honest protocol: best-found metric at equal total target evaluations",
        "",
        "| target | total evals | best agent | agent | random | local | evolution "
        "| best source top-k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h in m["honest"]:
        lines.append(
            f"| {h['target']} | {h['total']} | {h['agent']} | {_fmt(h['agent_metric'], 4)} | "
            f"{_fmt(h.get('random'), 4)} | {_fmt(h.get('local'), 4)} | "
            f"{_fmt(h.get('evolution'), 4)} | "
            f"{_fmt(h.get('source_top'), 4)} |"
        )
    lines += [
        "",
        "## Task similarity (probe rank correlation)",
        "",
        "| | " + " | ".join(a["similarity"]["tasks"]) + " |",
        "|---|" + "---|" * len(a["similarity"]["tasks"]),
    ]
    for t, row in zip(a["similarity"]["tasks"], a["similarity"]["matrix"], strict=True):
        lines.append(f"| {t} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    lines += [
        "",
        "Plots: gain_heatmap.png, reduction_heatmap.png, curves_<target>.png, "
        "honest.png. Data: matrix.json, pairs.csv, honest.csv, cells/.",
        "",
    ]
    return "\n".join(lines)


def _plots(a: dict[str, Any], out: Path) -> None:
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
