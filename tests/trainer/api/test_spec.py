"""The TransferSearch manifest model: defaults, cross-field rules, and clear errors."""

from __future__ import annotations

import re
import time
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
    assert m.spec.transfer.protocol == "search"
    assert m.spec.transfer.mode == "online"
    assert m.spec.evaluation.parallel == 1
    assert m.spec.benchmark.space == "micro"
    assert m.spec.evaluation.budget == 50
    assert m.spec.training.seeds == 1
    dumped = m.spec.model_dump(by_alias=True)
    assert "pretrainSteps" in dumped["source"]
    assert "checkpointInterval" in dumped["training"]


# Specs the model refuses, and what the one-line message must say (also run against
# the CRD and the CLI in test_malformed_manifests.py).
INVALID_SPECS: list[tuple[dict[str, object], str]] = [
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
    # protocol search: the budget is all a trial spends on the target (api/rules.py)
    ({"transfer": {"mode": "finetune"}}, "transfer.mode: .*use transfer.protocol: paper"),
    ({"transfer": {"mode": "freeze-encoder"}}, "transfer.mode: .*use transfer.protocol: paper"),
    ({"transfer": {"protocol": "paper"}}, "transfer.mode: online is a search mode"),
    ({"transfer": {"protocol": "study"}}, "spec.transfer.protocol"),
    ({"evaluation": {"budget": 10, "parallel": 11}}, "evaluation.parallel cannot exceed"),
    ({"evaluation": {"parallel": 0}}, "spec.evaluation.parallel"),
    ({"training": {"targetEvaluations": 100}}, "training.targetEvaluations: .*protocol: paper"),
    (
        {"source": {"agent": "auto", "candidates": [{"agent": "runs/a"}]}},
        "source.agent: auto probes the target",
    ),
    ({"source": {"task": "jigsaw"}}, "source.task: pretraining on the target task"),
    ({"source": {"tasks": ["normal", "jigsaw"]}}, "source.task: pretraining on the target"),
    ({"source": {"tasks": ["normal", "normal"]}}, "source.tasks: a task is listed twice"),
    ({"source": {"task": "normal", "tasks": ["normal"]}}, "source.tasks: .*not both"),
    ({"source": {"task": "all-of-them"}}, "spec.source.task"),
    # a dataset target (api/target.py): exactly one target, searched only, well-formed
    (
        {"target": {"task": "jigsaw", "dataset": {"uri": "data/digits.npz"}}},
        "target: give exactly one of target.task .* or target.dataset",
    ),
    ({"target": {}}, "target: give exactly one of target.task"),
    (
        {
            "target": {"dataset": {"uri": "data/digits.npz"}},
            "transfer": {"protocol": "paper", "mode": "finetune"},
        },
        "transfer.protocol: a dataset target is searched .*use transfer.protocol: search",
    ),
    (
        {"target": {"dataset": {"uri": "data/digits.npz", "validationSplit": 1.5}}},
        "spec.target.dataset.validationSplit: .*less than 1",
    ),
    (
        {"target": {"dataset": {"uri": "data/digits.npz", "validationSplit": 0}}},
        "spec.target.dataset.validationSplit: .*greater than 0",
    ),
    (
        {"target": {"dataset": {"uri": "data/digits.npz", "format": "csv"}}},
        "spec.target.dataset.format",
    ),
    (
        {"target": {"dataset": {"uri": "data/digits.npz"}, "training": {"width": 5}}},
        "spec.target.training.width",
    ),
    (
        {"target": {"dataset": {"uri": "data/d.npz"}, "training": {"epochs": 0}}},
        "spec.target.training.epochs",
    ),
    (
        {"target": {"task": "jigsaw", "training": {"epochs": 3}}},
        "target.training: how candidates are trained applies to a dataset target only",
    ),
    (
        {"target": {"dataset": {"uri": "s3://data/digits.npz"}}},
        "target.dataset: an s3:// dataset is read with spec.s3's endpoint .*add spec.s3",
    ),
    (
        {"target": {"dataset": {"uri": "s3://key:secret@data/digits.npz"}}},
        "must not hold a user name or password",
    ),
]


@pytest.mark.parametrize(("spec", "message"), INVALID_SPECS)
def test_invalid_specs_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(TransferSearchError, match=message):
        parse_manifest(with_spec(**spec))


def test_multi_source_tasks_and_all_but_target() -> None:
    m = parse_manifest(with_spec(source={"task": "all-but-target"}))
    assert m.spec.source.pretrain_tasks("jigsaw") == (
        "class_object",
        "class_scene",
        "room_layout",
        "segmentsemantic",
        "normal",
        "autoencoder",
    )
    assert m.spec.source.label("jigsaw") == "all_but_jigsaw"
    m = parse_manifest(with_spec(source={"tasks": ["normal", "class_scene"]}))
    assert m.spec.source.label("jigsaw") == "normal_and_class_scene"
    # any stored agent, a multi-source one included; its task label is the store's
    uri = "s3://models/team/agents/micro/all_but_jigsaw/" + "ab" * 32
    assert parse_manifest(with_spec(source={"agent": uri})).spec.source.agent == uri


def test_the_paper_protocol_keeps_its_modes_and_training() -> None:
    for mode in ("scratch", "finetune", "freeze-encoder", "zero-shot"):
        spec = parse_manifest(
            with_spec(
                transfer={"protocol": "paper", "mode": mode},
                training={"targetEvaluations": 300},
                source={"task": "jigsaw"},  # on the target itself: the paper may
            )
        ).spec
        assert spec.transfer.mode == mode


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


# --- hostile and sloppy input: what `transfersearch run` and the trainer pod read ---

MANIFEST_HEAD = (
    "apiVersion: transfersearch.io/v1alpha1\nkind: TransferSearch\nmetadata: {name: s}\n"
)


def billion_laughs(levels: int) -> str:
    """Nested anchors: `levels` lines of nine aliases each, 9**levels strings in all."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return MANIFEST_HEAD + "\n".join(lines) + f"\nspec: {{target: {{task: *a{levels}}}}}\n"


def one_clear_line(err: TransferSearchError, limit: int = 600) -> str:
    text = str(err)
    assert "\n" not in text, text
    assert len(text) < limit, text
    return text


@pytest.mark.timeout(30)
def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(9))  # 9**9 strings from 0.7 KB
    assert path.stat().st_size < 1024
    started = time.perf_counter()
    with pytest.raises(TransferSearchError) as info:
        load_manifest(path)
    assert time.perf_counter() - started < 2
    text = one_clear_line(info.value)
    assert "aliases expand this document to more than 100000 values" in text
    assert "line " in text


def test_aliases_that_stay_small_are_fine_and_cycles_are_not(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        MANIFEST_HEAD + "spec:\n  source: &scene {task: class_scene}\n  target: {task: jigsaw}\n"
        "  evaluation: {<<: {budget: 30}, searches: 5}\n"
    )
    assert load_manifest(path).spec.evaluation.budget == 30
    path.write_text(MANIFEST_HEAD + "spec: &s {target: {task: jigsaw}, x: *s}\n")
    with pytest.raises(TransferSearchError, match="refers to the value that contains it"):
        load_manifest(path)


def test_deep_nesting_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(MANIFEST_HEAD + "spec: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(TransferSearchError) as info:
        load_manifest(path)
    assert "nested more than 64 levels deep" in one_clear_line(info.value)


def test_huge_and_binary_files_are_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(MANIFEST_HEAD + "spec: {target: {task: jigsaw}}\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(TransferSearchError, match="larger than 1 MiB"):
        load_manifest(big)
    with pytest.raises(TransferSearchError, match="larger than 1 MiB"):
        load_manifest("/dev/zero")  # would never end if read whole
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"kind: \xff\xfe\n")
    with pytest.raises(TransferSearchError, match="not UTF-8 text"):
        load_manifest(binary)


def test_yaml_syntax_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MANIFEST_HEAD + "spec:\n  target: {task: jigsaw\n  training: x\n")
    with pytest.raises(TransferSearchError) as info:
        load_manifest(path)
    assert re.search(r"not valid YAML \(line \d+, column \d+: ", one_clear_line(info.value))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"training": {"steps": "100"}}, 'spec.training.steps: .* got the string "100"'),
        ({"training": {"seeds": True}}, "spec.training.seeds: Input should be a valid integer"),
        ({"training": {"steps": 100.0}}, "spec.training.steps: .*got 100.0"),
        ({"evaluation": {"sourceTopK": "yes"}}, "spec.evaluation.sourceTopK: .*boolean"),
        ({"resources": {"cpu": 2}}, "spec.resources.cpu: .*got the number 2: quote it"),
        ({"alerts": {"driftThreshold": float("nan")}}, "spec.alerts.driftThreshold: .*finite"),
        ({"training": {"checkpoint_interval": 5}}, "write checkpointInterval"),
    ],
)
def test_types_are_as_strict_as_the_crd(spec: dict[str, object], message: str) -> None:
    with pytest.raises(TransferSearchError, match=message) as info:
        parse_manifest(with_spec(**spec))
    one_clear_line(info.value)


def test_null_is_unset_as_on_the_api_server() -> None:
    m = parse_manifest(with_spec(training=None, s3=None, evaluation={"budget": None}))
    assert (m.spec.training.steps, m.spec.evaluation.budget, m.spec.s3) == (5000, 50, None)
    with pytest.raises(TransferSearchError, match="spec.target: Field required"):
        parse_manifest(with_spec(target=None))


SECRET = "wJalrXUtnFEMI"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"s3": {"bucket": "bkt", "endpoint": f"http://AKIA:{SECRET}@minio:9000"}}, "s3.endpoint"),
        ({"s3": {"bucket": "bkt", "endpoint": "https://admin@minio"}}, "s3.endpoint"),
        ({"benchmark": {"data": f"s3://AKIA:{SECRET}@bench/tnb101"}}, "benchmark.data"),
        ({"source": {"agent": f"https://u:{SECRET}@host/agents/x"}}, "source.agent"),
        (
            {"source": {"agent": "auto", "candidates": [{"agent": f"http://u:{SECRET}@h/a"}]}},
            "source.candidates.0.agent",
        ),
    ],
)
def test_credentials_in_urls_are_refused_without_echoing_them(
    spec: dict[str, object], field: str
) -> None:
    with pytest.raises(TransferSearchError) as info:
        parse_manifest(with_spec(**spec))
    text = one_clear_line(info.value)
    assert f"spec.{field}: a URL must not hold a user name or password" in text
    assert SECRET not in text
    assert "credentialsSecret" in text


def test_urls_in_messages_are_redacted() -> None:
    url = f"http://AKIA:{SECRET}@minio:9000/bucket"
    assert str(TransferSearchError(f"cannot reach {url}")) == (
        "cannot reach http://***@minio:9000/bucket"
    )
    # a bad value quoted back (here: as a task name) loses its password too
    with pytest.raises(TransferSearchError) as info:
        parse_manifest(with_spec(target={"task": url}))
    assert SECRET not in str(info.value)
    assert "***@minio" in str(info.value)
    # what a pod reports goes into the search's status: redacted when parsed
    summary = TrialSummary(trial=0, seed=0, status="Failed", reason=f"S3 {url} refused")
    assert SECRET not in summary.to_message()
    assert (
        SECRET
        not in TrialSummary.model_validate_json(
            f'{{"trial": 0, "seed": 0, "status": "Failed", "resultsUri": "{url}"}}'
        ).model_dump_json()
    )


def test_validation_messages_are_one_line_and_short() -> None:
    with pytest.raises(TransferSearchError) as info:
        parse_manifest(with_spec(target={"task": "x" * 100_000}))
    assert "(100002 characters)" in one_clear_line(info.value)
    with pytest.raises(TransferSearchError) as info:
        parse_manifest(with_spec(training={f"k{i}{'y' * 500}": i for i in range(2000)}))
    text = one_clear_line(info.value, limit=1200)  # well inside a 4 KB termination message
    assert "(2000 problems)" in text
    assert "and 1995 more" in text


def test_job_config_is_read_with_the_same_limits(tmp_path: Path) -> None:
    cfg = JobConfig(search="s", spec=parse_manifest(BASE).spec, output="s3://b/p/runs/s")
    path = tmp_path / "job.json"
    text = cfg.to_json()
    path.write_text(text.replace('"output":', '"pad": "' + " " * (2 << 20) + '", "output":'))
    with pytest.raises(TransferSearchError, match="larger than 1 MiB"):
        load_job_config(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TransferSearchError, match="nested too deeply"):
        load_job_config(path)
    path.write_text(text.replace('"steps":5000', '"steps":NaN'))
    with pytest.raises(TransferSearchError, match="NaN is not a JSON number"):
        load_job_config(path)
    path.write_text(text.replace('"steps":5000', '"steps":"5000"'))
    with pytest.raises(TransferSearchError, match="spec.training.steps: .*without quotes"):
        load_job_config(path)
    path.write_text(text.replace("s3://b/p/runs/s", f"s3://AKIA:{SECRET}@b/p"))
    with pytest.raises(TransferSearchError, match="output: a URL must not hold") as info:
        load_job_config(path)
    assert SECRET not in str(info.value)
