"""The admission policy: how the operator's configuration reads, and what it lets through."""

from __future__ import annotations

from typing import Any

import pytest

from transfersearch_operator.config import DEFAULT_IMAGE
from transfersearch_operator.policy import (
    CREDENTIALS_LABEL,
    ENV_CREDENTIALS_LABEL,
    ENV_IMAGES,
    ENV_PRIORITY_CLASSES,
    ENV_S3_ENDPOINTS,
    ENV_TOLERATION_KEYS,
    AdmissionPolicy,
)
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import S3Settings, TransferSearchSpec


def spec(**fields: Any) -> TransferSearchSpec:
    return TransferSearchSpec.model_validate(
        {"target": {"task": "jigsaw"}, "source": {"task": "class_scene"}, **fields}
    )


def problems(policy: AdmissionPolicy, default_s3: S3Settings | None = None, **fields: Any) -> str:
    return " | ".join(policy.problems(spec(**fields), DEFAULT_IMAGE, default_s3))


def test_the_defaults_allow_only_what_the_admin_chose() -> None:
    policy = AdmissionPolicy.from_env({})
    assert policy == AdmissionPolicy()
    assert (
        policy.credentials_label == CREDENTIALS_LABEL == ("transfersearch.io/credentials", "true")
    )
    default_s3 = S3Settings(bucket="models", endpoint="http://minio.storage:9000")
    assert problems(policy, default_s3) == ""  # no image, no s3 section: the admin's defaults
    assert problems(policy, image=DEFAULT_IMAGE) == ""
    assert (
        problems(
            policy, default_s3, s3={"bucket": "other", "endpoint": "http://minio.storage:9000"}
        )
        == ""
    )
    assert problems(policy, s3={"bucket": "other"}) == ""  # AWS S3
    assert problems(policy, resources={"gpu": 1, "tolerations": [{"key": "nvidia.com/gpu"}]}) == ""
    assert "spec.image 'x/trainer:1'" in problems(policy, image="x/trainer:1")
    assert "(allowed: AWS S3 only: leave it unset)" in problems(
        policy, s3={"bucket": "other", "endpoint": "http://10.0.0.9:9000"}
    )
    assert "(allowed: none)" in problems(policy, resources={"priorityClassName": "high"})


def test_the_chart_sets_it_through_the_environment() -> None:
    policy = AdmissionPolicy.from_env(
        {
            ENV_IMAGES: "registry.example.com/ts/trainer:*, registry.example.com/ts/gpu@sha256:ab",
            ENV_S3_ENDPOINTS: "https://s3.eu-west-1.amazonaws.com,http://minio.storage:9000",
            ENV_CREDENTIALS_LABEL: "example.com/s3-for-searches=yes",
            ENV_PRIORITY_CLASSES: "research-high",
            ENV_TOLERATION_KEYS: "",
        }
    )
    assert policy.images == (
        "registry.example.com/ts/trainer:*",
        "registry.example.com/ts/gpu@sha256:ab",
    )
    assert policy.credentials_label == ("example.com/s3-for-searches", "yes")
    assert policy.toleration_keys == ()  # set but empty: no taint tolerated
    assert problems(policy, image="registry.example.com/ts/trainer:2.0") == ""
    assert problems(policy, image="registry.example.com/ts/gpu@sha256:ab") == ""
    assert problems(policy, image="registry.example.com/ts/trainer-evil:1") != ""
    assert problems(policy, image="registry.example.com/ts/gpu@sha256:cd") != ""
    # Endpoints compare as scheme, host and port: case and the default port do not matter.
    for same in ("HTTPS://S3.eu-west-1.amazonaws.com:443/", "http://minio.storage:9000/"):
        assert problems(policy, s3={"bucket": "bucket", "endpoint": same}) == ""
    for other in ("http://s3.eu-west-1.amazonaws.com", "http://minio.storage:9001"):
        assert problems(policy, s3={"bucket": "bucket", "endpoint": other}) != ""
    assert problems(policy, resources={"priorityClassName": "research-high"}) == ""
    message = problems(policy, resources={"tolerations": [{"key": "nvidia.com/gpu"}]})
    assert "spec.resources.tolerations[0] has key 'nvidia.com/gpu'" in message
    assert "policy.allowedTolerationKeys" in message


def test_star_allows_anything_the_field_can_say() -> None:
    policy = AdmissionPolicy.from_env(
        {
            ENV_IMAGES: "*",
            ENV_S3_ENDPOINTS: "*",
            ENV_PRIORITY_CLASSES: "*",
            ENV_TOLERATION_KEYS: "*",
        }
    )
    anything = {
        "image": "anything:1",
        "s3": {"bucket": "bucket", "endpoint": "http://anywhere:1"},
        "resources": {"priorityClassName": "x", "tolerations": [{"operator": "Exists"}]},
    }
    assert problems(policy, **anything) == ""
    assert problems(AdmissionPolicy(), **anything).count(" | ") == 3  # four fields refused


def test_every_refusal_names_the_field_and_the_fix() -> None:
    refused = AdmissionPolicy().problems(
        spec(
            image="evil:1",
            s3={"bucket": "bucket", "endpoint": "https://collector.example.net"},
            resources={"priorityClassName": "system-node-critical", "tolerations": [{}]},
        ),
        DEFAULT_IMAGE,
        None,
    )
    fields = ["spec.image", "spec.s3.endpoint", "spec.resources.priorityClassName"]
    assert [p.split(" ")[0] for p in refused] == [*fields, "spec.resources.tolerations[0]"]
    for problem in refused:
        assert "\n" not in problem
        assert "ask the cluster admin to add" in problem
    assert AdmissionPolicy().secret_problem("s3", {"transfersearch.io/credentials": "true"}) is None
    for labels in ({}, {"transfersearch.io/credentials": "yes"}):
        problem = AdmissionPolicy().secret_problem("s3", labels)
        assert problem is not None
        assert "kubectl label secret s3 transfersearch.io/credentials=true" in problem
    missing = AdmissionPolicy().secret_problem("s3", None)
    assert missing is not None
    assert "no such Secret" in missing


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (ENV_IMAGES, "registry.example.com/*/trainer"),
        (ENV_S3_ENDPOINTS, "minio.storage:9000"),
        (ENV_S3_ENDPOINTS, "ftp://minio.storage"),
        (ENV_CREDENTIALS_LABEL, "transfersearch.io/credentials"),
        (ENV_CREDENTIALS_LABEL, "bad key=true"),
    ],
)
def test_a_policy_mistake_stops_the_operator_with_the_variable_named(
    variable: str, value: str
) -> None:
    with pytest.raises(TransferSearchError) as err:
        AdmissionPolicy.from_env({variable: value})
    message = str(err.value)
    assert message.startswith(f"{variable}: {value!r}: ")
    assert "\n" not in message
