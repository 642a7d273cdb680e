"""JSON schemas for the Prometheus Operator objects the chart renders (monitoring.coreos.com/v1).

kubernetes-validate knows only built-in kinds, and the upstream CRDs are not
available offline here. These schemas follow the upstream v1 CRDs' types, enums,
patterns and required fields for the fields the chart writes, and refuse every
other field (``additionalProperties: false``), so a misspelt or misplaced field
fails the test instead of being pruned silently by the API server. A field the
chart starts using must be added here from the upstream CRD's definition.
"""

from __future__ import annotations

from typing import Any

# The Prometheus Operator's duration pattern (type monitoringv1.Duration).
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    return out


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = _closed(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    required=("name", "namespace"),
)
_LABEL_SELECTOR = _closed(
    {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": _closed(
                {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                required=("key", "operator"),
            ),
        },
    }
)
_NAMESPACE_SELECTOR = _closed(
    {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}
)
_ENDPOINT = _closed(
    {
        "port": {"type": "string", "minLength": 1},
        "path": {"type": "string"},
        "scheme": {"enum": ["http", "https"]},
        "interval": {"type": "string", "pattern": DURATION},
        "scrapeTimeout": {"type": "string", "pattern": DURATION},
        "honorLabels": {"type": "boolean"},
    }
)


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )


SERVICE_MONITOR = _object(
    "ServiceMonitor",
    _closed(
        {
            "namespaceSelector": _NAMESPACE_SELECTOR,
            "selector": _LABEL_SELECTOR,
            "endpoints": {"type": "array", "items": _ENDPOINT, "minItems": 1},
        },
        required=("selector",),
    ),
)

POD_MONITOR = _object(
    "PodMonitor",
    _closed(
        {
            "namespaceSelector": _NAMESPACE_SELECTOR,
            "selector": _LABEL_SELECTOR,
            "podMetricsEndpoints": {"type": "array", "items": _ENDPOINT, "minItems": 1},
        },
        required=("selector",),
    ),
)

_RULE = _closed(
    {
        "record": {"type": "string"},
        "alert": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": {"type": "string", "pattern": DURATION},
        "keep_firing_for": {"type": "string", "pattern": DURATION, "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    required=("expr",),
)
_RULE["oneOf"] = [{"required": ["record"]}, {"required": ["alert"]}]  # exactly one of them
PROMETHEUS_RULE = _object(
    "PrometheusRule",
    _closed(
        {
            "groups": {
                "type": "array",
                "items": _closed(
                    {
                        "name": {"type": "string", "minLength": 1},
                        "interval": {"type": "string", "pattern": DURATION},
                        "limit": {"type": "integer"},
                        "rules": {"type": "array", "items": _RULE},
                    },
                    required=("name",),
                ),
            }
        }
    ),
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": SERVICE_MONITOR,
    "PodMonitor": POD_MONITOR,
    "PrometheusRule": PROMETHEUS_RULE,
}
