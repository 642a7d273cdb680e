"""S3 access: one place that builds clients, retries transient failures and explains errors.

Credentials come only from the environment (in a pod: from a Secret), through
boto3's own chain; this module never reads, logs or stores them. Log lines and
error messages name the object, the endpoint and the error code, nothing else.

Retries: botocore's own retry layer is switched off (one attempt per call) and
`call` retries the whole operation, including reading the body, with exponential
backoff and equal jitter, for as long as `RetryPolicy.deadline` allows. Only
transient failures are retried (connection refused or reset, timeouts, HTTP 5xx,
throttling); a missing object or a refused credential fails at once, because
waiting does not fix it. When the deadline passes, `S3UnavailableError` (a
`TransientError`, exit code 75) says how long it tried and what the last error was.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from transfersearch_trainer.api.errors import TransferSearchError, TransientError, redact

ENDPOINT_ENV = "TRANSFERSEARCH_S3_ENDPOINT"
RETRY_ENV = "TRANSFERSEARCH_S3_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Error codes S3 and S3-compatible stores use for "slow down" and "try again".
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
    }
)

log = logging.getLogger("transfersearch.s3")
T = TypeVar("T")

_configured: dict[str, str | None] = {"endpoint": None, "region": None}


class S3UnavailableError(TransientError):
    """S3 did not answer usefully within the retry deadline."""


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
    if "@" in bucket:
        raise TransferSearchError(
            f"{uri!r}: credentials do not belong in an s3:// URI (s3://KEY:SECRET@...); set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (in Kubernetes: spec.s3.credentialsSecret)"
        )
    return S3Uri(bucket, key)


def configure(endpoint: str | None = None, region: str | None = None) -> None:
    """Defaults from the job config (spec.s3); the environment still takes precedence."""
    _configured["endpoint"] = endpoint
    _configured["region"] = region


def endpoint_url() -> str | None:
    """$TRANSFERSEARCH_S3_ENDPOINT, $AWS_ENDPOINT_URL, then spec.s3.endpoint (None: AWS)."""
    return (
        os.environ.get(ENDPOINT_ENV)
        or os.environ.get("AWS_ENDPOINT_URL")
        or _configured["endpoint"]
        or None
    )


def client(endpoint: str | None = None) -> Any:
    """A boto3 S3 client with one attempt per call (`call` retries) and short timeouts."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return boto3.client(
        "s3",
        endpoint_url=endpoint or endpoint_url(),
        region_name=region or _configured["region"] or None,
        config=config,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How long one S3 operation may keep failing transiently before the trainer gives up."""

    deadline: float = DEFAULT_RETRY_SECONDS  # seconds from the first attempt
    base: float = 0.5  # first backoff
    cap: float = 20.0  # longest single backoff

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get(RETRY_ENV)
        if not raw:
            return cls()
        try:
            deadline = float(raw)
        except ValueError:
            raise TransferSearchError(f"${RETRY_ENV}: {raw!r} is not a number of seconds") from None
        if deadline < 0:
            raise TransferSearchError(f"${RETRY_ENV}: must be 0 or more seconds, got {raw}")
        return cls(deadline=deadline)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, capped."""
        ceiling = min(self.cap, self.base * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def error_code(err: Exception) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(err: Exception) -> bool:
    """Connection trouble, timeouts, 5xx and throttling: worth trying again."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        SSLError,
    )

    if isinstance(err, SSLError):
        return False  # a certificate problem does not fix itself
    if isinstance(err, ConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status == 429 or error_code(err) in TRANSIENT_CODES
    return False


def _short(err: Exception) -> str:
    code = error_code(err)
    return f"{type(err).__name__} {code}".strip()


def call(what: str, operation: Callable[[], T], policy: RetryPolicy | None = None) -> T:
    """Run `operation` (one or more S3 requests), retrying transient failures until the deadline.

    Non-boto exceptions pass through untouched; boto errors that are not transient
    become a `TransferSearchError` naming `what`.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError

    policy = policy or RetryPolicy.from_env()
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return operation()
        except (BotoCoreError, ClientError) as err:
            if not is_transient(err):
                raise describe_error(err, what) from None
            waited = time.monotonic() - started
            if waited >= policy.deadline:
                problem = (
                    "cannot reach the S3 endpoint"
                    if isinstance(err, ConnectionError)
                    else "no usable answer from the S3 endpoint"
                )
                raise S3UnavailableError(
                    f"{what}: {problem} {endpoint_url() or '(AWS default)'} for {waited:.0f} s "
                    f"({attempt + 1} attempts, last error {_short(err)}); check {ENDPOINT_ENV} "
                    f"and the network, or set ${RETRY_ENV} to wait longer (retryable)"
                ) from None
            delay = min(policy.backoff(attempt), policy.deadline - waited)
            attempt += 1
            log.warning(
                "%s: %s; retry %d in %.1f s (giving up after %.0f s)",
                redact(what),
                _short(err),
                attempt,
                delay,
                policy.deadline,
            )
            time.sleep(max(delay, 0.0))


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
        return S3UnavailableError(
            f"{what}: cannot reach the S3 endpoint {endpoint_url() or '(AWS default)'}; check "
            f"{ENDPOINT_ENV} and the network"
        )
    if isinstance(err, ClientError):
        code = error_code(err) or "unknown"
        if code in NOT_FOUND_CODES:
            return TransferSearchError(f"{what}: not found in S3")
        if code == "NoSuchBucket":
            return TransferSearchError(f"{what}: the bucket does not exist")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return TransferSearchError(f"{what}: access denied ({code}); check the S3 credentials")
        if is_transient(err):
            return S3UnavailableError(f"{what}: S3 error {code} (transient; retry later)")
        return TransferSearchError(f"{what}: S3 error {code}")
    return TransferSearchError(f"{what}: S3 request failed ({type(err).__name__})")
