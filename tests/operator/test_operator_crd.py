"""The CRD: generated from the models, structural, and in agreement with them.

The examples are checked the way an API server would check them (nulls pruned,
defaults, then the OpenAPI schema, then the CEL rules) and the way the operator
does (the pydantic model), and the CEL rules are checked to refuse what the
model's cross-field validators refuse.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import re2
import yaml
from pydantic import BaseModel

from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator.crd import (
    CRD_FILE,
    PRINTER_COLUMNS,
    custom_resource_definition,
    render,
)
from transfersearch_operator.schema import SchemaError, structural_schema
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import TRANSFER_MODES, load_manifest, parse_manifest

ROOT = REPO_ROOT
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CRD = custom_resource_definition()
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def test_checked_in_crd_is_up_to_date() -> None:
    checked_in = (ROOT / CRD_FILE).read_text()
    assert checked_in == render(), f"{CRD_FILE} is stale: run `make crds` and commit it"


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, child in node.get("properties", {}).items():
        nodes += walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            nodes += walk(node[key], f"{path}[{key}]")
    return nodes


def test_schema_is_structural() -> None:
    for path, node in walk(SCHEMA):
        assert "type" in node, f"{path}: no type"
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "not", "$defs", "title", "const"):
            assert banned not in node, f"{path}: {banned} is not structural"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not False, path
        if "default" in node:
            validator = jsonschema.Draft4Validator(node)
            assert validator.is_valid(node["default"]), f"{path}: default fails its own schema"


def test_crd_names_scope_subresources_and_columns() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "transfersearches.transfersearch.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["ts"]
    assert spec["names"]["kind"] == "TransferSearch"
    assert VERSION["subresources"] == {"status": {}}
    names = [c["name"] for c in PRINTER_COLUMNS]
    for wanted in ("Phase", "Target", "Source", "Best", "GPU-Seconds", "Age"):
        assert wanted in names
    for column in PRINTER_COLUMNS:  # every column points at a field the schema has
        node = SCHEMA
        for part in column["jsonPath"].strip(".").split("."):
            node = node["properties"][part] if part in node.get("properties", {}) else {}
        assert node or column["jsonPath"] == ".metadata.creationTimestamp", column
    conditions = SCHEMA["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def without_nulls(schema: dict[str, Any], obj: Any) -> Any:
    """Nulls pruned as the API server prunes them (no field is nullable), before defaulting."""
    if not isinstance(obj, dict) or "properties" not in schema:
        return obj
    props = schema["properties"]
    return {
        k: without_nulls(props.get(k, {}), v)
        for k, v in obj.items()
        if not (v is None and k in props)
    }


def with_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting as the API server does it, before validation."""
    if not isinstance(obj, dict) or "properties" not in schema:
        return obj
    out = dict(obj)
    for name, prop in schema["properties"].items():
        if name not in out and "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
        if name in out:
            out[name] = with_defaults(prop, out[name])
    return out


def unknown_fields(schema: dict[str, Any], obj: Any, path: str = "") -> list[str]:
    """Fields the server would prune (kubectl's strict validation refuses them)."""
    if isinstance(obj, list) and "items" in schema:
        return [
            f for i, item in enumerate(obj) for f in unknown_fields(schema["items"], item, path)
        ]
    if not isinstance(obj, dict) or schema.get("type") != "object":
        return []
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return [f for k, v in obj.items() for f in unknown_fields(extra, v, f"{path}.{k}")]
    props = schema.get("properties", {})
    if not props:
        return []  # metadata: the server's own schema
    found = [f"{path}.{k}" for k in obj if k not in props]
    return found + [
        f for k, v in obj.items() if k in props for f in unknown_fields(props[k], v, f"{path}.{k}")
    ]


def cel_failures(schema: dict[str, Any], obj: Any) -> list[str]:
    """Messages of the CEL rules the object breaks (rules evaluated where they sit).

    A rule that cannot be evaluated (a field of a null, of a boolean) refuses the
    object, as on the API server, instead of crashing the check.
    """
    env = celpy.Environment()
    failed = []
    for rule in schema.get("x-kubernetes-validations", []):
        program = env.program(env.compile(rule["rule"]))
        try:
            result = program.evaluate({"self": celpy.json_to_cel(obj)})
        except celpy.CELEvalError as err:
            result = err
        if isinstance(result, celpy.CELEvalError):
            failed.append(f"{rule['message']} (the rule fails: {result.args[0]})")
        elif not result:
            failed.append(rule["message"])
    if isinstance(obj, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in obj:
                failed += cel_failures(prop, obj[name])
    if isinstance(obj, list) and "items" in schema:
        for item in obj:
            failed += cel_failures(schema["items"], item)
    return failed


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """`pattern` as the API server matches it: RE2, where `$` is only the end of the text."""
    if validator.is_type(instance, "string") and not re2.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 4's "integer" excludes 100.0, as the API server's does.
Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _re2_pattern})
GROUP_VERSION = f"{CRD['spec']['group']}/{VERSION['name']}"
MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default --max-request-bytes
# ObjectMeta's name: a DNS subdomain (RFC 1123), at most 253 characters.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def metadata_problems(obj: dict[str, Any]) -> list[str]:
    """The API server's own checks of metadata, which the CRD's schema leaves to it."""
    meta = obj.get("metadata")
    if meta is None:
        return ["metadata.name: Required value: name or generateName is required"]
    if not isinstance(meta, dict):
        return [f"metadata: must be an object, not {type(meta).__name__}"]
    name = meta.get("name")
    if name is None:
        return ["metadata.name: Required value: name or generateName is required"]
    if not isinstance(name, str):
        return [f"metadata.name: must be a string, not {type(name).__name__}"]
    if len(name) > 253 or not re2.search(DNS_SUBDOMAIN, name):
        return [f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain"]
    return []


def as_decoded(obj: Any) -> Any:
    """The object as the API server decodes its JSON: an integer beyond int64 is a float."""
    if isinstance(obj, dict):
        return {k: as_decoded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [as_decoded(v) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and not -(2**63) <= obj < 2**63:
        return float(obj)  # OverflowError past float64: Go's decoder fails on it too
    return obj


def server_check(obj: Any) -> list[str]:
    """What an API server with this CRD says about the object: [] when it accepts it.

    Never raises: an object no server would take (not a mapping, a null spec, no
    name) is a list of problems, so a check of many objects reports them all.
    """
    if not isinstance(obj, dict):
        return [f"the object is a {type(obj).__name__}, not a mapping"]
    try:
        size = len(json.dumps(obj, allow_nan=False).encode())
        obj = as_decoded(obj)
    except (TypeError, ValueError, OverflowError) as err:
        return [f"cannot be sent as JSON, as kubectl sends objects ({err})"]
    if size > MAX_OBJECT_BYTES:
        return [f"etcdserver: request is too large ({size} bytes)"]
    if obj.get("apiVersion") != GROUP_VERSION or obj.get("kind") != CRD["spec"]["names"]["kind"]:
        return [f"no matches for kind {obj.get('kind')!r} in version {obj.get('apiVersion')!r}"]
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("name") is None and "generateName" in meta:
        obj = {**obj, "metadata": {**meta, "name": f"{meta['generateName']}x7k2p"}}  # made up
    problems = metadata_problems(obj)
    if problems:
        return problems  # the server stops at metadata: the CEL rules read the name
    pruned = without_nulls(SCHEMA, obj)
    defaulted = with_defaults(SCHEMA, pruned)
    problems = [e.message for e in Validator(SCHEMA).iter_errors(defaulted)]
    problems += [f"unknown field {f}" for f in unknown_fields(SCHEMA, pruned)]
    return problems + cel_failures(SCHEMA, defaulted)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_for_the_model_and_the_crd(path: Path) -> None:
    load_manifest(path)  # the operator's and `transfersearch run`'s view; raises if invalid
    assert server_check(yaml.safe_load(path.read_text())) == []


def test_examples_cover_every_mode_auto_and_gpu() -> None:
    specs = [load_manifest(p).spec for p in EXAMPLES]
    assert {s.transfer.mode for s in specs} == set(TRANSFER_MODES)
    assert {s.transfer.protocol for s in specs} == {"search", "paper"}
    assert any(s.source.pretrain_tasks(s.target.task)[1:] for s in specs)  # a multi-source one
    assert any(s.source.agent == "auto" and s.source.candidates for s in specs)
    assert any(s.resources.gpu > 0 for s in specs)


BASE: dict[str, Any] = {
    "apiVersion": "transfersearch.io/v1alpha1",
    "kind": "TransferSearch",
    "metadata": {"name": "s"},
    "spec": {"target": {"task": "jigsaw"}, "source": {"task": "class_scene"}},
}


STORE_URI = "s3://models/team/agents/micro/class_scene/" + "ab" * 32


def spec_with(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(spec)
    return doc


DIGITS = {"uri": "s3://team-data/datasets/digits.npz"}


def own_data(**spec: Any) -> dict[str, Any]:
    """A search on a dataset (`None` removes a field): the zoo's agent, S3 credentials."""
    doc = spec_with(
        target={"dataset": DIGITS, "training": {"epochs": 1, "width": 4}},
        source={"agent": "zoo"},
        s3={"bucket": "team-data", "credentialsSecret": "s3"},
    )
    doc["spec"].update(spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    return doc


@pytest.mark.parametrize(
    ("doc", "cel_message"),
    [
        (spec_with(training={"seeds": 2, "parallelism": 3}), "parallelism cannot exceed"),
        (spec_with(source={"agent": "auto"}), "list the agents to choose from"),
        (
            spec_with(source={"agent": "s3://b/a", "candidates": [{"agent": "s3://b/c"}]}),
            "only used with source.agent: auto",
        ),
        (spec_with(source={}), "give source.agent"),
        (spec_with(source={"agent": "s3://models/scene"}), "must be a store URI"),
        ({**BASE, "metadata": {"name": "n" * 64}}, "at most 63 characters"),
        (spec_with(transfer={"mode": "finetune"}), "use transfer.protocol: paper"),
        (spec_with(transfer={"protocol": "paper"}), "online is a search mode"),
        (spec_with(evaluation={"budget": 4, "parallel": 5}), "parallel cannot exceed"),
        (spec_with(training={"targetEvaluations": 9}), "no training on the target"),
        (
            spec_with(source={"agent": "auto", "candidates": [{"agent": STORE_URI}]}),
            "auto probes the target",
        ),
        (spec_with(source={"tasks": ["normal", "jigsaw"]}), "pretraining on the target task"),
        (spec_with(source={"task": "jigsaw"}), "pretraining on the target task"),
        (spec_with(source={"tasks": ["normal", "normal"]}), "listed twice"),
        (spec_with(source={"task": "normal", "tasks": ["normal"]}), "not both"),
        (spec_with(target={"task": "jigsaw", "dataset": DIGITS}), "exactly one of target.task"),
        (spec_with(target={}), "exactly one of target.task"),
        (
            own_data(transfer={"protocol": "paper", "mode": "finetune"}),
            "a dataset target is searched",
        ),
        (spec_with(target={"task": "jigsaw", "training": {"epochs": 1}}), "dataset target only"),
        (own_data(s3=None), "an s3:// dataset is read with spec.s3"),
        (
            own_data(target={"dataset": {**DIGITS, "validationUri": "s3://u:p@b/v.npz"}}),
            "must not hold a user name",
        ),
    ],
)
def test_cel_rules_refuse_what_the_model_refuses(doc: dict[str, Any], cel_message: str) -> None:
    with pytest.raises(TransferSearchError):
        parse_manifest(doc)
    problems = server_check(doc)
    assert any(cel_message in p for p in problems), problems


@pytest.mark.parametrize(
    "doc",
    [
        BASE,
        spec_with(transfer={"mode": "scratch"}, source={}),
        spec_with(
            source={"agent": "auto", "candidates": [{"agent": STORE_URI}]},
            transfer={"protocol": "paper", "mode": "finetune"},
        ),
        spec_with(source={"agent": STORE_URI}),
        spec_with(source={"agent": "runs/agents/scene"}),
        spec_with(source={"agent": "zoo"}),  # the zoo's agent that never saw the target
        spec_with(source={"agent": "zoo"}, transfer={"mode": "zero-shot"}),
        spec_with(training={"seeds": 4, "parallelism": 4}),
        spec_with(source={"task": "all-but-target"}, evaluation={"budget": 8, "parallel": 8}),
        spec_with(source={"tasks": ["normal", "class_scene"]}, transfer={"mode": "zero-shot"}),
        spec_with(source={"task": "jigsaw", "agent": STORE_URI}),  # describes the agent
        spec_with(
            source={"task": "jigsaw"},
            transfer={"protocol": "paper", "mode": "freeze-encoder"},
            training={"targetEvaluations": 9},
        ),
        own_data(),
        own_data(source={"task": "all-but-target"}),
        own_data(transfer={"mode": "scratch"}, source={}),
        own_data(target={"dataset": {"uri": "/data/flowers/", "format": "imagefolder"}}, s3=None),
        own_data(
            target={
                "dataset": {**DIGITS, "validationSplit": 0.1, "validationUri": "s3://b/v.npz"},
                "training": {"epochs": 3, "width": 8, "batchSize": 32, "learningRate": 0.05},
            }
        ),
    ],
)
def test_cel_rules_accept_what_the_model_accepts(doc: dict[str, Any]) -> None:
    parse_manifest(doc)
    assert server_check(doc) == []


def test_schema_refuses_bad_fields_like_the_model() -> None:
    for doc in (
        spec_with(target={"task": "jigsaws"}),
        spec_with(resources={"memory": "lots"}),
        spec_with(evaluation={"budget": 1}),
        spec_with(s3={"bucket": "b1", "accessKey": "x"}),
    ):
        with pytest.raises(TransferSearchError):
            parse_manifest(doc)
        assert server_check(doc), doc


def test_converter_bounds_optionals_and_default_factories() -> None:
    from pydantic import Field

    class Inner(BaseModel):
        n: int = 1

    class Model(BaseModel):
        count: int = Field(0, gt=0, lt=10)
        ratio: float = Field(0.5, gt=0)
        maybe: str | None = None
        inner: Inner = Field(default_factory=Inner)
        optional_inner: Inner | None = None
        tags: dict[str, str] = Field(default_factory=dict)

    schema = structural_schema(Model)
    props = schema["properties"]
    assert (props["count"]["minimum"], props["count"]["maximum"]) == (1, 9)
    assert props["ratio"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "default": 0.5,
    }
    assert props["maybe"] == {"type": "string"}
    assert props["inner"]["default"] == {}
    assert "default" not in props["optional_inner"]
    assert props["tags"]["additionalProperties"] == {"type": "string"}


def test_converter_refuses_unions() -> None:
    class Model(BaseModel):
        either: int | str

    with pytest.raises(SchemaError, match="either"):
        structural_schema(Model)


@pytest.mark.parametrize(
    "doc",
    [
        {**BASE, "spec": None},
        {**BASE, "spec": True},
        {**BASE, "spec": ["target"]},
        {**BASE, "metadata": {}},
        {**BASE, "metadata": None},
        {**BASE, "metadata": {"name": 5}},
        {k: v for k, v in BASE.items() if k != "metadata"},
        spec_with(training=True),
        ["not", "an", "object"],
    ],
    ids=[
        "null-spec",
        "boolean-spec",
        "list-spec",
        "no-name",
        "null-metadata",
        "number-name",
        "no-metadata",
        "boolean-training",
        "list",
    ],
)
def test_checker_reports_broken_objects_as_rejections(doc: Any) -> None:
    assert server_check(doc)  # a list of problems, not an exception


def test_checker_applies_rules_inside_lists_and_prunes_nulls() -> None:
    bad_candidate = spec_with(source={"agent": "auto", "candidates": [{"agent": "s3://b/c"}]})
    assert any("must be a store URI" in p for p in server_check(bad_candidate))
    assert server_check(spec_with(training=None, s3=None)) == []


# apimachinery's grammar (number, then one suffix or exponent), greater than zero,
# exponents of one or two digits (Kubernetes caps quantities at 2^63 anyway).
VALID_QUANTITIES = [
    "2", "500m", "1.5", "1Pi", "4Gi", "1Ei", "1e3", "1E3", "1e-3", "2E+2", ".5", "5.", "+1",
    "0.1", "007", "100n", "3u", "1k", "1M", "1E", "1.G", "1" * 32,
]  # fmt: skip
INVALID_QUANTITIES = [
    "0", "0.0", "0Gi", "0e5", ".0", "-1", "-500m", "1e3m", "1ki", "1K", "1KiB", "lots", "",
    "1e", "1e100", "1e999999", "NaN", "Infinity", "1_000", " 1", "1 ", "\uff11", "2\n",
    "1.5.5", "0x10", "1" * 33, "1Gi1", "e3", "m",
]  # fmt: skip
QUANTITIES = [(q, True) for q in VALID_QUANTITIES] + [(q, False) for q in INVALID_QUANTITIES]


@pytest.mark.parametrize(("quantity", "valid"), QUANTITIES, ids=[repr(q) for q, _ in QUANTITIES])
def test_quantities_get_the_same_answer_from_the_model_the_crd_and_the_operator(
    quantity: str, valid: bool
) -> None:
    from decimal import Decimal

    from kubernetes.utils import parse_quantity

    from transfersearch_operator.children import cpu_threads

    doc = spec_with(resources={"cpu": quantity, "memory": quantity})
    assert (server_check(doc) == []) is valid, server_check(doc)
    if valid:
        parse_manifest(doc)
        value: Decimal = parse_quantity(quantity)  # what the operator computes with
        assert value > 0
        assert 1 <= cpu_threads(quantity) <= 1024
    else:
        with pytest.raises(TransferSearchError, match="spec.resources.cpu: ") as info:
            parse_manifest(doc)
        assert "\n" not in str(info.value)
