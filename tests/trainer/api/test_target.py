"""`spec.target`: a benchmark task or the user's own dataset (api/target.py)."""

from __future__ import annotations

import pytest

from tests.trainer.api.test_spec import BASE
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import TrialSummary
from transfersearch_trainer.api.spec import parse_manifest

DATASET = {
    "dataset": {"uri": "s3://team-data/datasets/digits.npz"},
    "training": {"epochs": 1, "width": 4},
}


def own_data(**spec: object) -> dict[str, object]:
    body = {
        "source": {"agent": "zoo"},
        "target": DATASET,
        "s3": {"bucket": "team-data", "credentialsSecret": "s3"},
        **spec,
    }
    return {**BASE, "spec": body}


def test_a_dataset_target_with_its_defaults() -> None:
    spec = parse_manifest(own_data()).spec
    data = spec.target.dataset
    assert data is not None
    assert spec.target.task is None
    assert (data.format, data.validation_split, data.validation_uri) == ("auto", 0.2, None)
    recipe = spec.target.recipe
    assert (recipe.epochs, recipe.width, recipe.batch_size, recipe.seed) == (1, 4, 64, 0)
    assert recipe.learning_rate == 0.1
    assert recipe.resolution is None
    assert spec.target.name == "digits"  # labels and status: the file's name, no suffix
    assert spec.transfer.protocol == "search"
    with pytest.raises(TransferSearchError, match="target.task: this needs a benchmark task"):
        _ = spec.target.benchmark_task


def test_the_training_defaults_are_the_pilots() -> None:
    doc = own_data(target={"dataset": {"uri": "data/flowers/"}})
    spec = parse_manifest(doc).spec
    assert spec.target.training is None
    recipe = spec.target.recipe
    assert (recipe.epochs, recipe.width, recipe.batch_size) == (2, 16, 64)
    assert spec.target.name == "flowers"


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("s3://b/x/digits.npz", "digits"),
        ("s3://b/x/My Photos/", "My_Photos"),
        ("/data/set.v2.NPZ", "set.v2"),
        ("s3://b/" + "a" * 100 + ".npz", "a" * 63),
    ],
)
def test_dataset_names_are_bounded_label_values(uri: str, name: str) -> None:
    spec = parse_manifest(own_data(target={"dataset": {"uri": uri}})).spec
    assert spec.target.name == name


def test_sources_of_a_dataset_are_benchmark_tasks() -> None:
    """Pretraining on benchmark tasks is free; all-but-target is every task for a dataset."""
    spec = parse_manifest(own_data(source={"task": "all-but-target"})).spec
    assert len(spec.source.pretrain_tasks(spec.target.task)) == 7
    assert spec.source.label(spec.target.task) == "all_tasks"
    parse_manifest(own_data(source={"task": "jigsaw"}))  # a task is never the dataset
    parse_manifest(own_data(transfer={"mode": "scratch"}, source={}))


def test_errors_are_one_line_naming_the_field() -> None:
    doc = own_data(target={"dataset": {"uri": "d.npz", "validationSplit": 2}})
    with pytest.raises(TransferSearchError) as err:
        parse_manifest(doc)
    assert "\n" not in str(err.value)
    assert "spec.target.dataset.validationSplit" in str(err.value)


def test_a_trial_summary_of_own_data_has_no_rank() -> None:
    summary = TrialSummary(
        trial=0,
        seed=0,
        status="Succeeded",
        protocol="search",
        best_metric=0.9,
        evaluations=3,
        budget=3,
    )
    again = TrialSummary.model_validate_json(summary.to_message())
    assert (again.rank, again.regret, again.hit) == (None, None, None)
