"""The console script as users run it: a real subprocess, real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "transfersearch")


def run(*args: str, data: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "TRANSFERSEARCH_DATA"}
    if data is not None:
        full_env["TRANSFERSEARCH_DATA"] = str(data)
    full_env.update(env, COLUMNS="160")
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_benchmark_info_micro(data_dir: Path) -> None:
    out = run("benchmark", "info", "--space", "micro", data=data_dir)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "class_object" in ln)
    assert "45.586" in line
    assert "64-41414-3_13_113" in line
    for task, optimum in [
        ("class_scene", "54.936"),
        ("jigsaw", "95.372"),
        ("room_layout", "-0.6010"),
        ("segmentsemantic", "94.613"),
        ("normal", "0.5873"),
        ("autoencoder", "0.5772"),
    ]:
        assert optimum in next(ln for ln in out.stdout.splitlines() if task in ln)


def test_benchmark_info_json_macro(data_dir: Path) -> None:
    out = run("benchmark", "info", "--space", "macro", "--json", "--data", str(data_dir))
    info = json.loads(out.stdout)
    assert info["architectures"] == 3256
    assert {t["task"] for t in info["tasks"]} == {
        "class_object",
        "class_scene",
        "jigsaw",
        "room_layout",
        "segmentsemantic",
        "normal",
        "autoencoder",
    }


@pytest.mark.parametrize("method", ["random", "local", "evolution"])
def test_baseline_json_is_reproducible(data_dir: Path, method: str) -> None:
    args = (
        "baseline",
        "--task",
        "jigsaw",
        "--space",
        "micro",
        "--method",
        method,
        "--budget",
        "30",
        "--searches",
        "40",
        "--seed",
        "5",
        "--json",
    )
    first, second = run(*args, data=data_dir), run(*args, data=data_dir)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result == json.loads(second.stdout)
    for key in ("task", "space", "method", "budget", "searches", "mean", "stderr", "regret"):
        assert key in result
    assert result["method"] == method
    assert result["regret"] == pytest.approx(result["optimum"] - result["mean"])


@pytest.mark.parametrize(
    "method", ["multi-top-k", "zero-shot-transfer", "prior-local", "bounding-box", "surrogate"]
)
def test_transfer_baseline_json(data_dir: Path, method: str) -> None:
    out = run(
        "baseline",
        "--method",
        method,
        "--sources",
        "all-but-target",
        "--task",
        "class_object",
        "--space",
        "micro",
        "--budget",
        "20",
        "--searches",
        "10",
        "--json",
        data=data_dir,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["method"] == method
    assert "class_object" not in result["sources"]
    assert len(result["sources"]) == 6
    for key in ("mean", "stderr", "mean_rank", "regret"):
        assert isinstance(result[key], float)
    assert result["mean_rank"] >= 1.0
    assert result["regret"] == pytest.approx(result["optimum"] - result["mean"])
    if result["deterministic"]:
        assert result["stderr"] == 0.0


def test_baseline_table(data_dir: Path) -> None:
    out = run(
        "baseline",
        "--task",
        "autoencoder",
        "--space",
        "macro",
        "--budget",
        "20",
        "--searches",
        "30",
        data=data_dir,
    )
    assert out.returncode == 0, out.stderr
    for method in ("random", "local", "evolution", "multi-top-k", "surrogate", "mean rank"):
        assert method in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("baseline", "--task", "imagenet"), "--task: unknown task 'imagenet'"),
        (("benchmark", "info", "--data", "/does/not/exist"), "/does/not/exist: no such file"),
        (("baseline", "--task", "jigsaw", "--budget", "0"), "budget: must be between"),
        (
            ("baseline", "--task", "jigsaw", "--sources", "class_object,jigsaw"),
            "--sources: the target task 'jigsaw' cannot be a source",
        ),
    ],
)
def test_errors_are_one_clear_line(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    out = run(*args, data=data_dir)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_missing_data_location_says_how_to_fix() -> None:
    out = run("benchmark", "info")
    assert out.returncode == 2
    assert "TRANSFERSEARCH_DATA" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("benchmark", "info", "--data", "no[/such]dir"), "no[/such]dir"),
        (("benchmark", "info", "--data", "[bold]x[/bold]"), "[bold]x[/bold]"),
        (("baseline", "--task", "[red]BOOM[/red]", "--budget", "5"), "[red]BOOM[/red]"),
    ],
)
def test_user_text_is_printed_as_written_never_as_markup(
    args: tuple[str, ...], shown: str, data_dir: Path
) -> None:
    out = run(*args, data=data_dir)
    assert out.returncode == 2, out.stderr
    assert shown in out.stderr  # brackets kept: nothing eaten as a style
    assert "Traceback" not in out.stderr
    assert "MarkupError" not in out.stderr


def test_a_manifest_with_markup_in_a_field_is_refused_plainly(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\n"
        "metadata: {name: m}\n"
        'spec: {target: {task: "[/x]"}, transfer: {mode: scratch}}\n'
    )
    out = run("run", str(manifest), "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "[/x]" in out.stderr
    assert "Traceback" not in out.stderr
