"""Where a dataset's files are on disk: a local path as given, or a verified cache of S3.

An ``s3://bucket/key.npz`` is one object; an ``s3://bucket/prefix/`` is an image folder,
every ``.png``/``.jpg``/``.jpeg`` object under it. Each object is fetched once into
``<cache>/<bucket>/<key>`` by `store.downloads.fetch_object`, which records the bytes'
sha256 beside the copy and re-checks it (and the ETag and size) on every reuse, so a
changed object is fetched again and a damaged cache is replaced, never trained on.
The client comes from `store.s3.client`, so the endpoint and credentials are those of
the environment, as for every other S3 access of the project.
"""

from __future__ import annotations

from pathlib import Path

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.evaluation.readers import IMAGE_SUFFIXES
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.downloads import META_SUFFIX, fetch_object
from transfersearch_trainer.store.layout import cache_dir as _cache_root


def default_cache_dir() -> Path:
    """``$TRANSFERSEARCH_CACHE/datasets`` (default ``~/.cache/transfersearch/datasets``)."""
    return _cache_root() / "datasets"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def local_file(uri: str, cache_dir: Path | None) -> Path:
    """The local path of a dataset file: `uri` itself, or its verified S3 download."""
    if not is_s3(uri):
        return Path(uri).expanduser()
    where = s3.parse_s3_uri(uri)
    if not where.key or where.key.endswith("/"):
        raise TransferSearchError(f"{uri}: names a prefix, not an .npz object")
    dest = (cache_dir or default_cache_dir()) / where.bucket / where.key
    fetch_object(s3.client(), where.bucket, where.key, dest)
    return dest


def local_folder(uri: str, cache_dir: Path | None) -> Path:
    """The local path of an image folder: `uri` itself, or a verified copy of the S3 prefix.

    Images that were deleted from the prefix since the last download are deleted from the
    copy too, so the copy holds exactly what the prefix holds now."""
    if not is_s3(uri):
        return Path(uri).expanduser()
    where = s3.parse_s3_uri(uri)
    prefix = where.key.strip("/") + "/" if where.key.strip("/") else ""
    client = s3.client()

    def listing() -> list[str]:
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=where.bucket, Prefix=prefix
        ):
            keys += [
                obj["Key"]
                for obj in page.get("Contents", [])
                if obj["Key"].lower().endswith(IMAGE_SUFFIXES)
            ]
        return sorted(keys)

    keys = s3.call(f"listing {uri}", listing)
    if not keys:
        raise TransferSearchError(
            f"{uri}: no .png/.jpg objects under this prefix; upload <class>/<file>.png objects"
        )
    root = (cache_dir or default_cache_dir()) / where.bucket / prefix.rstrip("/")
    wanted = set()
    for key in keys:
        parts = key[len(prefix) :].split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise TransferSearchError(
                f"s3://{where.bucket}/{key}: a key with an empty, '.' or '..' part cannot be "
                "copied to disk; rename the object"
            )
        dest = root.joinpath(*parts)
        fetch_object(client, where.bucket, key, dest)
        wanted.add(dest)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path not in wanted:
            path.unlink()
            path.with_name(path.name + META_SUFFIX).unlink(missing_ok=True)
    for path in sorted(root.rglob("*"), reverse=True):  # children before their parents
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return root
