"""Where benchmark files come from: a local path, or an ``s3://`` URI cached on local disk.

Each object is fetched by `store.downloads.fetch_object`: hashed as it streams in,
refused when it differs from a sha256 S3 publishes for it, reused only while its size,
ETag and recorded sha256 still match, written under a temporary name and renamed.
A ``SHA256SUMS`` file in the same prefix is checked by the loaders as for a local folder.
"""

from __future__ import annotations

from pathlib import Path

from transfersearch_trainer.api.errors import BenchmarkDataError, TransferSearchError
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.downloads import fetch_object
from transfersearch_trainer.store.layout import cache_dir

# What a data prefix may hold; anything else under it is ignored.
_DATA_SUFFIXES = (".csv", ".zip", ".pth", ".json")
_DATA_NAMES = ("SHA256SUMS",)


def resolve_data(location: str) -> Path:
    """A local path for `location`: itself, or the local cache of an s3:// file or prefix."""
    if not location.startswith("s3://"):
        return Path(location).expanduser()
    uri = s3.parse_s3_uri(location)
    return _download(uri)


def _wanted(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name in _DATA_NAMES or name.endswith(_DATA_SUFFIXES)


def _download(uri: s3.S3Uri) -> Path:
    client = s3.client()
    target = cache_dir() / "data" / uri.bucket / uri.key.strip("/")
    if _wanted(uri.key) and not uri.key.endswith("/"):
        fetch_object(client, uri.bucket, uri.key, target, BenchmarkDataError)
        return target
    prefix = uri.key.strip("/") + "/" if uri.key.strip("/") else ""

    def listing() -> list[str]:
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=uri.bucket, Prefix=prefix, Delimiter="/"
        ):
            keys += [obj["Key"] for obj in page.get("Contents", []) if _wanted(obj["Key"])]
        return keys

    keys = s3.call(f"listing {uri}", listing)
    if not keys:
        raise TransferSearchError(
            f"{uri}: no benchmark files under this prefix (expected .csv, .zip or .pth objects)"
        )
    for key in keys:
        fetch_object(client, uri.bucket, key, target / key[len(prefix) :], BenchmarkDataError)
    return target
