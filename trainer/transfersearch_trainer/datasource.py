"""Where benchmark files come from: a local path, or an ``s3://`` URI cached on local disk.

A cached copy is reused while its size and ETag match the object's, and it is
written under a temporary name first, so an interrupted download is never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import s3
from .errors import TransferSearchError

CACHE_ENV = "TRANSFERSEARCH_CACHE"
# What a data prefix may hold; anything else under it is ignored.
_DATA_SUFFIXES = (".csv", ".zip", ".pth", ".json")
_DATA_NAMES = ("SHA256SUMS",)


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "transfersearch"
    )
    return Path(root)


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
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3.client()
    target = cache_dir() / "data" / uri.bucket / uri.key.strip("/")
    try:
        if _wanted(uri.key) and not uri.key.endswith("/"):
            head = client.head_object(Bucket=uri.bucket, Key=uri.key)
            _fetch(client, uri.bucket, uri.key, target, head["ContentLength"], head["ETag"])
            return target
        prefix = uri.key.strip("/") + "/" if uri.key.strip("/") else ""
        found = 0
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=uri.bucket, Prefix=prefix, Delimiter="/"
        ):
            for obj in page.get("Contents", []):
                if _wanted(obj["Key"]):
                    name = obj["Key"][len(prefix) :]
                    _fetch(client, uri.bucket, obj["Key"], target / name, obj["Size"], obj["ETag"])
                    found += 1
    except (BotoCoreError, ClientError) as err:
        raise s3.describe_error(err, str(uri)) from None
    if not found:
        raise TransferSearchError(
            f"{uri}: no benchmark files under this prefix (expected .csv, .zip or .pth objects)"
        )
    return target


def _fetch(client: object, bucket: str, key: str, dest: Path, size: int, etag: str) -> None:
    meta = dest.with_name(dest.name + ".etag")
    if (
        dest.is_file()
        and dest.stat().st_size == size
        and meta.is_file()
        and json.loads(meta.read_text()).get("etag") == etag
    ):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + f".part-{os.getpid()}")
    client.download_file(bucket, key, str(partial))  # type: ignore[attr-defined]
    os.replace(partial, dest)
    meta.write_text(json.dumps({"etag": etag, "size": size}))
