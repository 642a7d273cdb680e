"""User-facing errors.

Every failure a user can cause (a wrong path, a corrupt file, a bad task name)
is raised as a `TransferSearchError` whose message names the thing at fault and
the fix; the CLI prints that message and exits non-zero instead of a traceback.

The exit code tells a scheduler (a Kubernetes Job's pod failure policy) whether
running the same thing again can help: 2 for problems that stay until someone
fixes the input, 75 (``EX_TEMPFAIL``) for problems that may go away on their own.
"""

from __future__ import annotations

import re

EXIT_PERMANENT = 2
EXIT_RETRYABLE = 75  # sysexits.h EX_TEMPFAIL


# The userinfo part of a URL (`scheme://user:password@`): up to the last `@` before the
# host's end, since a password may hold an unescaped `@`. Bounded repeats keep the scan
# linear on long messages.
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{0,31}://)[^/?#\s]{0,2048}@")
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by ***.

    Validation refuses credentials in the URLs of a spec, but messages also quote
    URLs from the environment, flags and other services' errors, and they end up in
    logs, pod termination messages and the search's status, which many people read.
    """
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


class TransferSearchError(Exception):
    """A problem the user can fix; the message says what and how.

    The message is redacted here, once, so that no path by which an error reaches
    a user (stderr, logs, termination message, status) can leak a URL's password.
    """

    exit_code = EXIT_PERMANENT
    retryable = False

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(redact(str(message)), *args)


class BenchmarkDataError(TransferSearchError):
    """Benchmark files are missing, truncated or inconsistent."""


class TransientError(TransferSearchError):
    """A problem that may pass without anyone fixing anything (S3 unreachable, throttled,
    the pod asked to stop): running again later, from the last checkpoint, is the fix."""

    exit_code = EXIT_RETRYABLE
    retryable = True
