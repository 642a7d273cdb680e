"""S3 access: one place that builds clients and turns boto errors into clear messages.

Credentials come only from the environment (in a pod: from a Secret), through
boto3's own chain; this module never reads, logs or stores them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import TransferSearchError

ENDPOINT_ENV = "TRANSFERSEARCH_S3_ENDPOINT"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Uri:
    if not uri.startswith("s3://"):
        raise TransferSearchError(f"{uri!r} is not an s3:// URI (write s3://bucket/prefix)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise TransferSearchError(f"{uri!r} has no bucket name (write s3://bucket/prefix)")
    return S3Uri(bucket, key)


def endpoint_url() -> str | None:
    """S3 endpoint from $TRANSFERSEARCH_S3_ENDPOINT or $AWS_ENDPOINT_URL (None: AWS itself)."""
    return os.environ.get(ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL") or None


def client(endpoint: str | None = None) -> Any:
    """A boto3 S3 client with bounded retries and timeouts: an outage fails fast, not in hours."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
    )
    return boto3.client("s3", endpoint_url=endpoint or endpoint_url(), config=config)


def describe_error(err: Exception, what: str) -> TransferSearchError:
    """Map a boto/botocore exception to a message that names the object and the likely fix."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return TransferSearchError(
            f"{what}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(in Kubernetes: from the Secret named in spec.s3.credentialsSecret)"
        )
    if isinstance(err, EndpointConnectionError):
        return TransferSearchError(
            f"{what}: cannot reach the S3 endpoint {endpoint_url() or '(AWS default)'}; check "
            f"{ENDPOINT_ENV} and the network"
        )
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", "unknown"))
        if code in ("NoSuchKey", "404", "NotFound"):
            return TransferSearchError(f"{what}: not found in S3")
        if code == "NoSuchBucket":
            return TransferSearchError(f"{what}: the bucket does not exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return TransferSearchError(f"{what}: access denied ({code}); check the S3 credentials")
        return TransferSearchError(f"{what}: S3 error {code}")
    return TransferSearchError(f"{what}: S3 request failed ({type(err).__name__})")
