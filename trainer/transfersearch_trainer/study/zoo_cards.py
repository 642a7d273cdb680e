"""What the zoo says about itself: each agent's MODEL_CARD.md and the zoo's README.md.

Everything in them is generated from the study's records and the agent's manifest
(numbers, task names, the study folder's name), never copied from free user text, and
nothing adds a time: the same study writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.store.zoo import ZooEntry

if TYPE_CHECKING:
    from transfersearch_trainer.study.zoo_build import Pick

# The hyperparameters that shape the network or the pretraining, in the card's order.
NETWORK_KEYS = ("encoder", "d_model", "layers", "heads", "ff")
TRAINING_KEYS = (
    "lr",
    "batch_size",
    "num_actors",
    "episode_steps",
    "gamma",
    "n_step",
    "replay_capacity",
    "target_update",
    "eval_searches",
    "eval_budget",
)
AGENT_METHODS = ("agent-online", "agent-zero-shot")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _num(text: str | None) -> str:
    """A summary.csv number in the one report format."""
    return "n/a" if text in (None, "") else fmt(float(text))


def _seed_rows(pick: Pick) -> list[list[str]]:
    return [
        [
            f"s{s.seed}",
            fmt(s.validation),
            f"`{str(s.record.get('digest') or '')[:16]}...`",
            "chosen" if s.seed == pick.chosen.seed else "",
        ]
        for s in pick.seeds
    ]


def _target_section(entry: ZooEntry, rows: list[dict[str, str]]) -> list[str]:
    """The study's numbers on the held-out target: online and zero-shot, the best baseline."""
    if entry.target is None:
        return [
            "Pretrained on every task: there is no held-out benchmark task to measure it on. "
            "It is the agent for targets outside the benchmark.",
        ]
    if not rows:
        return [f"The study has no summary.csv rows for {entry.target} (not summarised yet)."]
    table = []
    for budget in sorted({int(r["budget"]) for r in rows}):
        at = [r for r in rows if int(r["budget"]) == budget]
        agents = [r for m in AGENT_METHODS for r in at if r["method"] == m]
        baselines = [r for r in at if not r["method"].startswith("agent-")]
        if baselines:
            best = max(baselines, key=lambda r: (float(r["mean"]), -float(r["mean_rank"])))
            agents.append({**best, "method": f"best baseline: {best['method']}"})
        for r in agents:
            table.append(
                [
                    str(budget),
                    r["method"],
                    _num(r["mean"]),
                    _num(r["stderr"]),
                    _num(r["mean_rank"]),
                    _num(r["regret"]),
                    r["n"],
                ]
            )
    header = ("budget", "method", "mean best", "± stderr", "mean rank", "regret", "n")
    return [
        f"Measured by the study on {entry.target} after the seeds were chosen, for reading "
        "only: the choice above never used them. The agent rows are means over all the "
        "study's pretraining seeds (n), not this seed alone; mean rank 1 is the optimum of "
        f"the {entry.target} table.",
        "",
        *_table(header, table),
    ]


def model_card(
    entry: ZooEntry, manifest: dict[str, Any], pick: Pick, rows: list[dict[str, str]]
) -> str:
    """MODEL_CARD.md of one zoo agent."""
    hp = manifest.get("hyperparameters") or {}
    net = manifest.get("network") or {}
    training = manifest.get("training") or {}
    settings = pick.settings
    held_out = (
        f"{entry.target} (never queried in pretraining)"
        if entry.target is not None
        else "none (pretrained on all seven tasks)"
    )
    use_task = entry.target or "TASK"
    lines = [
        f"# {entry.space} / {entry.label}",
        "",
        f"A pretrained TransferSearch agent for the {entry.space} space of "
        f"TransNAS-Bench-101, from the leave-one-task-out study `{entry.study}`.",
        "",
        f"- held-out target: {held_out}",
        f"- sources: {', '.join(entry.sources)}",
        f"- updates: {manifest.get('steps')} learner updates, "
        f"{training.get('env_steps', 0):,} environment steps, "
        f"{training.get('distinct_evaluations', 0):,} distinct source architectures queried",
        f"- device seconds: {fmt(training.get('device_seconds'), 1)} on "
        f"{training.get('device', 'n/a')} (GPU seconds {fmt(training.get('gpu_seconds'), 1)})",
        f"- weights sha256: `{entry.weights_sha256}`",
        f"- agent.json sha256 (its id in an agent store): `{entry.digest}`",
        f"- code version: {manifest.get('code_version')}; created {manifest.get('created')}",
        "",
        "## Why this seed",
        "",
        f"Seed s{entry.seed} has the best pretraining-side validation of the "
        f"{len(pick.seeds)} seeds the study finished ({settings.get('seeds')} planned), ties "
        "going to the lowest seed. Validation is the last point of the pretraining curve: the "
        f"best found by {hp.get('eval_searches')} greedy searches of "
        f"{hp.get('eval_budget')} evaluations on each source task, as one minus the mean "
        "normalised regret over the sources (1 = every source's optimum, 0 = their medians; "
        "scale-free, unlike a mean of raw metrics). Nothing measured on the held-out target "
        "was used to choose.",
        "",
        *_table(("seed", "validation", "weights sha256", "choice"), _seed_rows(pick)),
        "",
        "## Hyperparameters that matter",
        "",
        *_table(NETWORK_KEYS, [[str(net.get(k, hp.get(k))) for k in NETWORK_KEYS]]),
        "",
        *_table(TRAINING_KEYS, [[str(hp.get(k)) for k in TRAINING_KEYS]]),
        "",
        "The full set is in agent.json (`hyperparameters`, `network`), with the pretraining "
        "curve (`training.curve`).",
        "",
        "## On its held-out target",
        "",
        *_target_section(entry, rows),
        "",
        "## Use",
        "",
        "```bash",
        f"transfersearch search --space {entry.space} --task {use_task} --agent zoo "
        "--mode online --budget 50",
        f"transfersearch agents push zoo/{entry.path} --store s3://BUCKET/PREFIX",
        "```",
        "",
    ]
    return "\n".join(lines)


def zoo_readme() -> str:
    """The zoo's README.md: the same for every zoo (what each holds is in index.json)."""
    return "\n".join(
        [
            "# The TransferSearch agent zoo",
            "",
            "Pretrained search agents, ready to search a target without pretraining first. "
            "One per search space and label:",
            "",
            "- `<space>/all_but_<T>/`: pretrained on the six TransNAS-Bench-101 tasks other "
            "than T. It is the agent for a search on T: it never queried T, so under "
            "`protocol: search` the search's budget is all that T costs.",
            "- `<space>/all_tasks/`: pretrained on all seven tasks, for targets outside the "
            "benchmark (when the study pretrained one).",
            "",
            "Each folder holds `agent.json` (the manifest), `weights.safetensors` and "
            "`MODEL_CARD.md` (sources, training, the seed chosen and why, the study's numbers "
            "on the held-out target). `index.json` lists every agent with the sha256 of both "
            "files; each use checks them first and refuses a zoo changed after it was built.",
            "",
            "## How the agents were chosen",
            "",
            "`transfersearch zoo build` reads finished leave-one-task-out studies "
            "(`transfersearch study loto`), which pretrain every agent with several seeds, and "
            "keeps for each space and label the seed with the best pretraining-side "
            "validation (the last point of its pretraining curve: greedy searches on its "
            "source tasks, scored as one minus their mean normalised regret, so that 1 is "
            "every source's optimum and 0 their medians), ties going to the lowest seed. "
            "Nothing measured on the held-out target is used to choose; the study's numbers "
            "on it are in the model card, for reading.",
            "",
            "```bash",
            "transfersearch zoo build --study runs/loto-micro [--study runs/loto-macro] --out zoo",
            "```",
            "",
            "## Use",
            "",
            "```bash",
            "transfersearch search --space micro --task jigsaw --agent zoo --mode online",
            "transfersearch zoo list",
            "```",
            "",
            "In a TransferSearch manifest: `spec.source.agent: zoo` (see examples/zoo.yaml); "
            "the trainer image carries the zoo at /opt/transfersearch/zoo. The zoo is looked "
            "for in `$TRANSFERSEARCH_ZOO`, then the `zoo/` folder of a source checkout, then "
            "/opt/transfersearch/zoo.",
            "",
            "## Publish",
            "",
            "```bash",
            "transfersearch agents push zoo --store s3://BUCKET/PREFIX   # every agent, "
            "each URI printed",
            "transfersearch agents push zoo/micro/all_but_jigsaw --store s3://BUCKET/PREFIX",
            "```",
            "",
            "A pushed agent's URI ends in the sha256 of its agent.json (the `digest` in "
            "index.json); `spec.source.agent` takes it, and `spec.source.digest` the weights' "
            "sha256.",
            "",
        ]
    )
