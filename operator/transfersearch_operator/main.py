"""Run the operator: `transfersearch operator ...` ends here.

Flags map to kopf's: the namespaces to serve (or all of them), peering (for
several replicas with one active) or standalone, the liveness endpoint (for
both the liveness and readiness probes), plus the operator's own metrics
port and the default trainer image. The admission policy comes from the
environment (TRANSFERSEARCH_ALLOWED_*, see policy.py), as the chart sets it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import kopf

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import S3Settings

from .config import DEFAULT_IMAGE, OperatorConfig
from .handlers import configure, register
from .kube import Kube, config_from_environment
from .metrics import OperatorMetrics
from .policy import AdmissionPolicy
from .reconcile import Reconciler


def run(
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    peering: str | None = None,
    metrics_port: int = 8000,
    liveness_port: int = 8080,
    default_image: str | None = None,
    verbose: bool = False,
    default_s3: S3Settings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. Ports set to 0 are not served."""
    default_image = default_image or DEFAULT_IMAGE
    if bool(namespaces) == all_namespaces:
        raise TransferSearchError(
            "give the namespaces to serve (--namespace NS, repeatable, globs allowed) "
            "or --all-namespaces, not both or neither"
        )
    policy = AdmissionPolicy.from_env(os.environ)  # TransferSearchError: names the variable
    try:
        api = config_from_environment()
    except Exception as err:  # the client raises several kinds for missing or bad config
        raise TransferSearchError(
            f"no Kubernetes credentials ({err}): run in a pod with a service account, "
            "or set KUBECONFIG"
        ) from None
    kopf.configure(verbose=verbose, log_prefix=True)
    if not verbose:
        # The operator logs what it does (transfersearch_operator); kopf's line per
        # handler call and the probes' access log are for debugging.
        for chatty in ("kopf.objects", "aiohttp.access"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(registry)
    # kopf watches with the same credentials the operator's own client uses.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    settings = kopf.OperatorSettings()
    configure(settings)
    metrics = OperatorMetrics()
    if metrics_port:
        metrics.serve(metrics_port)
    config = OperatorConfig(default_image=default_image, default_s3=default_s3, policy=policy)
    reconciler = Reconciler(Kube(api), metrics, config)
    logging.getLogger(__name__).info(
        "serving %s; trainer image %s; default S3 %s; %s",
        "all namespaces" if all_namespaces else ", ".join(namespaces),
        default_image,
        f"s3://{default_s3.bucket}/{default_s3.prefix}" if default_s3 else "none",
        policy,
    )
    kopf.run(
        registry=registry,
        settings=settings,
        memo=kopf.Memo(reconciler=reconciler),
        clusterwide=all_namespaces,
        namespaces=list(namespaces),
        standalone=peering is None,
        peering_name=peering,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
