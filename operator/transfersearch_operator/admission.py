"""Whether a search's generation may get a Job: the admission policy, and the refusals.

A refusal is final (the policy, an invalid Job) or a wait (a Secret not there yet, a
name taken, a 403): either way the status says why, and only the operator's own faults
(its RBAC) count as reconcile errors that page on-call.
"""

from __future__ import annotations

from typing import Any

import kopf

from transfersearch_trainer.api.spec import TransferSearchSpec

from .compute import Refusal
from .config import OperatorConfig
from .kube import ForbiddenError, Kube
from .observed import ObservedSearch


class RefusedError(Exception):
    """This generation gets no Job, for now or for good; the status says why."""

    def __init__(self, refusal: Refusal, fault: bool = False) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal
        # The operator's own setup is at fault (its RBAC): a reconcile error, which
        # alerts on-call. Users' mistakes and waits are not.
        self.fault = fault


async def admit(
    kube: Kube, config: OperatorConfig, body: Any, search: ObservedSearch, spec: TransferSearchSpec
) -> None:
    """Refused unless the admission policy allows what the spec asks for.

    The credentials Secret is looked up (its metadata only) because the label
    that opts it in is on the Secret, where only its owners can put it. A Secret
    not there yet is waited for: manifests applied together arrive in any order.
    """
    policy = config.policy
    problems = policy.problems(spec, config.default_image, config.default_s3)
    missing = None
    secret = spec.s3.credentials_secret if spec.s3 is not None else None
    if secret:
        try:
            found = await kube.get("Secret", search.namespace, secret, metadata_only=True)
        except ForbiddenError as err:
            raise forbidden(config, f"read Secret {secret}'s labels", err) from None
        labels = None if found is None else (found.get("metadata") or {}).get("labels") or {}
        problem = policy.secret_problem(secret, labels)
        if problem and found is None:
            missing = problem
        elif problem:
            problems.append(problem)
    if problems:
        message = "the admission policy refuses this search: " + "; ".join(problems)
        kopf.event(body, type="Warning", reason="PolicyDenied", message=message[:1024])
        raise RefusedError(Refusal("PolicyDenied", message))
    if missing:
        raise RefusedError(Refusal("SecretNotFound", f"{missing}; {again(config)}"))


def name_taken(config: OperatorConfig, taken: list[dict[str, Any]]) -> Refusal:
    what = " and ".join(f"{o['kind']} {o['metadata']['name']}" for o in taken)
    commands = "; ".join(
        f"kubectl delete {o['kind'].lower()} {o['metadata']['name']}" for o in taken
    )
    return Refusal(
        "NameTaken",
        f"{what} already exists and is not this search's (another owner, or none): it is "
        f"not used; delete it ({commands}) or create the search under another name; "
        f"{again(config)}",
    )


def forbidden(config: OperatorConfig, action: str, err: ForbiddenError) -> RefusedError:
    """A 403: a quota is the namespace's business; anything else is the operator's RBAC."""
    if "exceeded quota" in str(err):
        message = f"a quota forbids it: {err}; {again(config)}"
        return RefusedError(Refusal("QuotaExceeded", message))
    message = (
        f"the API server does not let the operator {action}: {err}; grant the operator's "
        f"service account the rules in docs/operator.md (RBAC); {again(config)}"
    )
    return RefusedError(Refusal("Forbidden", message), fault=True)


def again(config: OperatorConfig) -> str:
    return f"trying again every {config.retry_delay:g} s"
