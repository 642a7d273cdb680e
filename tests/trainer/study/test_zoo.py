"""The agent zoo: built from a tiny real study, found by target, verified, searched with,
published to a real S3 API (moto) and named in a manifest, as users do each of these."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_HP
from tests.paths import ROOT
from tests.trainer.pod.test_search_trial import search_job
from tests.trainer.pod.test_trainer import client, read_json, summary_of, train, trainer_env
from transfersearch_trainer.agent.artifact import load_agent
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import parse_manifest
from transfersearch_trainer.api.tasks import TASKS
from transfersearch_trainer.store.agents import AgentStore, parse_agent_uri
from transfersearch_trainer.store.layout import MANIFEST, WEIGHTS
from transfersearch_trainer.store.zoo import CARD, INDEX, README, ZOO_ENV, zoo_agent, zoo_root
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.loto import Cell, LotoSettings, plan, run_cell
from transfersearch_trainer.study.loto_report import COLUMNS
from transfersearch_trainer.study.zoo_build import build_zoo

EXE = str(Path(sys.executable).parent / "transfersearch")
SETTINGS = LotoSettings(
    space="micro",
    targets=("jigsaw", "class_scene"),
    seeds=3,
    budgets=(6,),
    searches=1,
    updates=4,
    hp={**TINY_HP, "eval_interval": 0, "learning_starts": 16},
)
# The pretraining-side validation each cell is given: jigsaw's s1 and s2 tie (s1 wins, the
# lower seed); class_scene's s0 recorded none (it ranks last).
VALIDATION = {
    ("jigsaw", 0): 40.0,
    ("jigsaw", 1): 41.5,
    ("jigsaw", 2): 41.5,
    ("class_scene", 0): None,
    ("class_scene", 1): 30.0,
    ("class_scene", 2): 31.0,
    ("all_tasks", 0): 50.0,
}
# summary.csv rows for jigsaw: the card must show both agent modes and the best baseline
SUMMARY = [
    ("jigsaw", 6, "agent-online", 94.5, 0.1, 12.0, 0.8, 3),
    ("jigsaw", 6, "agent-zero-shot", 94.4, 0.2, 15.0, 0.9, 3),
    ("jigsaw", 6, "agent-scratch", 94.0, 0.2, 99.0, 1.3, 3),
    ("jigsaw", 6, "random", 94.1, 0.05, 80.0, 1.2, 3),
    ("jigsaw", 6, "multi-top-k", 94.9, 0.0, 3.0, 0.4, 1),
]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    run_env = dict(os.environ, COLUMNS="200", **env)
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=run_env, timeout=240)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A finished tiny study: its pretraining cells (and an all-task agent) as `study loto`
    writes them, with crafted validations, and a summary.csv."""
    out = tmp_path_factory.mktemp("loto")
    cells.check_settings(out, SETTINGS.to_dict(), "leave-one-task-out study")
    agents, _ = plan(SETTINGS, TASKS)
    for cell in [*agents, Cell("agent", "all_tasks", 0)]:
        record = run_cell(cell, SETTINGS, out, str(data_dir))
        record["validation_normalised"] = VALIDATION[cell.target, cell.seed]
        cells.write_json(out / "cells" / cell.file, record)
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(("micro", *row) for row in SUMMARY)
    return out


@pytest.fixture(scope="module")
def zoo(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo") / "zoo"
    build_zoo([study], out)
    return out


def index(zoo: Path) -> dict[str, dict[str, Any]]:
    return {e["label"]: e for e in json.loads((zoo / INDEX).read_text())["agents"]}


def test_build_keeps_the_best_validated_seed_with_its_card(study: Path, zoo: Path) -> None:
    entries = index(zoo)
    assert list(entries) == ["all_but_class_scene", "all_but_jigsaw", "all_tasks"]
    assert (entries["all_but_jigsaw"]["seed"], entries["all_but_class_scene"]["seed"]) == (1, 2)
    assert entries["all_but_jigsaw"]["target"] == "jigsaw"
    assert "jigsaw" not in entries["all_but_jigsaw"]["sources"]
    assert entries["all_tasks"]["target"] is None
    assert sorted(entries["all_tasks"]["sources"]) == sorted(TASKS)
    # the chosen seed's files, byte for byte; the index pins both
    folder = zoo / "micro" / "all_but_jigsaw"
    for name in (MANIFEST, WEIGHTS):
        assert (folder / name).read_bytes() == (study / "agents/jigsaw/s1" / name).read_bytes()
    assert (
        entries["all_but_jigsaw"]["digest"]
        == hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    )
    card = (folder / CARD).read_text()
    assert "Seed s1 has the best pretraining-side validation of the 3 seeds" in card
    assert "| s0 | 40.000 |" in card
    assert "| s1 | 41.500 |" in card
    assert "| s2 | 41.500 |" in card
    assert entries["all_but_jigsaw"]["weights_sha256"] in card
    assert "| 6 | agent-online | 94.500 |" in card
    assert "| 6 | agent-zero-shot | 94.400 |" in card
    assert "| 6 | best baseline: multi-top-k | 94.900 |" in card
    assert "| 16 | 1 | 2 | 32 |" in card  # d_model, layers, heads, ff
    assert "| n/a |" in (zoo / "micro" / "all_but_class_scene" / CARD).read_text()
    assert "no held-out benchmark task" in (zoo / "micro" / "all_tasks" / CARD).read_text()
    # the zoo's README is the one checked in (the image copies zoo/ even before a build)
    assert (zoo / README).read_text() == (ROOT / "zoo" / README).read_text()


def test_build_is_deterministic_and_replaces_only_a_zoo(study: Path, zoo: Path) -> None:
    again = zoo.parent / "again"
    build_zoo([study], again)
    files = sorted(p.relative_to(zoo) for p in zoo.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((zoo / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert all(((zoo / f).stat().st_mode & 0o777) == 0o644 for f in files)
    build_zoo([study], again)  # an earlier zoo is replaced
    (again / "notes.txt").write_text("mine")
    with pytest.raises(TransferSearchError, match=r"--out .*notes.txt, which is not part of a zoo"):
        build_zoo([study], again)
    with pytest.raises(
        TransferSearchError, match="both pretrained micro/all_tasks; give each space"
    ):
        build_zoo([study, study], zoo.parent / "twice")


def test_a_study_resumed_from_its_pack_rebuilds_the_zoo_from_the_zoo_it_replaces(
    study: Path, zoo: Path, tmp_path: Path
) -> None:
    packed = tmp_path / "packed"  # what a fresh checkout holds: settings and cells, no agents
    shutil.copytree(study, packed, ignore=shutil.ignore_patterns("agents"))
    again = tmp_path / "zoo"
    shutil.copytree(zoo, again)
    build_zoo([packed], again)  # the agents come from the zoo being replaced, digests checked
    agents = sorted(p.relative_to(zoo) for p in zoo.rglob("*") if p.name in (WEIGHTS, MANIFEST))
    assert agents
    assert all((zoo / f).read_bytes() == (again / f).read_bytes() for f in agents)
    with pytest.raises(TransferSearchError, match="cannot read the agent"):
        build_zoo([packed], tmp_path / "new")  # nothing to take them from
    weights = next(again.rglob(WEIGHTS))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(TransferSearchError, match="digest mismatch"):
        build_zoo([packed], again)


def test_build_refuses_a_study_changed_after_it_ran(study: Path, tmp_path: Path) -> None:
    changed = tmp_path / "study"
    shutil.copytree(study, changed)
    weights = changed / "agents" / "jigsaw" / "s1" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(TransferSearchError, match="digest mismatch") as err:
        build_zoo([changed], tmp_path / "zoo")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "zoo").exists()
    with pytest.raises(TransferSearchError, match="not a leave-one-task-out study"):
        build_zoo([tmp_path], tmp_path / "zoo")


def test_the_zoo_agent_is_the_one_that_never_saw_the_target(zoo: Path) -> None:
    folder, entry = zoo_agent("micro", "jigsaw", zoo)
    assert folder == zoo / "micro" / "all_but_jigsaw"
    agent = load_agent(folder, "micro", entry.weights_sha256)
    assert agent.task == "all_but_jigsaw"
    assert "jigsaw" not in agent.training["tasks"]
    folder, entry = zoo_agent("micro", None, zoo)  # a target outside the benchmark
    assert (folder.name, entry.target) == ("all_tasks", None)
    with pytest.raises(
        TransferSearchError, match="no micro/all_but_normal agent for target normal"
    ):
        zoo_agent("micro", "normal", zoo)
    with pytest.raises(TransferSearchError, match="no macro/all_but_jigsaw"):
        zoo_agent("macro", "jigsaw", zoo)


def test_a_changed_zoo_is_refused_in_one_line(zoo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "zoo"
    shutil.copytree(zoo, copy)
    weights = copy / "micro" / "all_but_jigsaw" / WEIGHTS
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + b"\0")
    with pytest.raises(TransferSearchError, match="digest mismatch.*transfersearch zoo build"):
        zoo_agent("micro", "jigsaw", copy)
    weights.write_bytes(original)
    data = json.loads((copy / INDEX).read_text())
    data["agents"][1]["weights_sha256"] = "0" * 64
    (copy / INDEX).write_text(json.dumps(data))
    with pytest.raises(TransferSearchError, match="digest mismatch") as err:
        zoo_agent("micro", "jigsaw", copy)
    assert "\n" not in str(err.value)
    assert "pass --agent PATH" in str(err.value)


def test_a_missing_zoo_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ZOO_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(TransferSearchError, match=r"\$TRANSFERSEARCH_ZOO is .*nowhere.*zoo build"):
        zoo_agent("micro", "jigsaw")
    monkeypatch.delenv(ZOO_ENV)
    assert zoo_root() == ROOT / "zoo"  # a source checkout: its zoo/ folder
    empty = tmp_path / "empty"  # a zoo folder before any build: its README, no index
    empty.mkdir()
    shutil.copy(ROOT / "zoo" / "README.md", empty / "README.md")
    monkeypatch.setenv(ZOO_ENV, str(empty))
    with pytest.raises(TransferSearchError, match="holds no agents yet .*or pass --agent PATH"):
        zoo_agent("micro", "jigsaw", field="--agent")
    with pytest.raises(TransferSearchError, match="or set spec.source.agent to an agent folder"):
        zoo_agent("micro", "jigsaw", field="spec.source.agent")


def test_search_with_the_zoo_agent(zoo: Path, data_dir: Path, tmp_path: Path) -> None:
    env = {ZOO_ENV: str(zoo), "TRANSFERSEARCH_DATA": str(data_dir)}
    res = cli("search", "--task", "jigsaw", "--agent", "zoo", "--budget", "6", "--json", **env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["evaluations"] == 6
    assert report["agent"]["task"] == "all_but_jigsaw"
    assert report["agent"]["digest"] == index(zoo)["all_but_jigsaw"]["weights_sha256"]
    assert "jigsaw" not in report["sources"]


def test_push_the_zoo_to_s3_and_pull_it_verified(zoo: Path, s3_env: str, tmp_path: Path) -> None:
    bucket = f"zoo-{uuid.uuid4().hex[:8]}"
    client(s3_env).create_bucket(Bucket=bucket)
    store = f"s3://{bucket}/models"
    res = cli("agents", "push", str(zoo), "--store", store)
    assert res.returncode == 0, res.stderr
    uris = [line for line in res.stdout.splitlines() if line.startswith("s3://")]
    entries = index(zoo)
    assert len(uris) == len(entries)
    for uri in uris:
        ref = parse_agent_uri(uri)
        assert ref is not None
        entry = entries[ref.task]
        assert ref.digest == entry["digest"]  # the index's digest is the agent's store id
        pulled = AgentStore(ref.root).pull(ref, tmp_path / ref.task, entry["weights_sha256"])
        assert load_agent(pulled, "micro").digest == entry["weights_sha256"]
    one = cli("agents", "push", str(zoo / "micro" / "all_tasks"), "--store", store, "--json")
    assert json.loads(one.stdout)["uri"] in uris  # one agent's folder too, same id


def test_a_manifest_with_the_zoo_agent_searches_in_the_pod(
    zoo: Path, s3_server: str, data_dir: Path, tmp_path: Path
) -> None:
    doc = {
        "apiVersion": "transfersearch.io/v1alpha1",
        "kind": "TransferSearch",
        "metadata": {"name": "z"},
        "spec": {"source": {"agent": "zoo"}, "target": {"task": "jigsaw"}},
    }
    assert parse_manifest(doc).spec.source.agent == "zoo"
    bucket = f"zoo-{uuid.uuid4().hex[:8]}"
    client(s3_server).create_bucket(Bucket=bucket)
    config = search_job(
        f"s3://{bucket}/searches/team-a/zoo",
        tmp_path,
        benchmark={"space": "micro", "data": str(data_dir)},
        source={"agent": "zoo"},
        training={"seeds": 1},
        evaluation={"budget": 6},
        s3={"bucket": bucket, "prefix": "store"},
    )
    env = {**trainer_env(s3_server, tmp_path), ZOO_ENV: str(zoo)}
    res = train(config, env)
    assert res.returncode == 0, res.stderr
    summary = summary_of(config)
    assert (summary.status, summary.evaluations, summary.agent_uri) == ("Succeeded", 6, "zoo")
    assert summary.agent_digest == f"sha256:{index(zoo)['all_but_jigsaw']['weights_sha256']}"
    results = read_json(s3_server, bucket, "searches/team-a/zoo/trials/0/results.json")
    assert results["agent"]["task"] == "all_but_jigsaw"


def test_validation_is_scale_free_and_read_from_the_curve_for_older_cells(tmp_path: Path) -> None:
    """Cells written before `validation_normalised` existed: 1 - the manifest's last regret."""
    from transfersearch_trainer.study.zoo_build import _validation

    curve = [{"score": 40.0, "normalised_regret": 0.5}, {"score": 41.0, "normalised_regret": 0.2}]
    (tmp_path / "agent.json").write_text(json.dumps({"training": {"curve": curve}}))
    assert _validation({"validation": 41.0}, tmp_path) == pytest.approx(0.8)
    assert _validation({"validation_normalised": 0.9, "validation": 41.0}, tmp_path) == 0.9
    assert _validation({"validation": 41.0}, tmp_path / "missing") == 41.0  # no curve at all


def test_the_committed_zoo_holds_every_leave_one_task_out_agent_and_they_load() -> None:
    """The repository's zoo/: 14 leave-one-task-out agents (7 targets x 2 spaces) and the two
    all-task ones, each verified against index.json, loaded, and excluding its target."""
    from transfersearch_trainer.store.zoo import zoo_agent

    root = ROOT / "zoo"
    for space in ("micro", "macro"):
        for target in [*TASKS, None]:
            folder, entry = zoo_agent(space, target, root=root)
            agent = load_agent(folder, space, f"sha256:{entry.weights_sha256}")
            sources = agent.training["tasks"]
            assert target not in sources
            assert len(sources) == (len(TASKS) if target is None else len(TASKS) - 1)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 8_000_000, f"the zoo is {size / 1e6:.1f} MB; keep it to a few MB"
