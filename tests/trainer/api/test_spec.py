"""The TransferSearch manifest model: defaults, cross-field rules, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import JobConfig, TrialSummary, load_job_config
from transfersearch_trainer.api.spec import load_manifest, parse_manifest

BASE = {
    "apiVersion": "transfersearch.io/v1alpha1",
    "kind": "TransferSearch",
    "metadata": {"name": "jigsaw-from-scene"},
    "spec": {"source": {"task": "class_scene"}, "target": {"task": "jigsaw"}},
}


def with_spec(**spec: object) -> dict[str, object]:
    return {**BASE, "spec": {**BASE["spec"], **spec}}  # type: ignore[dict-item]


def test_defaults() -> None:
    m = parse_manifest(BASE)
    assert m.spec.transfer.mode == "finetune"
    assert m.spec.benchmark.space == "micro"
    assert m.spec.evaluation.budget == 50
    assert m.spec.training.seeds == 1
    dumped = m.spec.model_dump(by_alias=True)
    assert "pretrainSteps" in dumped["source"]
    assert "checkpointInterval" in dumped["training"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"target": {"task": "jigsaws"}}, "spec.target.task: Input should be"),
        ({"transfer": {"mode": "fine"}}, "spec.transfer.mode"),
        ({"training": {"stepz": 3}}, "spec.training.stepz: unknown field"),
        ({"training": {"steps": -1}}, "spec.training.steps"),
        ({"training": {"seeds": 2, "parallelism": 3}}, "parallelism cannot exceed"),
        ({"source": {"agent": "auto"}}, "list the agents to choose from"),
        ({"source": {"digest": "md5:1"}}, "spec.source.digest"),
        ({"source": {}}, "give source.agent"),
        ({"resources": {"memory": "lots"}}, "spec.resources.memory"),
        ({"evaluation": {"budget": 1}}, "spec.evaluation.budget"),
        ({"s3": {"bucket": "b1", "accessKey": "x"}}, "spec.s3.accessKey: unknown field"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(TransferSearchError, match=message):
        parse_manifest(with_spec(**spec))


def test_scratch_needs_no_source() -> None:
    m = parse_manifest(
        {**BASE, "spec": {"target": {"task": "normal"}, "transfer": {"mode": "scratch"}}}
    )
    assert m.spec.source.agent is None


def test_wrong_api_version_and_kind() -> None:
    with pytest.raises(TransferSearchError, match="apiVersion"):
        parse_manifest({**BASE, "apiVersion": "transfersearch.io/v1"})
    with pytest.raises(TransferSearchError, match="kind"):
        parse_manifest({**BASE, "kind": "Search"})


def test_load_manifest_file(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n"
        "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\n"
        "metadata: {name: s}\nspec: {target: {task: jigsaw}, "
        "transfer: {mode: scratch}}\n"
    )
    assert load_manifest(path).metadata.name == "s"
    path.write_text("spec: [")
    with pytest.raises(TransferSearchError, match="not valid YAML"):
        load_manifest(path)
    with pytest.raises(TransferSearchError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")


def test_job_config_round_trip(tmp_path: Path) -> None:
    spec = parse_manifest(BASE).spec
    cfg = JobConfig(search="s", namespace="ns", spec=spec, output="s3://b/p/runs/ns/s")
    path = tmp_path / "job.json"
    path.write_text(cfg.to_json())
    assert load_job_config(path) == cfg
    path.write_text('{"search": "s"}')
    with pytest.raises(TransferSearchError, match="spec: Field required"):
        load_job_config(path)


def test_trial_summary_fits_a_termination_message() -> None:
    s = TrialSummary(
        trial=0, seed=0, status="Succeeded", best_metric=45.1, best_arch="64-41414-3_13_113"
    )
    assert '"bestMetric":45.1' in s.to_message()
    with pytest.raises(TransferSearchError, match="4096"):
        TrialSummary(trial=0, seed=0, status="Failed", reason="x" * 5000).to_message()
