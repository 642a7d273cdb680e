"""The agent store on a real S3 API (moto server over HTTP) and on a folder: same behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.agent.test_agent import TINY
from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.store.agents import AgentStore, fetch_agent, parse_agent_uri
from transfersearch_trainer.store.layout import MANIFEST, WEIGHTS

EXE = str(Path(sys.executable).parent / "transfersearch")


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(params=["s3", "folder"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AgentStore:
    if request.param == "folder":
        return AgentStore(str(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_env")
    bucket = f"agents-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return AgentStore(f"s3://{bucket}/team/store")


def saved_agent(folder: Path, task: str = "jigsaw", seed: int = 1) -> Path:
    agent = Agent.new(get_space("micro"), TINY, seed=seed)
    agent.task = task
    agent.evaluation = {"mean": 93.5, "budget": 50}
    save_agent(agent, folder)
    return folder


def tamper(store: AgentStore, key: str, change: Any) -> None:
    """Rewrite one stored object, as someone with write access to the bucket could."""
    data = store.blobs.get(key)
    assert data is not None
    store.blobs.put(key, change(data))


def test_push_pull_round_trip(store: AgentStore, tmp_path: Path) -> None:
    folder = saved_agent(tmp_path / "a")
    entry = store.push(folder)
    ref = parse_agent_uri(entry.uri)
    assert ref is not None
    assert (ref.space, ref.task, ref.digest) == ("micro", "jigsaw", entry.digest)
    assert entry.uri.endswith(f"/agents/micro/jigsaw/{entry.digest}")
    assert store.push(folder) == entry  # same bytes, same id: nothing new
    pulled = store.pull(ref, tmp_path / "pulled", weights_digest=f"sha256:{entry.weights_digest}")
    assert (pulled / MANIFEST).read_bytes() == (folder / MANIFEST).read_bytes()
    agent = load_agent(pulled, "micro", entry.weights_digest)
    assert agent.task == "jigsaw"
    assert entry.score == 93.5
    # the same URI through the path every command uses (cached copy, verified)
    assert load_agent(fetch_agent(entry.uri), "micro").digest == entry.weights_digest


def test_list_by_space_and_task(store: AgentStore, tmp_path: Path) -> None:
    pushed = [
        store.push(saved_agent(tmp_path / "j1", "jigsaw", 1)),
        store.push(saved_agent(tmp_path / "j2", "jigsaw", 2)),
        store.push(saved_agent(tmp_path / "s1", "class_scene", 3)),
    ]
    assert {a.digest for a in store.list_agents()} == {a.digest for a in pushed}
    jigsaw = store.list_agents("micro", "jigsaw")
    assert {a.digest for a in jigsaw} == {pushed[0].digest, pushed[1].digest}
    assert all(a.uri.startswith(store.location) for a in jigsaw)
    assert [a.task for a in store.list_agents(task="class_scene")] == ["class_scene"]
    assert store.list_agents("macro") == []


def test_tampered_manifest_is_refused(store: AgentStore, tmp_path: Path) -> None:
    entry = store.push(saved_agent(tmp_path / "a"))
    ref = parse_agent_uri(entry.uri)
    assert ref is not None

    def better_score(data: bytes) -> bytes:
        manifest = json.loads(data)
        manifest["evaluation"]["mean"] = 99.9  # a claim, not the weights
        return json.dumps(manifest, indent=2).encode()

    tamper(store, f"{ref.key}/{MANIFEST}", better_score)
    with pytest.raises(TransferSearchError, match="the manifest was changed after"):
        store.pull(ref, tmp_path / "out")
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_weights_digest_mismatch_is_refused(store: AgentStore, tmp_path: Path) -> None:
    entry = store.push(saved_agent(tmp_path / "a"))
    ref = parse_agent_uri(entry.uri)
    assert ref is not None
    with pytest.raises(TransferSearchError, match="digest mismatch"):
        store.pull(ref, tmp_path / "x", weights_digest="sha256:" + "0" * 64)
    tamper(store, f"{ref.key}/{WEIGHTS}", lambda b: b[:-4] + b"\0\0\0\0")
    with pytest.raises(TransferSearchError, match="weights are corrupt or were replaced"):
        store.pull(ref, tmp_path / "y")


def test_manifest_claims_must_match_the_key(store: AgentStore, tmp_path: Path) -> None:
    """A genuine jigsaw agent copied under class_scene keeps its digest but is still refused."""
    entry = store.push(saved_agent(tmp_path / "a"))
    ref = parse_agent_uri(entry.uri)
    assert ref is not None
    moved = ref.key.replace("/jigsaw/", "/class_scene/")
    for name in (MANIFEST, WEIGHTS):
        data = store.blobs.get(f"{ref.key}/{name}")
        assert data is not None
        store.blobs.put(f"{moved}/{name}", data)
    fake = parse_agent_uri(entry.uri.replace("/jigsaw/", "/class_scene/"))
    assert fake is not None
    with pytest.raises(TransferSearchError, match="manifest says space micro, task jigsaw"):
        store.pull(fake, tmp_path / "out")


def test_missing_agent_and_bad_uris(store: AgentStore, tmp_path: Path) -> None:
    ghost = parse_agent_uri(f"{store.location}/agents/micro/jigsaw/{'a' * 64}")
    assert ghost is not None
    with pytest.raises(TransferSearchError, match="no such agent in the store"):
        store.pull(ghost, tmp_path / "out")
    with pytest.raises(TransferSearchError, match="not an agent in a TransferSearch store"):
        fetch_agent("s3://bucket/some/folder")
    with pytest.raises(TransferSearchError, match="not an agent folder"):
        store.push(tmp_path)


def test_a_local_folder_in_store_layout_is_verified(tmp_path: Path) -> None:
    store = AgentStore(str(tmp_path / "store"))
    entry = store.push(saved_agent(tmp_path / "a"))
    assert fetch_agent(entry.uri) == Path(entry.uri)
    manifest = Path(entry.uri) / MANIFEST
    manifest.write_text(manifest.read_text().replace('"jigsaw"', '"jigsaw" '))
    with pytest.raises(TransferSearchError, match="the manifest was changed after"):
        fetch_agent(entry.uri)


def test_agents_cli_push_list_pull_and_finetune_from_s3(
    s3_env: str, tmp_path: Path, data_dir: Path
) -> None:
    s3_client(s3_env).create_bucket(Bucket="cli-agents")
    env = dict(os.environ, TRANSFERSEARCH_STORE="s3://cli-agents/store", COLUMNS="250")
    env["TRANSFERSEARCH_DATA"] = str(data_dir)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)

    folder = saved_agent(tmp_path / "a", "class_scene")
    res = cli("agents", "push", str(folder), "--json")
    assert res.returncode == 0, res.stderr
    pushed = json.loads(res.stdout)
    assert pushed["uri"].startswith("s3://cli-agents/store/agents/micro/class_scene/")
    res = cli("agents", "list", "--space", "micro", "--task", "class_scene")
    assert res.returncode == 0, res.stderr
    assert pushed["digest"][:12] in res.stdout
    res = cli("agents", "pull", pushed["uri"], "--out", str(tmp_path / "pulled"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "pulled" / WEIGHTS).read_bytes() == (folder / WEIGHTS).read_bytes()
    res = cli(
        "finetune",
        "--agent",
        pushed["uri"],
        "--task",
        "jigsaw",
        "--mode",
        "zero-shot",
        "--out",
        str(tmp_path / "zs"),
    )
    assert res.returncode == 0, res.stderr
    assert (
        json.loads((tmp_path / "zs" / MANIFEST).read_text())["parent"]["digest"]
        == (pushed["weights_digest"])
    )
    res = cli(
        "agents", "pull", "s3://cli-agents/store/agents/micro/jigsaw/" + "b" * 64, "--out", "x"
    )
    assert res.returncode == 2
    assert "no such agent in the store" in res.stderr
    assert "Traceback" not in res.stderr
