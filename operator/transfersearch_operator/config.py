"""The operator's own settings (flags of `transfersearch operator`), shared via kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass

from transfersearch_trainer import __version__

DEFAULT_IMAGE = f"transfersearch-trainer:{__version__}"


@dataclass(frozen=True)
class OperatorConfig:
    default_image: str = DEFAULT_IMAGE
    """Trainer image for searches whose spec names none."""
    retry_delay: float = 10.0
    """Seconds before a failed status update is tried again."""
