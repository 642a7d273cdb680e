"""The evaluation cache, in a folder and in S3 (moto over HTTP): verified, shared, claimed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.trainer.store.test_store import s3_client
from transfersearch_trainer.evaluation.cache import BlobCache, cache_key
from transfersearch_trainer.search.evaluator import Evaluation
from transfersearch_trainer.store.blobs import open_blobs


@pytest.fixture(params=["folder", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return str(tmp_path / "cache")
    endpoint = request.getfixturevalue("s3_env")
    bucket = f"cache-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/team/search-1/cache"


KEY = cache_key("ab" * 32, "micro", "64-41414-3_13_113", {"epochs": 1, "width": 8}, 0)


def test_key_names_everything_that_decides_the_result() -> None:
    base = ("ab" * 32, "micro", "64-41414-3_13_113", {"epochs": 1, "width": 8}, 0)
    other = [
        ("cd" * 32, *base[1:]),
        (base[0], "macro", *base[2:]),
        (*base[:2], "64-41414-3_13_112", *base[3:]),
        (*base[:3], {"epochs": 2, "width": 8}, base[4]),
        (*base[:4], 1),
    ]
    keys = {cache_key(*base), *(cache_key(*o) for o in other)}  # type: ignore[arg-type]
    assert len(keys) == 6
    assert cache_key(base[0], base[1], base[2], {"width": 8, "epochs": 1}, 0) == KEY


def test_an_entry_is_used_only_when_it_verifies(location: str) -> None:
    cache = BlobCache.open(location)
    assert cache.get(KEY) is None
    cache.put(KEY, Evaluation(0.75, 12.5, 3.0), {"arch": "64-41414-3_13_113"})
    got = cache.get(KEY)
    assert got == Evaluation(0.75, 12.5, 3.0, cached=True)  # the training's cost, marked cached
    blobs = open_blobs(location)
    [entry] = [k for k in blobs.keys("evaluations/")]
    record = json.loads(blobs.get(entry) or b"")
    record["metric"] = 0.99  # tampered with (or a torn copy): the digest no longer matches
    blobs.put(entry, json.dumps(record).encode())
    assert cache.get(KEY) is None
    assert cache.rejected == 1
    blobs.put(entry, b"not json")
    assert cache.get(KEY) is None
    # an entry copied under another key does not answer for that key
    cache.put(KEY, Evaluation(0.75, 12.5, 3.0), {})
    other = cache_key("ef" * 32, "micro", "64-41414-3_13_113", {}, 0)
    blobs.put(BlobCache._entry(other), blobs.get(entry) or b"")
    assert cache.get(other) is None


def test_a_claim_is_exclusive_taken_back_by_its_owner_and_taken_over_when_stale(
    location: str,
) -> None:
    a = BlobCache.open(location, owner="search/trial-0")
    b = BlobCache.open(location, owner="search/trial-1", claim_seconds=3600)
    assert a.claim(KEY)
    assert not b.claim(KEY)  # trial 1 must wait for trial 0's training
    restarted = BlobCache.open(location, owner="search/trial-0")
    assert restarted.claim(KEY)  # trial 0's pod, restarted, takes its own claim back
    stale = BlobCache.open(location, owner="search/trial-1", claim_seconds=0.0)
    time.sleep(0.01)
    assert stale.claim(KEY)  # an abandoned claim does not block forever
    stale.release(KEY)
    assert b.claim(KEY)


def test_two_trials_never_train_the_same_architecture_twice(location: str) -> None:
    trainings: list[str] = []
    lock = threading.Lock()

    def train(who: str) -> Evaluation:
        with lock:
            trainings.append(who)
        time.sleep(0.3)
        return Evaluation(0.5, 0.3)

    results: dict[str, Evaluation] = {}

    def trial(who: str) -> None:
        cache = BlobCache.open(location, owner=who, poll_seconds=0.05)
        results[who] = cache.evaluate(KEY, lambda: train(who), {"arch": "x"})

    threads = [threading.Thread(target=trial, args=(f"trial-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(trainings) == 1
    assert sorted(r.cached for r in results.values()) == [False, True, True]
    assert {r.metric for r in results.values()} == {0.5}
    assert not open_blobs(location).keys("claims/")  # released after the training


def _race(location: str, heartbeat: float | None) -> list[str]:
    """Trial 0 trains for longer than a claim lasts; trial 1 waits on it. Who trained?"""
    trainings: list[str] = []
    started = threading.Event()

    def train(who: str) -> Evaluation:
        trainings.append(who)
        started.set()
        time.sleep(1.5)
        return Evaluation(0.5, 1.5)

    def trial(who: str, beat: float | None) -> None:
        cache = BlobCache.open(
            location, owner=who, poll_seconds=0.05, claim_seconds=0.6, heartbeat_seconds=beat
        )
        cache.evaluate(KEY, lambda: train(who), {"arch": "x"})

    # a claimant that never beats (heartbeat longer than the training) is a dead trial's claim
    first = threading.Thread(target=trial, args=("trial-0", heartbeat or 3600.0))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=trial, args=("trial-1", None))
    second.start()
    for t in (first, second):
        t.join(timeout=30)
    return trainings


def test_a_heartbeat_keeps_a_long_training_claimed(location: str) -> None:
    assert _race(location, heartbeat=0.1) == ["trial-0"]  # trial 1 waited for the result


def test_a_claim_that_stops_beating_is_taken_over_within_the_claim_period(location: str) -> None:
    # the same race without beats: trial 1 takes over after 0.6 s instead of waiting 1.5 s
    assert _race(location, heartbeat=None) == ["trial-0", "trial-1"]


def test_the_heartbeat_gives_up_a_claim_another_trial_took_over(location: str) -> None:
    mine = BlobCache.open(location, owner="trial-0", heartbeat_seconds=0.05)
    other = BlobCache.open(location, owner="trial-1", claim_seconds=0.0)
    assert mine.claim(KEY)
    time.sleep(0.01)
    assert other.claim(KEY)  # stale by trial 1's reckoning: taken over
    stop = threading.Event()
    beat = threading.Thread(target=mine._beat, args=(KEY, stop))
    beat.start()
    beat.join(timeout=10)
    stop.set()  # ends a beat that kept going (the failure), so the test does not hang
    assert not beat.is_alive()  # the beat saw the new owner and stopped, without a fight
    assert mine.holder(KEY)[0] == "trial-1"
