"""The malformed-manifest set: one answer from `transfersearch run` and from the API server.

Each case is a manifest file as someone might write it: wrong types, unknown
fields, bad names and quantities, credentials in URLs, alias bombs, a null or
boolean spec, no name, markup-like text, huge values. For each one, the model's
verdict (`load_manifest`, what `transfersearch run` and the operator use:
accepted, or refused with one line naming the field) must equal the API
server's (the CRD's schema, defaults and CEL rules, checked offline by
`server_check` on what kubectl would send). A representative subset runs
through the console script itself, which must answer with one ``error:`` line
and never a traceback. `pytest -s` prints the counts.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.test_operator_crd import server_check
from tests.paths import ROOT as REPO_ROOT
from tests.trainer.api.test_spec import INVALID_SPECS
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import load_manifest

ROOT = REPO_ROOT
SECRET = "wJalrXUtnFEMI"
BASE: dict[str, Any] = {
    "apiVersion": "transfersearch.io/v1alpha1",
    "kind": "TransferSearch",
    "metadata": {"name": "s"},
    "spec": {"target": {"task": "jigsaw"}, "source": {"task": "class_scene"}},
}
HEAD = "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\nmetadata: {name: s}\n"
STORE_URI = "s3://models/team/agents/micro/class_scene/" + "ab" * 32


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes  # the manifest file
    names: str | None  # a regex the refusal must match (the field, or the line); None: valid
    # YAML kubectl cannot turn into an object either (go-yaml refuses excessive
    # aliasing, self-referring anchors, bad syntax, text that is not UTF-8).
    kubectl_refuses: bool = False


def doc(case_id: str, names: str | None, obj: Any) -> Case:
    return Case(case_id, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), names)


def spec(case_id: str, names: str | None, **fields: Any) -> Case:
    obj = copy.deepcopy(BASE)
    obj["spec"].update(fields)
    return doc(case_id, names, obj)


def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return HEAD + "\n".join(lines) + f"\nspec: {{target: {{task: *a{levels}}}}}\n"


CASES: list[Case] = [
    # the model tests' own malformed specs
    *(spec(f"model-test-{i}", msg, **fields) for i, (fields, msg) in enumerate(INVALID_SPECS)),
    # valid, for contrast
    doc("valid", None, BASE),
    spec("valid-scratch", None, source={}, transfer={"mode": "scratch"}),
    spec("valid-training", None, training={"steps": 10, "seeds": 2, "parallelism": 2}),
    doc("valid-metadata-extras", None, {**BASE, "metadata": {"name": "s", "labels": {"a": "b"}}}),
    # wrong types: the CRD's integers, booleans and strings are not coerced
    spec("string-int", r"spec\.training\.steps: .*without quotes", training={"steps": "100"}),
    spec("bool-int", r"spec\.training\.seeds: .*got true", training={"seeds": True}),
    spec("float-int", r"spec\.training\.steps: .*got 100\.0", training={"steps": 100.0}),
    spec("string-int-budget", r"spec\.evaluation\.budget", evaluation={"budget": "50"}),
    spec("string-bool", r"spec\.evaluation\.sourceTopK", evaluation={"sourceTopK": "yes"}),
    spec("int-bool", r"spec\.evaluation\.sourceTopK", evaluation={"sourceTopK": 1}),
    spec("string-float", r"spec\.alerts\.driftThreshold", alerts={"driftThreshold": "0.1"}),
    spec("bool-float", r"spec\.alerts\.driftThreshold", alerts={"driftThreshold": True}),
    spec("int-string", r"spec\.resources\.cpu: .*quote it", resources={"cpu": 2}),
    spec("int-image", r"spec\.image", image=5),
    spec("float-gpu", r"spec\.resources\.gpu", resources={"gpu": 1.5}),
    spec(
        "int-label-value", r"spec\.resources\.nodeSelector\.a", resources={"nodeSelector": {"a": 1}}
    ),
    spec("list-for-object", r"spec\.training: ", training=[]),
    spec("object-for-list", r"spec\.resources\.tolerations", resources={"tolerations": {}}),
    spec("string-target", r"spec\.target: .*got \"jigsaw\"", target="jigsaw"),
    doc("string-spec", r"spec: ", {**BASE, "spec": "target: jigsaw"}),
    # null is unset, as the API server prunes it
    spec("null-training", None, training=None),
    spec("null-s3", None, s3=None),
    spec("null-steps", None, training={"steps": None}),
    spec("null-target", r"spec\.target: Field required", target=None),
    # unknown fields
    spec("unknown-section", r"spec\.trainingg: unknown field", trainingg={}),
    spec("snake-case", r"write checkpointInterval", training={"checkpoint_interval": 5}),
    spec("wrong-case", r"spec\.source\.Task: unknown field", source={"Task": "class_scene"}),
    spec("unknown-nested", r"spec\.resources\.limits: unknown field", resources={"limits": {}}),
    # bad task, space, mode and object names
    spec("task-case", r"spec\.target\.task: .*got \"Jigsaw\"", target={"task": "Jigsaw"}),
    spec("task-empty", r"spec\.target\.task", target={"task": ""}),
    spec("space", r"spec\.benchmark\.space", benchmark={"space": "nano"}),
    spec("benchmark", r"spec\.benchmark\.name", benchmark={"name": "nas-bench-201"}),
    spec("mode", r"spec\.transfer\.mode", transfer={"mode": "zero_shot"}),
    doc("name-uppercase", r"metadata\.name", {**BASE, "metadata": {"name": "Search_1"}}),
    doc("name-dot", r"metadata\.name", {**BASE, "metadata": {"name": "a.b"}}),
    doc("name-64", r"metadata\.name", {**BASE, "metadata": {"name": "n" * 64}}),
    spec(
        "secret-name",
        r"spec\.s3\.credentialsSecret",
        s3={"bucket": "bkt", "credentialsSecret": "S_3"},
    ),
    spec(
        "toleration-operator",
        r"spec\.resources\.tolerations\.0\.operator",
        resources={"tolerations": [{"key": "k", "operator": "In"}]},
    ),
    doc("api-version", r"apiVersion", {**BASE, "apiVersion": "transfersearch.io/v1"}),
    doc("kind", r"kind TransferSearch, found 0", {**BASE, "kind": "Transfersearch"}),
    # quantities: apimachinery's grammar, greater than zero
    spec("memory-zero", r"spec\.resources\.memory: \"0\" is not", resources={"memory": "0"}),
    spec("cpu-exponent-and-suffix", r"spec\.resources\.cpu", resources={"cpu": "1e3m"}),
    spec("cpu-negative", r"spec\.resources\.cpu", resources={"cpu": "-1"}),
    spec("memory-huge-exponent", r"spec\.resources\.memory", resources={"memory": "1e999999"}),
    spec("memory-pebibyte", None, resources={"memory": "1Pi"}),
    spec("cpu-exponent", None, resources={"cpu": "1e3"}),
    spec("cpu-fraction", None, resources={"cpu": ".5"}),
    Case(
        "cpu-block-scalar-newline",
        HEAD + "spec:\n  target: {task: jigsaw}\n  source: {task: class_scene}\n"
        "  resources:\n    cpu: |\n      2\n",
        r"spec\.resources\.cpu",
    ),
    # credentials in URLs
    spec(
        "userinfo-endpoint",
        r"spec\.s3\.endpoint: a URL must not hold",
        s3={"bucket": "bkt", "endpoint": f"http://AKIA:{SECRET}@minio:9000"},
    ),
    spec(
        "userinfo-data",
        r"spec\.benchmark\.data: a URL must not hold",
        benchmark={"data": f"s3://AKIA:{SECRET}@bench/tnb101"},
    ),
    spec(
        "userinfo-agent",
        r"spec\.source\.agent: a URL must not hold",
        source={"agent": f"https://u:{SECRET}@host/agents/x"},
    ),
    spec(
        "userinfo-candidate",
        r"spec\.source\.candidates\.0\.agent: a URL must not hold",
        source={"agent": "auto", "candidates": [{"agent": f"http://u:{SECRET}@h/a"}]},
    ),
    spec("at-in-path", None, s3={"bucket": "bkt", "endpoint": "http://minio:9000/a@b"}),
    spec("agent-not-store-uri", r"spec\.source\.agent", source={"agent": "s3://models/scene"}),
    spec(
        "candidate-not-store-uri",
        r"spec\.source\.candidates\.0\.agent",
        source={"agent": "auto", "candidates": [{"agent": "s3://b/c"}]},
    ),
    spec("valid-store-uri", None, source={"agent": STORE_URI}),
    # YAML: aliases, nesting, syntax, encoding, size
    Case("alias-bomb", billion_laughs(9), r"line \d+, column \d+: aliases expand", True),
    Case("alias-self", HEAD + "spec: &s {target: {task: jigsaw}, x: *s}\n", r"line 4", True),
    Case(
        "alias-small",
        HEAD + "spec:\n  source: &scene {task: class_scene}\n  target: {task: jigsaw}\n"
        "  evaluation: {<<: {budget: 30}}\n",
        None,
    ),
    Case(
        "nested-100",
        HEAD + "spec:\n  target: {task: jigsaw}\n  x: " + "[" * 100 + "]" * 100 + "\n",
        r"line 6, column \d+: nested more than 64",
    ),
    Case("syntax", HEAD + "spec: {target: {task: jigsaw}\n", r"not valid YAML \(line", True),
    Case("not-utf8", HEAD.encode() + b"spec: {target: {task: \xff}}\n", r"not UTF-8", True),
    spec("oversized", r"larger than 1 MiB", image="x" * (2 << 20)),
    # null or boolean spec, no name
    doc("null-spec", r"spec: Field required", {**BASE, "spec": None}),
    doc("boolean-spec", r"spec: Input should be a valid dictionary", {**BASE, "spec": True}),
    doc("no-name", r"metadata\.name: Field required", {**BASE, "metadata": {}}),
    doc("null-metadata", r"metadata: Field required", {**BASE, "metadata": None}),
    doc("number-name", r"metadata\.name", {**BASE, "metadata": {"name": 5}}),
    doc(
        "no-metadata",
        r"metadata: Field required",
        {k: v for k, v in BASE.items() if k != "metadata"},
    ),
    # markup-like text is data, never markup
    spec("markup-in-task", r"spec\.target\.task: .*\[/x\]", target={"task": "[/x]"}),
    spec("markup-in-image", None, image="[/x][bold]x[/bold]"),
    doc(
        "markup-in-label",
        None,
        {**BASE, "metadata": {"name": "s", "labels": {"note": "[red]x[/red]"}}},
    ),
    # huge values
    spec("huge-int", r"spec\.training\.steps", training={"steps": 10**30}),
    spec("seed-2-31", r"spec\.training\.seed", training={"seed": 2**31}),
    spec(
        "toleration-seconds-2-63",
        r"spec\.resources\.tolerations\.0\.tolerationSeconds",
        resources={"tolerations": [{"key": "k", "tolerationSeconds": 2**63}]},
    ),
    spec("huge-float", None, alerts={"gpuSecondsBudget": 1e308}),
    spec("infinite-float", r"spec\.alerts\.gpuSecondsBudget", alerts={"gpuSecondsBudget": 1e400}),
    spec("huge-task", r"spec\.target\.task: .*\(100002 characters\)", target={"task": "x" * 10**5}),
    spec(
        "candidates-33",
        r"spec\.source\.candidates",
        source={"agent": "auto", "candidates": [{"agent": STORE_URI}] * 33},
    ),
]


def write(case: Case, folder: Path) -> Path:
    path = folder / f"{case.id}.yaml"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    return path


def model_verdict(path: Path) -> str | None:
    """None when `transfersearch run` would accept the manifest, else its one-line error."""
    try:
        load_manifest(path)
    except TransferSearchError as err:
        return str(err)
    return None


def crd_verdict(case: Case) -> list[str]:
    """What the API server says about the object kubectl would send: [] when it accepts it."""
    if case.kubectl_refuses:
        return ["kubectl cannot turn this file into an object"]
    text = case.text.decode() if isinstance(case.text, bytes) else case.text
    return server_check(next(iter(yaml.safe_load_all(text))))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_model_and_the_crd_give_the_same_answer(case: Case, tmp_path: Path) -> None:
    message = model_verdict(write(case, tmp_path))
    problems = crd_verdict(case)
    if case.names is None:
        assert message is None, message
        assert problems == [], problems
        return
    assert message is not None, "the model accepts it"
    assert problems, "the CRD accepts it"
    assert "\n" not in message, message
    assert len(message) < 600, message
    assert re.search(case.names, message), message
    assert SECRET not in message


def test_the_set_is_large_and_its_counts_are_printed(tmp_path: Path) -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 50
    verdicts = [model_verdict(write(c, tmp_path)) for c in CASES]
    accepted = sum(v is None for v in verdicts)
    agree = sum((v is None) == (crd_verdict(c) == []) for c, v in zip(CASES, verdicts, strict=True))
    print(
        f"\nmalformed-manifest set: {accepted} accepted / {len(CASES) - accepted} refused / "
        f"{len(CASES)} total; model and CRD agree on {agree} of {len(CASES)}"
    )
    assert agree == len(CASES)


def console_script() -> list[str]:
    """`transfersearch` as pyproject.toml declares it, run by this interpreter.

    The declared entry point rather than the installed wrapper: the wrapper in a
    shared virtual environment may have been generated from another checkout.
    """
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["transfersearch"].split(":")
    code = f"import sys; sys.argv[0] = 'transfersearch'; from {module} import {func}; {func}()"
    return [sys.executable, "-c", code]


CLI_CASES = [
    "valid",
    "string-int",
    "bool-int",
    "memory-zero",
    "userinfo-endpoint",
    "alias-bomb",
    "null-spec",
    "boolean-spec",
    "no-name",
    "not-utf8",
    "huge-task",
    "markup-in-image",
    "markup-in-task",
]
BY_ID = {c.id: c for c in CASES}


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_transfersearch_run_answers_with_one_error_line(case_id: str, tmp_path: Path) -> None:
    case = BY_ID[case_id]
    path = write(case, tmp_path)
    missing = tmp_path / "no-data"  # an accepted manifest stops at its data, before training
    env = {k: v for k, v in os.environ.items() if k != "TRANSFERSEARCH_DATA"}
    out = subprocess.run(
        [*console_script(), "run", str(path), "--data", str(missing), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "160"},
        cwd=tmp_path,
        timeout=120,
    )
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    assert out.returncode == 2, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith("error: "), out.stderr
    assert SECRET not in out.stderr
    if case.names is None:
        assert f"{missing}: no such file or folder" in errors[0]
    else:
        assert re.search(case.names, errors[0]), errors[0]
