"""End to end on a real cluster (kind, k3d...): CRD, CEL, operator, trainer pods, GC.

Deselected by default (`-m 'not e2e'` in pyproject); run with
`KUBECONFIG=... TRANSFERSEARCH_E2E_IMAGE=... .venv/bin/pytest -m e2e` as
docs/operator.md describes. Skips, saying why, without a reachable cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port, wait_port
from tests.paths import ROOT as REPO_ROOT

ROOT = REPO_ROOT
EXE = str(Path(sys.executable).parent / "transfersearch")
CRD = ROOT / "crds" / "transfersearch.io_transfersearches.yaml"
EXAMPLE = ROOT / "examples" / "scratch.yaml"
TIMEOUT = float(os.environ.get("TRANSFERSEARCH_E2E_TIMEOUT", "900"))

pytestmark = pytest.mark.e2e


def kubectl(
    *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, input=stdin, timeout=120
    )
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out


@pytest.fixture(scope="module")
def image() -> str:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("e2e needs KUBECONFIG pointing at a real cluster (kind/k3d): docs/operator.md")
    if shutil.which("kubectl") is None:
        pytest.skip("e2e needs kubectl")
    if kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
        pytest.skip(f"the cluster of KUBECONFIG={os.environ['KUBECONFIG']} is not reachable")
    image = os.environ.get("TRANSFERSEARCH_E2E_IMAGE")
    if not image:
        pytest.skip("set TRANSFERSEARCH_E2E_IMAGE to a trainer image the cluster can run")
    return image


@pytest.fixture(scope="module")
def namespace(image: str) -> Iterator[str]:
    kubectl("apply", "-f", str(CRD))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/transfersearches.transfersearch.io",
    )
    name = f"ts-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(
    namespace: str, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                EXE,
                "operator",
                "-n",
                namespace,
                "--trainer-image",
                image,
                "--metrics-port",
                "0",
                "--liveness-port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(port, timeout=60)
            yield log
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_the_api_server_applies_the_cel_rules(namespace: str) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = "too-parallel"
    doc["spec"]["training"] = {"seeds": 1, "parallelism": 2}
    out = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert out.returncode != 0
    assert "training.parallelism cannot exceed training.seeds" in out.stderr


def test_a_search_succeeds_and_its_children_go_with_it(namespace: str, operator: Path) -> None:
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    deadline = time.monotonic() + TIMEOUT
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        shown = json.loads(kubectl("get", "ts", name, "-n", namespace, "-o", "json").stdout)
        status = shown.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(5)
    assert status.get("phase") == "Succeeded", (status, operator.read_text()[-3000:])
    table = kubectl("get", "ts", "-n", namespace).stdout
    for column in ("PHASE", "TARGET", "SOURCE", "BEST", "GPU-SECONDS", "AGE"):
        assert column in table
    job = str(status["jobName"])
    kubectl("delete", "ts", name, "-n", namespace, "--wait=true", "--timeout=60s")
    kubectl("wait", "--for=delete", f"job/{job}", "-n", namespace, "--timeout=120s", check=False)
    assert kubectl("get", "job", job, "-n", namespace, check=False).returncode != 0
