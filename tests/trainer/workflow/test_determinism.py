"""Same manifest, same seed, same result: on any machine, whatever its cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import TINY_HP, hp_flags

MANIFEST = """\
apiVersion: transfersearch.io/v1alpha1
kind: TransferSearch
metadata: {name: same}
spec:
  benchmark: {space: micro}
  source: {task: class_scene, pretrainSteps: 80}
  target: {task: class_object}
  transfer: {protocol: paper, mode: finetune}
  training: {steps: 60, targetEvaluations: 400, seed: 0}
  evaluation: {budget: 12, searches: 12}
  resources: {cpu: "1"}
"""


def timeless(value: Any) -> Any:
    """The report without what may differ between runs: timings, folders, the device name."""
    if isinstance(value, dict):
        return {
            k: timeless(v)
            for k, v in value.items()
            if "seconds" not in k and k not in ("path", "device")
        }
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def start(tmp: Path, name: str, threads: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "TRANSFERSEARCH_DATA": str(data_dir)}
    cmd = [sys.executable, "-m", "transfersearch_trainer.cli.main", "run", str(tmp / "m.yaml")]
    cmd += ["--out", str(tmp / name), "--agents", str(tmp / f"agents-{name}"), "--json"]
    cmd += hp_flags({**TINY_HP, "eval_interval": 30, "eval_searches": 8, "eval_budget": 10})
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=250)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_a_manifest_gives_the_same_results_whatever_the_machines_threads(
    tmp_path: Path, data_dir: Path
) -> None:
    """Two runs side by side, one started with 1 thread and one with 2: the manifest's CPU
    request (1) decides, so agents (weights digests included) and every result are the
    same. (Before the thread count came from the manifest, the 2-thread run trained
    other weights.)"""
    (tmp_path / "m.yaml").write_text(MANIFEST)
    runs = [start(tmp_path, name, n, data_dir) for name, n in (("one", "1"), ("two", "2"))]
    one, two = (report(p) for p in runs)  # side by side: timing must not matter either
    assert one["torch_threads"] == two["torch_threads"] == 1
    assert timeless(one) == timeless(two)
