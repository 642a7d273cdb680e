"""Benchmark files from S3: checked by sha256 when downloaded and whenever the cache is reused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest

from transfersearch_trainer.api.errors import BenchmarkDataError
from transfersearch_trainer.benchmark.datasource import resolve_data

CSV = "tnb101_micro_final_valid.csv"


@pytest.fixture
def bucket(s3_env: str, data_dir: Path) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket="checked-data")
    body = (data_dir / CSV).read_bytes()
    s3.put_object(
        Bucket="checked-data",
        Key=f"good/{CSV}",
        Body=body,
        Metadata={"sha256": hashlib.sha256(body).hexdigest()},
    )
    s3.put_object(
        Bucket="checked-data", Key=f"lying/{CSV}", Body=body, Metadata={"sha256": "0" * 64}
    )
    s3.put_object(Bucket="checked-data", Key=f"native/{CSV}", Body=body, ChecksumAlgorithm="SHA256")
    return "checked-data"


def test_a_damaged_cache_is_fetched_again(bucket: str, data_dir: Path) -> None:
    local = resolve_data(f"s3://{bucket}/good/{CSV}")
    original = (data_dir / CSV).read_bytes()
    assert local.read_bytes() == original
    # same size, one byte changed: a size-and-ETag cache would serve this
    local.write_bytes(original[:100] + b"#" + original[101:])
    assert resolve_data(f"s3://{bucket}/good/{CSV}").read_bytes() == original
    assert resolve_data(f"s3://{bucket}/native/{CSV}").read_bytes() == original


def test_a_download_that_does_not_match_the_published_sha256_is_refused(bucket: str) -> None:
    with pytest.raises(BenchmarkDataError, match="sha256 .* instead of the published 0000"):
        resolve_data(f"s3://{bucket}/lying/{CSV}")
    cache = Path(os.environ["TRANSFERSEARCH_CACHE"])
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing half-written is left
