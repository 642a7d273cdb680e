"""A search on the user's own data the whole way: kubectl apply -> the operator process ->
Job -> the stand-in kubelet runs `transfersearch train` -> every evaluation a real (tiny)
training of the digits pilot read from S3 (moto over HTTP) -> the status and `kubectl get`.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.emulator import NS, SECRETS, Api, credentials_secret, wait_for
from tests.fakes.kubelet import Kubelet, executable_path
from tests.operator.test_operator_process import kubectl, operator_cluster, search_status
from tests.paths import ROOT
from tests.trainer.pod.test_trainer import client
from transfersearch_operator.crd import PRINTER_COLUMNS
from transfersearch_operator.policy import ENV_S3_ENDPOINTS
from transfersearch_trainer.evaluation.digits import export_digits

EXAMPLE = ROOT / "examples" / "own-data.yaml"
BUDGET = 3


def _manifest(bucket: str, endpoint: str) -> dict[str, Any]:
    """examples/own-data.yaml made tiny: 3 evaluations of 1 epoch at width 4, on moto."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    spec = doc["spec"]
    spec["target"]["dataset"]["uri"] = f"s3://{bucket}/datasets/digits.npz"
    spec["target"]["training"].update(epochs=1, width=4)
    spec["evaluation"]["budget"] = BUDGET
    spec["resources"]["cpu"] = "1"  # one torch thread: two spin on a busy 2-core machine
    spec["s3"].update(bucket=bucket, endpoint=endpoint, region="us-east-1")
    return dict(doc)


async def _ended(api: Api, name: str) -> dict[str, Any] | None:
    status = await search_status(api, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


@pytest.mark.needs_trainer
@pytest.mark.asyncio
async def test_an_own_data_search_succeeds_with_the_real_trainer(
    s3_server: str, tmp_path: Path, data_dir: Path
) -> None:
    bucket = f"own-{uuid.uuid4().hex[:8]}"
    s3 = client(s3_server)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(export_digits(tmp_path / "digits.npz")), bucket, "datasets/digits.npz")
    doc = _manifest(bucket, s3_server)
    name = doc["metadata"]["name"]
    files = tmp_path / "own-data.yaml"
    files.write_text(yaml.safe_dump(doc))
    # the image's environment: the trainer on PATH, the benchmark's tables (the agent's
    # sources), and this checkout's code when the tests run it from PYTHONPATH
    image_env = {"PATH": executable_path(), "TRANSFERSEARCH_DATA": str(data_dir)}
    if os.environ.get("PYTHONPATH"):
        image_env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    with operator_cluster(tmp_path, **{ENV_S3_ENDPOINTS: s3_server}) as cluster:
        api = Api(cluster.server)
        try:
            await api.create(SECRETS, credentials_secret(doc["spec"]["s3"]["credentialsSecret"]))
            await kubectl(cluster, "apply", "--validate=false", "-n", NS, "-f", str(files))
            kubelet = Kubelet(api, NS, tmp_path / "node", image_env=image_env)
            watching = asyncio.create_task(kubelet.watch())
            try:
                status = await wait_for(
                    "the search to end", lambda: _ended(api, name), timeout=240, interval=0.5
                )
            finally:
                watching.cancel()
                await kubelet.stop()
            # the CRD's printer columns (the emulator serves no tables: kubectl applies them)
            columns = ",".join(f"{c['name']}:{c['jsonPath']}" for c in PRINTER_COLUMNS)
            shown = await kubectl(
                cluster, "get", "ts", name, "-n", NS, "-o", f"custom-columns={columns}"
            )
        finally:
            await api.close()
    assert status["phase"] == "Succeeded", (status, [r.message for r in kubelet.runs])
    (result,) = status["results"]
    assert result["status"] == "Succeeded"
    assert "rank" not in result
    assert "regret" not in result
    assert 0 < result["bestMetric"] <= 1  # validation accuracy on the digits
    assert status["bestMetric"] == result["bestMetric"]
    assert status["bestArch"] == result["bestArch"]
    assert "bestRank" not in status
    assert (status["evaluationsDone"], status["evaluations"]) == (BUDGET, f"{BUDGET}/{BUDGET}")
    assert status["gpuSeconds"] == 0  # on CPU
    assert status["deviceSeconds"] > 0  # the trainings
    assert status["target"] == "digits"
    # kubectl get ts: the dataset's name, the best metric, evaluations and GPU seconds
    header, row = shown.splitlines()[:2]
    columns = dict(zip(header.split(), row.split(), strict=True))  # every column has a value
    assert columns["Target"] == "digits"
    assert columns["Phase"] == "Succeeded"
    assert float(columns["Best"]) == pytest.approx(status["bestMetric"], abs=1e-3)
    assert columns["Evaluations"] == f"{BUDGET}/{BUDGET}"
    assert float(columns["GPU-Seconds"]) == 0
    assert columns["Rank"] == "<none>"  # no table: no rank
    # the trainings are cached beside the agent store, where later searches find them
    prefix = doc["spec"]["s3"].get("prefix", "transfersearch")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/cache/evaluations/")
    assert len(listed.get("Contents", [])) == BUDGET
    results = json.loads(
        s3.get_object(Bucket=bucket, Key=result["resultsUri"].split(f"s3://{bucket}/", 1)[1])[
            "Body"
        ].read()
    )
    assert results["trained"] == BUDGET
    assert results["dataset"]["name"] == "digits"
