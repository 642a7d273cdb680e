"""pretrain -> finetune -> evaluate, and `run` on a manifest, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_HP, hp_flags

EXE = str(Path(sys.executable).parent / "transfersearch")
SMALL = hp_flags({**TINY_HP, "eval_interval": 20})


def cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TRANSFERSEARCH_DATA=str(data), COLUMNS="200")
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("agents") / "scene"
    res = cli(
        "pretrain",
        "--task",
        "class_scene",
        "--space",
        "micro",
        "--steps",
        "60",
        "--seed",
        "1",
        "--out",
        str(out),
        *SMALL,
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    assert "agent saved to" in res.stdout
    return out


def test_pretrained_agent_on_disk(source: Path) -> None:
    manifest = json.loads((source / "agent.json").read_text())
    assert manifest["task"] == "class_scene"
    assert manifest["steps"] == 60
    assert manifest["seed"] == 1
    assert manifest["hyperparameters"]["d_model"] == 16
    assert manifest["training"]["distinct_evaluations"] > 0
    assert len(manifest["weights"]["sha256"]) == 64
    assert (source / "weights.safetensors").is_file()


def test_finetune_then_evaluate_json(source: Path, tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "jigsaw"
    res = cli(
        "finetune",
        "--agent",
        str(source),
        "--task",
        "jigsaw",
        "--mode",
        "freeze-encoder",
        "--steps",
        "40",
        "--target-evaluations",
        "200",
        "--out",
        str(out),
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "agent.json").read_text())
    assert manifest["mode"] == "freeze-encoder"
    assert manifest["parent"]["task"] == "class_scene"
    assert manifest["training"]["distinct_evaluations"] <= 200
    res = cli(
        "evaluate",
        "--agent",
        str(out),
        "--task",
        "jigsaw",
        "--budget",
        "20",
        "--searches",
        "30",
        "--json",
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    for key in ("task", "budget", "searches", "mean", "stderr", "regret"):
        assert key in result
    assert result["training_evaluations"] == manifest["training"]["distinct_evaluations"]
    assert set(result["baselines"]) == {"random", "local", "evolution", "class_scene top-20"}
    assert all("mean" in b for b in result["baselines"].values())


def test_zero_shot_costs_no_target_evaluations(
    source: Path, tmp_path: Path, data_dir: Path
) -> None:
    out = tmp_path / "zs"
    res = cli(
        "finetune",
        "--agent",
        str(source),
        "--task",
        "autoencoder",
        "--mode",
        "zero-shot",
        "--out",
        str(out),
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    res = cli(
        "evaluate",
        "--agent",
        str(out),
        "--task",
        "autoencoder",
        "--budget",
        "20",
        "--searches",
        "10",
        "--json",
        data=data_dir,
    )
    assert json.loads(res.stdout)["training_evaluations"] == 0


def test_tampered_agent_is_refused(source: Path, tmp_path: Path, data_dir: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    weights = bad / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    res = cli("evaluate", "--agent", str(bad), "--task", "jigsaw", data=data_dir)
    assert res.returncode == 2
    assert "corrupt or was replaced" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_manifest_end_to_end(tmp_path: Path, data_dir: Path) -> None:
    manifest = tmp_path / "search.yaml"
    manifest.write_text(
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\n"
        "metadata: {name: tiny}\n"
        "spec:\n  source: {task: class_scene, pretrainSteps: 40}\n  target: {task: jigsaw}\n"
        "  transfer: {protocol: paper, mode: finetune}\n"
        "  training: {steps: 30, targetEvaluations: 300}\n"
        "  evaluation: {budget: 20, searches: 20}\n"
    )
    out = tmp_path / "report"
    res = cli(
        "run",
        str(manifest),
        "--out",
        str(out),
        "--agents",
        str(tmp_path / "cache"),
        *SMALL,
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    assert "finetune" in res.stdout
    assert "scratch" in res.stdout
    assert "local" in res.stdout
    report = json.loads((out / "results.json").read_text())
    methods = [r["method"] for r in report["results"]]
    assert methods == ["finetune", "scratch", "random", "local", "evolution", "class_scene top-20"]
    for name in ("curves.csv", "learning_curves.png", "comparison.png", "source_curve.png"):
        assert (out / name).is_file(), name
    assert report["agents"]["finetune"]["training"]["distinct_evaluations"] <= 300
    # a second run reuses the pretrained source agent from the cache
    res = cli(
        "run",
        str(manifest),
        "--out",
        str(out),
        "--agents",
        str(tmp_path / "cache"),
        *SMALL,
        data=data_dir,
    )
    assert "reusing the pretrained class_scene agent" in res.stderr
    assert json.loads((out / "results.json").read_text())["results"] == report["results"]


def test_run_manifest_under_protocol_search(tmp_path: Path, data_dir: Path) -> None:
    """The product's protocol locally: one search per trial, a scratch search beside it."""
    spec = (
        "  source: {tasks: [class_scene, normal], pretrainSteps: 10}\n"
        "  target: {task: jigsaw}\n  transfer: {mode: online}\n"
        "  evaluation: {budget: 12, parallel: 2}\n"
    )
    (tmp_path / "online.yaml").write_text(
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\n"
        f"metadata: {{name: online}}\nspec:\n{spec}"
    )
    out, cache = tmp_path / "report", tmp_path / "cache"
    no_curve = hp_flags({**TINY_HP, "eval_interval": 0})  # the search is under test
    res = cli(
        "run",
        str(tmp_path / "online.yaml"),
        "--out",
        str(out),
        "--agents",
        str(cache),
        *no_curve,
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    assert "online" in res.stdout
    assert "scratch" in res.stdout
    report = json.loads((out / "results.json").read_text())
    assert report["protocol"] == "search"
    assert [(s["trial"], s["mode"]) for s in report["searches"]] == [(0, "online"), (0, "scratch")]
    for search in report["searches"]:
        assert search["evaluations"] == len({t["arch"] for t in search["trajectory"]}) == 12
        assert search["best_metric"] == max(t["metric"] for t in search["trajectory"])
        assert search["rank"] >= 1
    assert report["source"]["tasks"] == ["class_scene", "normal"]
    assert report["source"]["uri"].startswith(str(cache))
    assert report["best"]["best_metric"] == report["searches"][0]["best_metric"]
    # every baseline searched beside it, charged the same: 12 distinct evaluations each,
    # with the agent's sources as the transfer baselines' sources
    methods = {b["method"]: b for b in report["baselines"]}
    assert {"random", "local", "multi-top-k", "prior-local", "surrogate"} <= set(methods)
    assert {b["evaluations"] for b in methods.values()} == {12}
    assert all(b["rank"] >= 1 for b in methods.values())
    assert "multi-top-k" in res.stdout


def test_invalid_manifest_names_the_field(tmp_path: Path, data_dir: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\nmetadata: {name: bad}\n"
        "spec: {target: {task: imagenet}, transfer: {mode: finetune}, source: {task: jigsaw}}\n"
    )
    res = cli("run", str(manifest), data=data_dir)
    assert res.returncode == 2
    assert "spec.target.task" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_with_source_auto_picks_the_most_similar_candidate(
    source: Path, tmp_path: Path, data_dir: Path
) -> None:
    other = tmp_path / "auto-agent"
    res = cli(
        "pretrain",
        "--task",
        "autoencoder",
        "--steps",
        "20",
        "--out",
        str(other),
        *SMALL,
        data=data_dir,
    )
    assert res.returncode == 0, res.stderr
    manifest = tmp_path / "auto.yaml"
    manifest.write_text(
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\nmetadata: {name: auto}\n"
        "spec:\n"
        "  source:\n    agent: auto\n    candidates:\n"
        f"      - {{agent: {other}}}\n      - {{agent: {source}, task: class_scene}}\n"
        "  target: {task: class_object}\n  transfer: {protocol: paper, mode: zero-shot}\n"
        "  evaluation: {budget: 20, searches: 10}\n"
    )
    out = tmp_path / "report"
    res = cli("run", str(manifest), "--out", str(out), "--no-compare-scratch", data=data_dir)
    assert res.returncode == 0, res.stderr
    assert "source auto:" in res.stderr
    report = json.loads((out / "results.json").read_text())
    choice = report["source_choice"]
    assert choice["task"] == "class_scene"  # rank correlation with class_object 0.76 vs 0.42
    assert choice["similarities"]["class_scene"] > choice["similarities"]["autoencoder"]
    # the probe that chose the source cost target evaluations, and they are counted
    zero_shot = next(r for r in report["results"] if r["method"] == "zero-shot")
    assert zero_shot["training_evaluations"] == choice["probe_evaluations"] == 30
