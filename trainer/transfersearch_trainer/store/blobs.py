"""Objects under a root that is a local folder or an S3 prefix, behind one small interface.

The agent store, checkpoints and trial results are written the same way whether
they go to S3 (a pod) or to a folder (local mode, tests), so each is written once
against `Blobs`. Both backends make a single object's write atomic: an S3 PUT is
all-or-nothing, and the folder backend writes a hidden temporary file and renames
it into place. Publishing a *set* of objects atomically is the caller's job
(write the parts first, then one small object that names them).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from transfersearch_trainer.store import s3


class Blobs(Protocol):
    location: str

    def uri(self, key: str) -> str: ...

    def put(self, key: str, data: bytes) -> None: ...

    def create(self, key: str, data: bytes) -> bool:
        """Write only if there is no such object yet (atomically): False when there was.
        Two writers racing for one key: exactly one of them gets True (a claim)."""
        ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Keys under `prefix` (recursively), sorted."""
        ...

    def delete(self, keys: list[str]) -> None: ...


def open_blobs(location: str) -> Blobs:
    """A folder path or an ``s3://bucket/prefix``."""
    if location.startswith("s3://"):
        uri = s3.parse_s3_uri(location)
        return S3Blobs(uri.bucket, uri.key)
    return LocalBlobs(Path(location).expanduser())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LocalBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.strip("/").split("/"))

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def _staged(self, key: str, data: bytes) -> tuple[Path, Path]:
        """(the key's path, a hidden file beside it holding `data`, synced to disk)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # publishing must not expose data still in the page cache
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path, Path(tmp)

    def put(self, key: str, data: bytes) -> None:
        path, tmp = self._staged(key, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def create(self, key: str, data: bytes) -> bool:
        path, tmp = self._staged(key, data)
        try:
            os.link(tmp, path)  # fails if the name exists: the atomic "create if absent"
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                keys.append("/".join(rel.parts))
        return sorted(keys)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


class S3Blobs:
    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = s3.client()

    def _key(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        s3.call(
            f"writing {self.uri(key)}",
            lambda: self._client.put_object(
                Bucket=self.bucket, Key=full, Body=data, Metadata={"sha256": sha256_hex(data)}
            ),
        )

    def create(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        full = self._key(key)

        def write() -> bool:
            try:  # S3's conditional write: refused with 412 when the key exists
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=data,
                    IfNoneMatch="*",
                    Metadata={"sha256": sha256_hex(data)},
                )
            except ClientError as err:
                if s3.error_code(err) in (
                    "PreconditionFailed",
                    "412",
                    "ConditionalRequestConflict",
                ):
                    return False
                raise
            return True

        return s3.call(f"creating {self.uri(key)}", write)

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        full = self._key(key)

        def read() -> bytes | None:
            try:
                body: bytes = self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()
            except ClientError as err:
                if s3.error_code(err) in s3.NOT_FOUND_CODES:
                    return None
                raise
            return body

        return s3.call(f"reading {self.uri(key)}", read)

    def keys(self, prefix: str) -> list[str]:
        base = self._key(prefix)
        if base and prefix.endswith("/"):
            base += "/"
        strip = len(self.prefix) + 1 if self.prefix else 0

        def walk() -> list[str]:
            keys = []
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            for page in pages:
                keys += [obj["Key"][strip:] for obj in page.get("Contents", [])]
            return sorted(keys)

        return s3.call(f"listing {self.uri(prefix)}", walk)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            s3.call(
                f"deleting {len(chunk)} objects under {self.location}",
                lambda chunk=chunk: self._client.delete_objects(  # type: ignore[misc]
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                ),
            )
