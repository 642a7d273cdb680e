"""Which S3 failures are retried, for how long, and what the error says when it gives up."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.store import s3


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (client_error("SlowDown", 503), True),
        (client_error("InternalError", 500), True),
        (client_error("Throttling", 400), True),
        (client_error("TooManyRequests", 429), True),
        (client_error("NoSuchKey", 404), False),
        (client_error("AccessDenied", 403), False),
        (client_error("NoSuchBucket", 404), False),
    ],
)
def test_what_is_transient(err: Exception, transient: bool) -> None:
    assert s3.is_transient(err) is transient


def test_transient_failures_are_retried_with_growing_backoff() -> None:
    policy = s3.RetryPolicy(deadline=30, base=0.001, cap=0.004)
    outcomes: list[Exception | str] = [client_error("SlowDown", 503)] * 3 + ["done"]

    def operation() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert s3.call("writing x", operation, policy) == "done"
    delays = [s3.RetryPolicy(base=1.0, cap=8.0).backoff(i) for i in range(6)]
    assert [0.5 <= delays[0] <= 1.0, 1.0 <= delays[1] <= 2.0, 4.0 <= delays[5] <= 8.0] == [True] * 3


def test_permanent_failures_are_not_retried() -> None:
    calls = []

    def operation() -> None:
        calls.append(1)
        raise client_error("AccessDenied", 403)

    with pytest.raises(TransferSearchError, match="access denied") as info:
        s3.call("reading s3://b/k", operation, s3.RetryPolicy(deadline=30))
    assert len(calls) == 1
    assert info.value.exit_code == 2


def test_giving_up_after_the_deadline_is_retryable() -> None:
    def operation() -> None:
        raise client_error("ServiceUnavailable", 503)

    with pytest.raises(TransferSearchError, match="no usable answer from the S3 endpoint") as info:
        s3.call("writing s3://b/k", operation, s3.RetryPolicy(deadline=0.05, base=0.01, cap=0.02))
    assert info.value.exit_code == 75
    assert info.value.retryable


def test_retry_deadline_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(s3.RETRY_ENV, "7.5")
    assert s3.RetryPolicy.from_env().deadline == 7.5
    monkeypatch.setenv(s3.RETRY_ENV, "soon")
    with pytest.raises(TransferSearchError, match="TRANSFERSEARCH_S3_RETRY_SECONDS"):
        s3.RetryPolicy.from_env()
