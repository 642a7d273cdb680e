"""Searches on the user's own data, as users run them: the console script, real trainings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.trainer.cli.test_cli import EXE, run
from tests.trainer.store.test_store import s3_client
from transfersearch_trainer.evaluation.digits import export_digits

PILOT = ("--space", "micro", "--epochs", "1", "--width", "8")


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_digits(tmp_path_factory.mktemp("digits") / "digits.npz")


def test_zoo_agent_searches_digits_then_a_warm_cache_trains_nothing(
    digits: Path, data_dir: Path, tmp_path: Path
) -> None:
    args = ("search", "--dataset", str(digits), *PILOT, "--budget", "3", "--agent", "zoo")
    cache = str(tmp_path / "cache")
    out = run(*args, "--mode", "online", "--cache", cache, "--json", data=data_dir)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    archs = [t["arch"] for t in r["trajectory"]]
    assert r["evaluations"] == 3
    assert len(set(archs)) == 3
    assert all(0 < t["metric"] <= 1 for t in r["trajectory"])
    assert r["best_metric"] == max(t["metric"] for t in r["trajectory"])
    assert r["best_arch"] in archs
    assert r["device_seconds"] > 0
    assert (r["trained"], r["cached"]) == (3, 0)
    assert r["start"] == "prior"  # the zoo's all-task agent starts at the tables' prior
    assert r["rank"] is None  # no table of the user's data: nothing to rank against
    again = json.loads(run(*args, "--cache", cache, "--json", data=data_dir).stdout)
    assert (again["trained"], again["cached"], again["evaluation_seconds"]) == (0, 3, 0.0)
    # the same search, every answer from the cache (which keeps what each training cost)
    assert again["trajectory"] == r["trajectory"]


def test_compare_runs_baselines_through_the_same_evaluator(
    digits: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = run(
        "search", "--dataset", str(digits), *PILOT, "--budget", "3", "--mode", "scratch",
        "--compare", "random,local", "--no-cache", data=data_dir,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for method in ("agent-scratch", "random", "local"):
        row = next(ln for ln in out.stdout.splitlines() if method in ln)
        assert " 3 " in row  # evaluations, and all three trained (no cache)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--task", "jigsaw", "--dataset", "x.npz"), "--task/--dataset: give exactly one"),
        ((), "--task/--dataset: give exactly one"),
        (("--dataset", "missing.npz", "--mode", "scratch"), "missing.npz"),
        (("--dataset", "DIGITS", "--compare", "bogus"), "--compare: unknown bogus"),
        (("--dataset", "DIGITS", "--format", "csv"), "--format: unknown 'csv'"),
        (("--dataset", "DIGITS", "--width", "7", "--mode", "scratch"), "width"),
    ],
)
def test_bad_own_data_input_is_one_line(
    args: tuple[str, ...], message: str, digits: Path, data_dir: Path
) -> None:
    args = tuple(str(digits) if a == "DIGITS" else a for a in args)
    out = run("search", *args, "--budget", "2", data=data_dir)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_killed_search_restarted_never_retrains_what_it_finished(
    digits: Path, data_dir: Path, s3_env: str, tmp_path: Path
) -> None:
    bucket = f"own-{uuid.uuid4().hex[:8]}"
    client = s3_client(s3_env)
    client.create_bucket(Bucket=bucket)
    client.upload_file(str(digits), bucket, "datasets/digits.npz")
    cache = f"s3://{bucket}/searches/pilot/cache"
    args = [
        "search", "--dataset", f"s3://{bucket}/datasets/digits.npz", *PILOT, "--budget", "6",
        "--mode", "scratch", "--cache", cache, "--json",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items()}
    env["TRANSFERSEARCH_DATA"] = str(data_dir)

    def finished() -> int:
        listing = client.list_objects_v2(Bucket=bucket, Prefix="searches/pilot/cache/evaluations/")
        return len(listing.get("Contents", []))

    proc = subprocess.Popen([EXE, *args], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while finished() < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # as a node would, mid-training
    proc.wait(timeout=30)
    done = finished()
    assert done >= 2
    out = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    restarted = json.loads(out.stdout)
    assert restarted["evaluations"] == 6
    assert (restarted["trained"], restarted["cached"]) == (6 - done, done)
    fresh = run(*[a for a in args if a not in ("--cache", cache)], "--no-cache", data=data_dir)
    reference = json.loads(fresh.stdout)
    key = [(t["arch"], t["metric"]) for t in reference["trajectory"]]
    assert [(t["arch"], t["metric"]) for t in restarted["trajectory"]] == key
    assert finished() == 6


def test_bench_training_prints_seconds_per_evaluation() -> None:
    out = run("bench", "training", "--widths", "4", "--epochs", "1", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {(row["space"], row["width"]) for row in r["rows"]} == {("micro", 4), ("macro", 4)}
    assert all(row["seconds"] > 0 and 0 < row["metric"] <= 1 for row in r["rows"])


def _dataset_manifest(tmp: Path, digits: Path) -> Path:
    """examples/own-data.yaml, pointed at a local file and made tiny (3 trainings of width 8)."""
    import yaml

    doc = yaml.safe_load((Path(__file__).parents[3] / "examples" / "own-data.yaml").read_text())
    doc["spec"]["target"]["dataset"]["uri"] = str(digits)
    doc["spec"]["target"]["training"].update(epochs=1, width=8)
    doc["spec"]["evaluation"]["budget"] = 3
    del doc["spec"]["s3"]
    path = tmp / "own-data.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_run_takes_a_dataset_manifest_and_a_rerun_trains_nothing(
    digits: Path, data_dir: Path, tmp_path: Path
) -> None:
    manifest = _dataset_manifest(tmp_path, digits)
    args = ("run", str(manifest), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c"))
    out = run(*args, "--json", data=data_dir)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert (r["dataset"], r["target_task"], r["mode"]) == (str(digits), "digits", "online")
    # every evaluation is a paid training: no scratch reference, no baselines unless asked
    (search,) = r["searches"]
    assert r["baselines"] == []
    assert (search["evaluations"], search["trained"], search["rank"]) == (3, 3, None)
    assert r["best"]["best_metric"] == search["best_metric"] > 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["searches"] == r["searches"]
    again = run(*args, data=data_dir)  # the table, from the cache this time
    assert again.returncode == 0, again.stderr
    row = next(ln for ln in again.stdout.splitlines() if "agent-online" in ln)
    assert search["best_arch"] in row
    assert "n/a" in row  # rank and regret: no table of the user's data
    assert "What the study" not in again.stdout  # the study measured benchmark tasks only
    rerun = json.loads((tmp_path / "out" / "results.json").read_text())["searches"][0]
    assert (rerun["trained"], rerun["cached"]) == (0, 3)
    assert rerun["trajectory"] == search["trajectory"]
