"""One S3 object cached on local disk: downloaded once, hashed, verified on every reuse.

The benchmark files and the users' datasets are both read from local copies of S3
objects; this is the one place that keeps such a copy honest. The object's sha256
is computed as it streams in and recorded beside the copy (``NAME.meta.json``) with
its size and ETag. The download is refused when S3 holds a sha256 for the object
(``x-amz-meta-sha256`` metadata, or a whole-object ``ChecksumSHA256``) and it
differs. A cached copy is reused only while the object's size and ETag are
unchanged *and* the file on disk still hashes to what was recorded, so a truncated
or bit-flipped cache is fetched again instead of being read. Files are written
under a temporary name and renamed into place, so an interrupted download is never
read, and S3 calls retry transient failures (see `s3.call`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.blobs import sha256_file

_ATTEMPTS = 2  # a download whose hash does not match is tried once more
META_SUFFIX = ".meta.json"

log = logging.getLogger("transfersearch.data")


def published_sha256(head: dict[str, Any]) -> str | None:
    """The sha256 S3 holds for the object, if any (hex)."""
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if isinstance(meta.get("sha256"), str):
        return str(meta["sha256"]).lower()
    checksum = head.get("ChecksumSHA256")
    if isinstance(checksum, str) and "-" not in checksum:  # "-N": multipart composite, not ours
        return base64.b64decode(checksum).hex()
    return None


def meta_path(dest: Path) -> Path:
    """Where the record of `dest`'s download (etag, size, sha256) is kept."""
    return dest.with_name(dest.name + META_SUFFIX)


def _cached(dest: Path, meta_file: Path, etag: str, size: int, expected: str | None) -> bool:
    if not (dest.is_file() and meta_file.is_file()):
        return False
    try:
        meta = json.loads(meta_file.read_text())
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


def fetch_object(
    client: Any,
    bucket: str,
    key: str,
    dest: Path,
    error: type[TransferSearchError] = TransferSearchError,
) -> str:
    """Make `dest` a verified copy of ``s3://bucket/key`` (downloading only if needed).

    Returns the object's sha256. `error` is the class raised when the download does not
    match its size or published checksum twice (callers name their own kind of data).
    """
    where = f"s3://{bucket}/{key}"
    head = s3.call(
        f"reading {where}",
        lambda: client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"),
    )
    size, etag = int(head["ContentLength"]), str(head["ETag"])
    expected = published_sha256(head)
    meta_file = meta_path(dest)
    if _cached(dest, meta_file, etag, size, expected):
        return str(json.loads(meta_file.read_text())["sha256"])
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
                raise error(
                    f"{where}: the download has {problem} (twice); the object or its recorded "
                    "checksum is wrong: upload it again"
                )
            log.warning("%s: the download has %s; fetching it again", where, problem)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    tmp = meta_file.with_name(f".{meta_file.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"etag": etag, "size": size, "sha256": digest}))
    os.replace(tmp, meta_file)
    return digest
