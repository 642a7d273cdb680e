"""The string fields of a TransferSearch with a grammar: patterns, CEL rules, validators.

Each pattern is used twice, by the pydantic model and in the CRD's schema generated
from it, so `transfersearch run` and the API server refuse the same strings.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, JsonValue

from transfersearch_trainer.api.messages import echo

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
# A Kubernetes quantity (apimachinery's grammar: number, then a binary suffix, a decimal
# suffix or an exponent, never two), greater than zero: a pod asking for no CPU or
# memory is a mistake. The operator reads it with kubernetes.utils.parse_quantity,
# which parses everything this matches. Exponents have at most two digits: Kubernetes
# caps quantities at 2^63-1 anyway, and parse_quantity turns 1e999999 into a
# million-digit integer (tens of seconds of the operator's CPU).
_POSITIVE_NUMBER = r"(0*[1-9][0-9]*(\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*)"
QUANTITY_PATTERN = rf"^\+?{_POSITIVE_NUMBER}([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]{{1,2}})?$"
QUANTITY_HINT = (
    "not a positive Kubernetes quantity; write e.g. 500m, 2 or 1.5 (CPUs), 512Mi or 4Gi "
    "(bytes of memory)"
)
MAX_QUANTITY_LENGTH = 32
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Credentials in a URL (scheme://user:password@host) would be copied into the Job,
# its logs and the search's status; they belong in the Secret named by
# spec.s3.credentialsSecret. CEL's matches() and re.search agree on this pattern.
USERINFO_PATTERN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*@"
USERINFO_HINT = (
    "a URL must not hold a user name or password (user:password@); put credentials "
    "in the Secret named by spec.s3.credentialsSecret"
)
_NO_USERINFO_RULE: dict[str, JsonValue] = {
    "rule": f"!self.matches('{USERINFO_PATTERN}')",
    "message": USERINFO_HINT,
}
MAX_URL_LENGTH = 1024  # also bounds the CEL rules' cost, which the API server estimates
# Manifests and job configs are a few KB; the API server refuses objects over ~1.5 MB
# and a ConfigMap holds 1 MiB.


# An agent in S3 must be addressed in the agent store's layout (see store/agents.py), so the
# trainer can verify the manifest against the id in its key before trusting it.
S3_AGENT_PATTERN = r"^s3://[^/]+/(.+/)?agents/[a-z][a-z0-9_]*/[a-z][a-z0-9_]*/[0-9a-f]{64}/?$"
S3_AGENT_HINT = (
    "an s3:// agent must be a store URI, s3://BUCKET/PREFIX/agents/<space>/<task>/<id>, as "
    "`transfersearch agents push DIR --store s3://BUCKET/PREFIX` prints it"
)
_S3_AGENT_RULE: dict[str, JsonValue] = {
    "rule": f"!self.startsWith('s3://') || self.matches('{S3_AGENT_PATTERN}')",
    "message": S3_AGENT_HINT,
}


def _check_no_userinfo(value: str) -> str:
    if re.search(USERINFO_PATTERN, value):
        raise ValueError(USERINFO_HINT)
    return value


def _check_agent_location(value: str) -> str:
    if value.startswith("s3://") and not re.match(S3_AGENT_PATTERN, value):
        raise ValueError(f"{echo(value)}: {S3_AGENT_HINT}")
    return value


def _check_quantity(value: str) -> str:
    if not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"{echo(value)} is {QUANTITY_HINT}")
    return value


UrlOrPath = Annotated[str, AfterValidator(_check_no_userinfo)]
AgentLocation = Annotated[UrlOrPath, AfterValidator(_check_agent_location)]
# The pattern goes to the CRD; the model checks it itself for a readable message.
Quantity = Annotated[
    str,
    Field(max_length=MAX_QUANTITY_LENGTH, json_schema_extra={"pattern": QUANTITY_PATTERN}),
    AfterValidator(_check_quantity),
]
