"""Offline validation of Kubernetes objects, as an API server would refuse them.

Built-in kinds: the Kubernetes OpenAPI schemas shipped by kubernetes-validate, in
strict mode (an unknown field is an error, as with kubectl's strict field
validation). Prometheus Operator kinds: `tests.fakes.monitoring_schemas`. TransferSearch:
our CRD's schema, defaults and CEL rules (`tests.operator.test_operator_crd.server_check`).
A kind none of them knows is an error, never a silent pass.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from kubernetes_validate import utils as kubernetes_validate

from tests.fakes.monitoring_schemas import SCHEMAS as MONITORING_SCHEMAS
from tests.operator.test_operator_crd import server_check

# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion: trial Jobs use
# podFailurePolicy, GA in 1.31) and the newest kubernetes-validate 1.37.0 knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")


def problems(obj: dict[str, Any], version: str) -> list[str]:
    """Why the API server of `version` would refuse `obj`; [] when it would accept it."""
    kind = obj.get("kind", "")
    if kind == "TransferSearch":
        return server_check(obj)
    if kind in MONITORING_SCHEMAS:
        validator = jsonschema.Draft7Validator(MONITORING_SCHEMAS[kind])
        return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{list(err.path)}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [err.message]
    return []


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"
