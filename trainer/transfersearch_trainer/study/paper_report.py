"""The paper-protocol study written out: report.md (4x4 matrices, claims), summary.json, plots.

Every matrix has sources as rows and targets as columns, as the paper's figures do; the
diagonal is the scratch agent on that task (the reference), not a transfer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.study.paper import REGIME_NAMES, REGIMES
from transfersearch_trainer.study.paper_plots import plot_paper

NOT_REACHED = "not reached"


def write_report(a: dict[str, Any], out: Path) -> Path:
    """summary.json, the heatmaps and report.md in `out`; returns report.md's path."""
    (out / "summary.json").write_text(json.dumps(_plain(a), indent=1, allow_nan=False))
    plots = plot_paper(a, out)
    path = out / "report.md"
    path.write_text(markdown(a, [p.name for p in plots]))
    return path


def _plain(x: Any) -> Any:
    """Strict JSON: inf as the string "inf", nan as null."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _matrix(
    a: dict[str, Any], regime: str, off: Callable[[dict[str, Any]], str], diag: Callable[[str], str]
) -> list[str]:
    """A markdown matrix: row = source, column = target; `diag` gives scratch's cell."""
    tasks = a["settings"]["tasks"]
    pairs = {(p["source"], p["target"]): p for p in a["pairs"] if p["regime"] == regime}
    lines = [
        "| source \\ target | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for src in tasks:
        row = []
        for tgt in tasks:
            if src == tgt:
                row.append(diag(tgt) if tgt in a["scratch"] else "")
            else:
                p = pairs.get((src, tgt))
                row.append(off(p) if p else "")
        lines.append(f"| **{src}** | " + " | ".join(row) + " |")
    return [*lines, ""]


def _ci(x: list[float]) -> str:
    return f"{fmt(x[0], 3)} ± {fmt(x[1], 3)}"


def _gain(p: dict[str, Any]) -> str:
    star = " *" if p["beyond_ci"] else ""
    return f"{p['gain'][0]:+.3f} ± {fmt(p['gain'][1], 3)}{star}"


def _time(t: dict[str, float] | None) -> str:
    if t is None:
        return NOT_REACHED
    return f"{t['updates']:.0f} u / {t['queries']:.0f} q / {t['seconds']:.1f} s"


def _speed(x: float | None) -> str:
    if x is None:
        return "n.r."
    return "at start" if math.isinf(x) else f"{x:.1f}x"


def _speedups(p: dict[str, Any]) -> str:
    sp = p["speedup"]
    if sp["updates"] is None:
        return NOT_REACHED
    return " / ".join(_speed(sp[k]) for k in ("updates", "queries", "seconds"))


def _claims(a: dict[str, Any]) -> list[str]:
    c1, c2 = a["claims"]["final"], a["claims"]["time"]
    verdict = {True: "**holds here**", False: "**does not hold here**"}
    lines = [
        "## The paper's two claims, computed from the numbers below",
        "",
        f"1. *Pretraining helps final performance in all but one target*: {verdict[c1['holds']]}."
        f" The best pretrained (source, regime) beats scratch beyond its 95% interval on "
        f"{c1['improved_beyond_ci']} of {c1['targets']} targets (mean gain above zero on "
        f"{c1['improved_mean']}); the claim needs at least {max(c1['targets'] - 1, 0)}. "
        "The best of every (source, regime) per target is a favourable pick: read the "
        "per-regime means too.",
        "",
        "   | target | best pretrained | gain over scratch | beyond CI | mean gain by regime |",
        "   |---|---|---|---|---|",
    ]
    for x in c1["per_target"]:
        means = ", ".join(
            f"{REGIME_NAMES[r]} {v:+.3f}" for r, v in x["mean_gain_by_regime"].items()
        )
        lines.append(
            f"   | {x['target']} | {REGIME_NAMES[x['best_regime']]} from {x['best_source']} | "
            f"{x['gain'][0]:+.3f} ± {fmt(x['gain'][1], 3)} | {'yes' if x['beyond_ci'] else 'no'} "
            f"| {means} |"
        )
    lines += [
        "",
        f"2. *Training time is shortened significantly*: {verdict[c2['holds']]}. In "
        f"{c2['shortened']} of {c2['pairs']} (source, target) pairs the fastest pretrained regime "
        f"reaches the reference at least {c2['threshold']:g}x sooner than "
        f"scratch in learner updates; in {c2['never_reached']} no pretrained regime reaches it. "
        "Times are on the target only (pretraining, shared by every target, is not counted).",
        "",
        "   | regime | pairs | reached the reference | median speed-up (updates / queries / s) |",
        "   |---|---|---|---|",
    ]
    for r, x in c2["by_regime"].items():
        med = " / ".join(_speed(x["median_speedup"][k]) for k in ("updates", "queries", "seconds"))
        lines.append(f"   | {REGIME_NAMES[r]} | {x['pairs']} | {x['reached']} | {med} |")
    return [*lines, ""]


def markdown(a: dict[str, Any], plots: list[str]) -> str:
    s = a["settings"]
    shaped = [t for t, x in a["scratch"].items() if x["shaping"]]
    updates = {r: next((p["updates"] for p in a["pairs"] if p["regime"] == r), 0) for r in REGIMES}
    lines = [
        f"# The paper's transfer protocol: {s['space']} space, {', '.join(s['tasks'])}",
        "",
        f"{s['seeds']} seed(s). Pretraining = scratch: {s['updates']} learner updates with free "
        f"queries (the paper's 1e7 steps); on the target, fine-tune {updates['finetune']} updates "
        f"({s['finetune_fraction']:g} x, the paper's 1e6) and re-train {updates['retrain']} "
        f"({s['retrain_fraction']:g} x, the paper's 1e7), every parameter trainable, free queries; "
        "zero-shot: none. Score: the greedy agent's mean normalised best found (1 = optimum, "
        f"0 = median architecture) over {s['searches']} searches of budget {s['eval_budget']} on "
        "the raw table; the final score is the last curve point. Intervals: 95% over seeds. "
        + (
            f"Training on {', '.join(shaped)} reads a shaped table "
            f"(((v - min)/(max - min)) ** {s['segmentation_power']}); its scores are raw."
            if shaped
            else "No reward shaping."
        ),
        "",
        *_claims(a),
        "## Scratch on each target (the diagonal, and the reference)",
        "",
        "| target | seeds | final score (reference) | mean best metric | time to reach it "
        "(mean curve) | seeds whose own curve reaches it |",
        "|---|---|---|---|---|---|",
    ]
    for t, x in a["scratch"].items():
        lines.append(
            f"| {t} | {x['seeds']} | {_ci(x['final'])} | {_ci(x['metric'])} | {_time(x['time'])} "
            f"| {x['reached_seeds']} |"
        )
    lines.append("")
    sections: list[tuple[str, Callable[[dict[str, Any]], str], Callable[[str], str]]] = [
        (
            "Final performance (normalised score)",
            lambda p: _ci(p["final"]),
            lambda t: f"*{_ci(a['scratch'][t]['final'])}*",
        ),
        ("Gain over scratch (* beyond the 95% interval)", _gain, lambda t: "*scratch*"),
        (
            "Time to reach the reference (updates / distinct target queries / training seconds)",
            lambda p: _time(p["time"]) + f" ({p['reached_seeds']}/{p['seeds']} seeds)",
            lambda t: f"*{_time(a['scratch'][t]['time'])}*",
        ),
        (
            "Speed-up to the reference vs scratch (updates / queries / s)",
            _speedups,
            lambda t: "*1x*",
        ),
    ]
    for title, off, diag in sections:
        lines += [f"## {title}", ""]
        for r in REGIMES:
            lines += [f"### {REGIME_NAMES[r]}", "", *_matrix(a, r, off, diag)]
    lines += [
        "Plots: " + ", ".join(plots) + ". Data: summary.json, cells/ (one record per agent, with "
        "its learning curve), agents/ (the scratch agents, also the sources).",
        "",
    ]
    return "\n".join(lines)
