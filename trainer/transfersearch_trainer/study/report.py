"""The transfer matrix's analysis written out: matrix.json, pairs.csv, honest.csv, report.md."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.study.plots import plot_report


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
    plot_report(analysis, out)
    path = out / "report.md"
    path.write_text(_markdown(analysis))
    return path


def _json_default(x: Any) -> Any:
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return str(x)


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
        f"{fmt(m['median_reduction']['updates'], 2)}x "
        f"in learner updates, {fmt(m['median_reduction']['task_evaluations'], 2)}x in target "
        f"evaluations, {fmt(m['median_reduction']['device_seconds'], 2)}x in device seconds "
        f"(over {m['reduction_samples']['updates']} fine-tuned pairs that reached it; "
        f"{m['reduction_at_start']['updates']} of them were there before their first update, "
        "an unbounded factor, `inf`, in updates: their evaluations and seconds then count only "
        "the first greedy evaluation and the actors' start).",
        f"* **Task similarity predicts the gain**: Spearman correlation between probe similarity "
        f"({a['similarity']['probe_size']} architectures, i.e. that many target evaluations) and "
        f"measured gain across pairs: {fmt(m['similarity_gain_spearman'])}.",
    ]
    for mode, c in m["auto_choice"].items():
        lines.append(
            f"* **Automatic source choice** ({mode}): the most similar source was the best "
            "available "
            f"one for {c['hits']} of {c['targets']} targets; mean regret of the choice "
            f"{fmt(c['mean_regret'])} (normalised score)."
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
            f"| {p['target']} | {p['source']} | {p['mode']} | {fmt(sc[0])} | {fmt(sc[1])} | "
            f"{fmt(gn[0])} | {fmt(gn[1])} | {fmt(r['updates'], 2)} | "
            f"{fmt(r['task_evaluations'], 2)} | {fmt(r['device_seconds'], 2)} | "
            f"{fmt(p['saved_seconds'], 1)} | {fmt(p['saved_evaluations'], 0)} |"
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
            f"| {h['target']} | {h['total']} | {h['agent']} | {fmt(h['agent_metric'], 4)} | "
            f"{fmt(h.get('random'), 4)} | {fmt(h.get('local'), 4)} | "
            f"{fmt(h.get('evolution'), 4)} | "
            f"{fmt(h.get('source_top'), 4)} |"
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
