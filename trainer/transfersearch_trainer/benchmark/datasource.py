"""Where benchmark files come from: a local path, or an ``s3://`` URI cached on local disk.

Every downloaded file is hashed (sha256) as it streams in. The download is
refused when S3 holds a sha256 for the object (``x-amz-meta-sha256`` metadata, or
a whole-object ``ChecksumSHA256``) and it differs, and a ``SHA256SUMS`` file in the
same prefix is checked by the loaders as for a local folder. A cached copy is
reused only while the object's size and ETag are unchanged *and* the file on disk
still hashes to what was recorded when it was downloaded, so a truncated or
bit-flipped cache is fetched again instead of being read. Files are written under a
temporary name and renamed into place, so an interrupted download is never read,
and S3 calls retry transient failures (see `s3.call`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from transfersearch_trainer.api.errors import BenchmarkDataError, TransferSearchError
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.blobs import sha256_file
from transfersearch_trainer.store.layout import cache_dir

# What a data prefix may hold; anything else under it is ignored.
_DATA_SUFFIXES = (".csv", ".zip", ".pth", ".json")
_DATA_NAMES = ("SHA256SUMS",)
_ATTEMPTS = 2  # a download whose hash does not match is tried once more

log = logging.getLogger("transfersearch.data")


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
        _fetch(client, uri.bucket, uri.key, target)
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
        _fetch(client, uri.bucket, key, target / key[len(prefix) :])
    return target


def _published_sha256(head: dict[str, Any]) -> str | None:
    """The sha256 S3 holds for the object, if any (hex)."""
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if isinstance(meta.get("sha256"), str):
        return str(meta["sha256"]).lower()
    checksum = head.get("ChecksumSHA256")
    if isinstance(checksum, str) and "-" not in checksum:  # "-N": multipart composite, not ours
        return base64.b64decode(checksum).hex()
    return None


def _cached(dest: Path, meta_path: Path, etag: str, size: int, expected: str | None) -> bool:
    if not (dest.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("etag") != etag or meta.get("size") != size or dest.stat().st_size != size:
        return False
    if expected is not None and meta.get("sha256") != expected:
        return False
    if sha256_file(dest) != meta.get("sha256"):
        log.warning("%s: the cached copy no longer matches its recorded sha256; re-fetching", dest)
        return False
    return True


def _fetch(client: Any, bucket: str, key: str, dest: Path) -> None:
    where = f"s3://{bucket}/{key}"
    head = s3.call(
        f"reading {where}",
        lambda: client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"),
    )
    size, etag = int(head["ContentLength"]), str(head["ETag"])
    expected = _published_sha256(head)
    meta_path = dest.with_name(dest.name + ".meta.json")
    if _cached(dest, meta_path, etag, size, expected):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part-{os.getpid()}")

    def download() -> tuple[str, int]:
        h = hashlib.sha256()
        written = 0
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with partial.open("wb") as f:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
                written += len(chunk)
        return h.hexdigest(), written

    try:
        for attempt in range(_ATTEMPTS):
            digest, written = s3.call(f"downloading {where}", download)
            if written == size and (expected is None or digest == expected):
                break
            problem = (
                f"{written} bytes instead of {size}"
                if written != size
                else f"sha256 {digest[:16]}... instead of the published {expected}"
            )
            if attempt + 1 == _ATTEMPTS:
                raise BenchmarkDataError(
                    f"{where}: the download has {problem} (twice); the object or its recorded "
                    "checksum is wrong: upload it again"
                )
            log.warning("%s: the download has %s; fetching it again", where, problem)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"etag": etag, "size": size, "sha256": digest}))
    os.replace(tmp, meta_path)
