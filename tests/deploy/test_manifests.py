"""Every YAML file we ship, and every object the operator creates, validated offline.

Files under crds/, charts/ (templates are rendered in test_chart.py) and
examples/: each document is a Kubernetes object checked against the Kubernetes
OpenAPI schemas (strict) or our CRD's schema, or one of the few files that are not
objects, each checked by its own tool elsewhere. A new YAML file nobody checks
fails here until it is given a check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.kube_validation import KUBERNETES_VERSIONS, name_of, problems
from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator import children
from transfersearch_operator.config import DEFAULT_IMAGE
from transfersearch_trainer.api.spec import load_manifest

ROOT = REPO_ROOT
CHART = ROOT / "charts" / "transfersearch"

# Shipped YAML that is not a Kubernetes object, and what checks it.
NOT_OBJECTS = {
    "charts/transfersearch/Chart.yaml": "helm lint (test_chart.py)",
    "charts/transfersearch/values.yaml": "values.schema.json (test_chart.py)",
    "charts/transfersearch/files/prometheus-rules.yaml": "promtool, via the PrometheusRule",
}


def shipped_yaml() -> list[Path]:
    found = [
        p
        for folder in ("crds", "charts", "examples")
        for p in sorted((ROOT / folder).rglob("*"))
        if p.suffix in (".yaml", ".yml") and "templates" not in p.relative_to(ROOT).parts
    ]
    return found


SHIPPED = shipped_yaml()
OBJECT_FILES = [p for p in SHIPPED if str(p.relative_to(ROOT)) not in NOT_OBJECTS]


def test_every_shipped_yaml_is_checked() -> None:
    """The lists above cover what is there (and name nothing that is gone)."""
    relative = {str(p.relative_to(ROOT)) for p in SHIPPED}
    assert set(NOT_OBJECTS) <= relative
    assert len(OBJECT_FILES) >= 8  # two CRD copies and the examples at least
    for path in SHIPPED:
        list(yaml.safe_load_all(path.read_text()))  # parses


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", OBJECT_FILES, ids=[str(p.relative_to(ROOT)) for p in OBJECT_FILES])
def test_shipped_objects_are_valid(path: Path, version: str) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict), path
        assert {"apiVersion", "kind"} <= doc.keys(), path
        assert problems(doc, version) == [], name_of(doc)


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def operator_children(path: Path) -> list[dict[str, Any]]:
    """The ConfigMap and Job the operator creates for an example search."""
    spec = load_manifest(path).spec
    ref = children.SearchRef(name=path.stem, namespace="team-a", uid="u-1", generation=3)
    return [children.config_map(ref, spec), children.job(ref, spec, DEFAULT_IMAGE)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_objects_the_operator_creates_are_valid(path: Path, version: str) -> None:
    for obj in operator_children(path):
        assert problems(obj, version) == [], name_of(obj)


def test_an_invalid_object_is_refused() -> None:
    """The validation above can fail: a typo'd field, an unknown kind."""
    job = operator_children(EXAMPLES[0])[1]
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert problems(job, KUBERNETES_VERSIONS[0])
    assert problems({"apiVersion": "example.com/v1", "kind": "Widget"}, KUBERNETES_VERSIONS[0])
    search = yaml.safe_load(EXAMPLES[0].read_text())
    search["spec"]["trainingg"] = {}
    assert problems(search, KUBERNETES_VERSIONS[0])
