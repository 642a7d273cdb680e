"""The operator's own settings (flags of `transfersearch operator`), shared via kopf's memo."""

from __future__ import annotations

from dataclasses import dataclass, field

from transfersearch_trainer.api.spec import S3Settings
from transfersearch_trainer.api.version import __version__

from .policy import AdmissionPolicy

DEFAULT_IMAGE = f"transfersearch-trainer:{__version__}"


@dataclass(frozen=True)
class OperatorConfig:
    default_image: str = DEFAULT_IMAGE
    """Trainer image for searches whose spec names none."""
    default_s3: S3Settings | None = None
    """Where searches whose spec has no `s3` section keep agents and results (chart: trainer.s3)."""
    retry_delay: float = 10.0
    """Seconds before a failed status update, or a Job creation that waits, is tried again."""
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    """What searches may ask for beyond the defaults (chart: policy)."""
