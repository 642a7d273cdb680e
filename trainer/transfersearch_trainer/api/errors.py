"""User-facing errors.

Every failure a user can cause (a wrong path, a corrupt file, a bad task name)
is raised as a `TransferSearchError` whose message names the thing at fault and
the fix; the CLI prints that message and exits non-zero instead of a traceback.

The exit code tells a scheduler (a Kubernetes Job's pod failure policy) whether
running the same thing again can help: 2 for problems that stay until someone
fixes the input, 75 (``EX_TEMPFAIL``) for problems that may go away on their own.
"""

from __future__ import annotations

EXIT_PERMANENT = 2
EXIT_RETRYABLE = 75  # sysexits.h EX_TEMPFAIL


class TransferSearchError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = EXIT_PERMANENT
    retryable = False


class BenchmarkDataError(TransferSearchError):
    """Benchmark files are missing, truncated or inconsistent."""


class TransientError(TransferSearchError):
    """A problem that may pass without anyone fixing anything (S3 unreachable, throttled,
    the pod asked to stop): running again later, from the last checkpoint, is the fix."""

    exit_code = EXIT_RETRYABLE
    retryable = True
