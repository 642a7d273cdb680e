"""User-facing errors.

Every failure a user can cause (a wrong path, a corrupt file, a bad task name)
is raised as a `TransferSearchError` whose message names the thing at fault and
the fix; the CLI prints that message and exits non-zero instead of a traceback.
"""

from __future__ import annotations


class TransferSearchError(Exception):
    """A problem the user can fix; the message says what and how."""


class BenchmarkDataError(TransferSearchError):
    """Benchmark files are missing, truncated or inconsistent."""
