"""The operator as users run it: `transfersearch operator` in its own process.

An emulated API server runs as another process; the operator and kubectl
reach it through a kubeconfig file; the search is applied with
`kubectl apply` from examples/; a stand-in kubelet (tests/fakes/kubelet.py) runs
each trial pod's real container command as a local process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from tests.conftest import free_port, wait_port
from tests.fakes import apiserver
from tests.fakes.emulator import CONFIGMAPS, JOBS, NS, SEARCHES, Api, manifest, url, wait_for
from tests.fakes.kubelet import Kubelet, executable_path
from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator.children import SEARCH_LABEL, child_name
from transfersearch_trainer.api.jobconfig import load_job_config
from transfersearch_trainer.api.spec import load_manifest

ROOT = REPO_ROOT
EXE = str(Path(sys.executable).parent / "transfersearch")
EXAMPLE = ROOT / "examples" / "scratch.yaml"
IMAGE = "transfersearch-trainer:test"


@dataclass
class Cluster:
    server: str
    kubeconfig: Path
    metrics_port: int
    liveness_port: int
    operator_log: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An API server process and the operator process serving all its namespaces."""
    with operator_cluster(tmp_path) as running:
        yield running


@contextmanager
def operator_cluster(tmp_path: Path, **operator_env: str) -> Iterator[Cluster]:
    """`cluster`, the operator's environment extended by `operator_env` (its policy)."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is missing: `make test` installs Debian's kubernetes-client")
    with apiserver.serve(tmp_path / "apiserver.log") as server:
        config = apiserver.kubeconfig(server, tmp_path / "kubeconfig")
        metrics_port, liveness_port = free_port(), free_port()
        log = tmp_path / "operator.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    EXE,
                    "operator",
                    "--all-namespaces",
                    "--trainer-image",
                    IMAGE,
                    "--metrics-port",
                    str(metrics_port),
                    "--liveness-port",
                    str(liveness_port),
                ],
                env={**os.environ, **operator_env, "KUBECONFIG": str(config)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_port(liveness_port, timeout=60)
                yield Cluster(server, config, metrics_port, liveness_port, log)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        assert proc.returncode == 0, f"the operator exited with {proc.returncode}: see {log}"


@pytest_asyncio.fixture
async def api(cluster: Cluster) -> AsyncIterator[Api]:
    client = Api(cluster.server)
    yield client
    await client.close()


async def kubectl(cluster: Cluster, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def search_status(api: Api, name: str) -> dict[str, Any]:
    search = await api.get(SEARCHES, NS, name)
    return dict((search or {}).get("status") or {})


def http_get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.asyncio
async def test_kubectl_apply_runs_the_jobs_container_command(
    cluster: Cluster, api: Api, tmp_path: Path
) -> None:
    await kubectl(cluster, "apply", "--validate=false", "-n", NS, "-f", str(EXAMPLE))
    name = load_manifest(EXAMPLE).metadata.name
    kubelet = Kubelet(api, NS, tmp_path / "node", image_env={"PATH": executable_path()})
    watching = asyncio.create_task(kubelet.watch())
    try:
        # Trial 0's pod ran and the operator read how it ended, whatever that was.
        status = await wait_for(
            "trial 0 in the status",
            lambda: _with_result(api, name, trial=0),
            timeout=60,
        )
    finally:
        watching.cancel()
        await kubelet.stop()

    search = await api.get(SEARCHES, NS, name)
    assert search is not None
    child = child_name(name, search["metadata"]["uid"], 1)
    job = await api.get(JOBS, NS, child)
    config_map = await api.get(CONFIGMAPS, NS, child)
    assert job is not None
    assert config_map is not None
    for child in (job, config_map):
        assert child["metadata"]["ownerReferences"][0]["uid"] == search["metadata"]["uid"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE

    run = next(r for r in kubelet.runs if r.index == 0)
    assert run.command == ["transfersearch", "train", "--config", "/etc/transfersearch/job.json"]
    config_path = run.paths["/etc/transfersearch"] / "job.json"
    assert run.argv == ["transfersearch", "train", "--config", str(config_path)]
    assert run.env["JOB_COMPLETION_INDEX"] == "0"
    assert run.env["HOME"] == str(run.paths["/tmp"])
    config = load_job_config(config_path)
    assert (config.search, config.namespace) == (name, NS)
    assert config.uid == search["metadata"]["uid"]
    assert config.spec == load_manifest(EXAMPLE).spec
    assert config.termination_log == str(run.paths["/dev/termination-log"])
    assert config.output.startswith(str(run.paths["/var/cache/transfersearch"]))

    (result,) = [r for r in status["results"] if r["trial"] == 0]
    assert result["status"] == ("Succeeded" if run.exit_code == 0 else "Failed")
    assert status["trials"]["succeeded"] + status["trials"]["failed"] >= 1
    assert status["observedGeneration"] == 1

    # kubectl finds the resource by its short name through discovery.
    shown = json.loads(await kubectl(cluster, "get", "ts", name, "-n", NS, "-o", "json"))
    assert shown["status"]["phase"] == (await search_status(api, name))["phase"]

    code, body = http_get(cluster.liveness_port, "/healthz")
    assert code == 200, body
    code, metrics = http_get(cluster.metrics_port, "/metrics")
    assert code == 200
    assert "transfersearch_operator_build_info{python_version=" in metrics
    assert "transfersearch_operator_trials_started_total" in metrics
    assert "transfersearch_operator_reconcile_duration_seconds_bucket" in metrics

    await kubectl(cluster, "delete", "ts", name, "-n", NS)
    assert await api.get(SEARCHES, NS, name) is None  # no finalizer: gone at once


async def _with_result(api: Api, name: str, trial: int) -> dict[str, Any] | None:
    status = await search_status(api, name)
    trials = status.get("trials", {})
    ended = trials.get("succeeded", 0) + trials.get("failed", 0)
    if ended and any(r["trial"] == trial for r in status.get("results", [])):
        return status
    return None


@pytest.mark.needs_trainer
@pytest.mark.asyncio
async def test_search_succeeds_with_the_real_trainer(
    cluster: Cluster, api: Api, tmp_path: Path, data_dir: Path
) -> None:
    """The whole way: kubectl apply -> operator -> Job -> `transfersearch train` -> status."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["training"].update(steps=200)
    doc["spec"]["evaluation"].update(searches=20)
    manifest = tmp_path / "small.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    await kubectl(cluster, "apply", "--validate=false", "-n", NS, "-f", str(manifest))
    name = doc["metadata"]["name"]
    image_env = {"PATH": executable_path(), "TRANSFERSEARCH_DATA": str(data_dir)}
    kubelet = Kubelet(api, NS, tmp_path / "node", image_env=image_env)
    watching = asyncio.create_task(kubelet.watch())
    try:
        status = await wait_for(
            "the search to end",
            lambda: _ended(api, name),
            timeout=240,  # within pytest-timeout (300 s), so a hang fails here with the runs
            interval=0.5,
        )
    finally:
        watching.cancel()
        await kubelet.stop()
    assert status["phase"] == "Succeeded", (status, [r.message for r in kubelet.runs])
    seeds = doc["spec"]["training"]["seeds"]
    assert [r["trial"] for r in status["results"]] == list(range(seeds))
    for result in status["results"]:
        assert result["status"] == "Succeeded"
        assert result["bestArch"].startswith("64-")
        assert isinstance(result["bestMetric"], float)
    assert status["bestMetric"] == max(r["bestMetric"] for r in status["results"])


async def _ended(api: Api, name: str) -> dict[str, Any] | None:
    status = await search_status(api, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


SEARCH_COUNT = 100


@pytest.mark.slow
@pytest.mark.asyncio
async def test_hundred_searches_at_once(
    cluster: Cluster, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    """All reconciled; prints the time and the create->Job latency seen by a client.

    Latency runs from sending a search's POST to seeing its Job's ADDED event on a
    watch, as a user or controller would. Printed, not asserted: it depends on the
    machine (here the emulated API server shares the CPUs with the operator).
    """
    names = [f"s{i:03d}" for i in range(SEARCH_COUNT)]
    seen: dict[str, float] = {}  # by search
    jobs: dict[str, str] = {}  # search -> its Job
    watching = asyncio.create_task(_watch_jobs(api, seen, jobs))
    await asyncio.sleep(0.3)  # the watch is open
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        sent[name] = time.perf_counter()
        await api.create(SEARCHES, manifest(name))

    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    try:
        await asyncio.gather(*(create(n) for n in names))
        await wait_for("every Job", lambda: len(seen) >= SEARCH_COUNT, timeout=120)
        jobs_done = time.perf_counter() - start
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu_seconds().items()}
        statuses = await wait_for(
            "every status", lambda: _all_created(api, SEARCH_COUNT), timeout=120, interval=0.05
        )
        total = time.perf_counter() - start
        for name in (f"alone{i}" for i in range(5)):  # for comparison: one at a time
            await create(name)
            await wait_for(name, lambda n=name: n in seen, interval=0.002)  # type: ignore[misc]
    finally:
        watching.cancel()
    alone = statistics.median(seen[f"alone{i}"] - sent[f"alone{i}"] for i in range(5))
    for i in range(5):
        del seen[f"alone{i}"]
        del jobs[f"alone{i}"]
    assert sorted(seen) == names
    assert {s["jobName"] for s in statuses} == set(jobs.values())
    latencies = sorted(seen[n] - sent[n] for n in names)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * SEARCH_COUNT) - 1]
    with capsys.disabled():
        print(
            f"\n{SEARCH_COUNT} searches created at once: every Job in {jobs_done:.2f} s, "
            f"every status in {total:.2f} s; create->Job latency p50 {p50 * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
            f"a search created alone: {alone * 1000:.0f} ms; CPU until every Job: "
            + ", ".join(f"{who} {seconds:.2f} s" for who, seconds in sorted(cpu.items()))
        )


def _cpu_seconds() -> dict[str, float]:
    """CPU time used so far by this process and its children (the operator, the API server)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            fields = rest.rsplit(")", 1)[1].split()
            ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
            if int(pid) == os.getpid():
                who = "client (pytest)"
            elif ppid == os.getpid():
                cmdline = (stat.parent / "cmdline").read_bytes()
                who = "API emulator" if b"tests.fakes.apiserver" in cmdline else "operator"
            else:
                continue
        except OSError:
            continue  # exited meanwhile
        out[who] = (utime + stime) / tick
    return out


async def _watch_jobs(api: Api, seen: dict[str, float], jobs: dict[str, str]) -> None:
    """Note when each search's Job's first watch event arrives, and its name."""
    timeout = aiohttp.ClientTimeout(total=None)
    async with api.session.get(url(JOBS, NS), params={"watch": "true"}, timeout=timeout) as r:
        async for line in r.content:
            if line.strip():
                event = json.loads(line)
                meta = event["object"]["metadata"]
                search = meta["labels"][SEARCH_LABEL]
                seen.setdefault(search, time.perf_counter())
                jobs.setdefault(search, meta["name"])


async def _all_created(api: Api, count: int) -> list[dict[str, Any]] | None:
    searches = await api.list(SEARCHES, NS)
    statuses = [s.get("status") or {} for s in searches]
    created = [
        s
        for s in statuses
        if any(c["type"] == "Created" and c["status"] == "True" for c in s.get("conditions", []))
    ]
    return created if len(created) == count else None


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_operator_command_needs_namespaces() -> None:
    out = run_cli("operator")
    assert out.returncode == 2
    assert "--namespace" in out.stderr
    assert "--all-namespaces" in out.stderr
    assert "Traceback" not in out.stderr


def test_operator_command_without_credentials(tmp_path: Path) -> None:
    out = run_cli(
        "operator",
        "-n",
        "x",
        KUBECONFIG=str(tmp_path / "missing"),
        HOME=str(tmp_path),
        KUBERNETES_SERVICE_HOST="",
    )
    assert out.returncode == 2
    assert "no Kubernetes credentials" in out.stderr
    assert "KUBECONFIG" in out.stderr
    assert "Traceback" not in out.stderr
