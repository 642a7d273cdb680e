"""The admission policy: what a TransferSearch may ask the operator to run.

The operator creates trial Jobs with its own service account, so without a
policy anyone allowed to create a TransferSearch could run any image, send any
AWS Secret of the namespace to any S3 endpoint, preempt other work with any
priority class and tolerate any taint, whatever they may do themselves. The
policy is the operator's configuration (the chart's `policy` values, as
environment variables), never the user's manifest; a search outside it fails
before any Job exists, with each field at fault named and what to do about it.

What the cluster admin chose (the default trainer image, the default S3 store
and its Secret) is always allowed: the policy limits what a search adds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.spec import S3Settings, TransferSearchSpec

ENV_IMAGES = "TRANSFERSEARCH_ALLOWED_IMAGES"
ENV_S3_ENDPOINTS = "TRANSFERSEARCH_ALLOWED_S3_ENDPOINTS"
ENV_CREDENTIALS_LABEL = "TRANSFERSEARCH_CREDENTIALS_LABEL"
ENV_PRIORITY_CLASSES = "TRANSFERSEARCH_ALLOWED_PRIORITY_CLASSES"
ENV_TOLERATION_KEYS = "TRANSFERSEARCH_ALLOWED_TOLERATION_KEYS"
CREDENTIALS_LABEL = ("transfersearch.io/credentials", "true")
GPU_TAINT = "nvidia.com/gpu"  # what GPU node pools are tainted with; the operator tolerates it
ANY = "*"
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?{_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_NAME})?$")


@dataclass(frozen=True)
class AdmissionPolicy:
    images: tuple[str, ...] = ()
    """Images spec.image may name besides the default; an entry ending in * is a prefix."""
    s3_endpoints: tuple[str, ...] = ()
    """Endpoints spec.s3.endpoint may name besides the default store's (unset: AWS S3)."""
    credentials_label: tuple[str, str] = CREDENTIALS_LABEL
    """The label (key, value) a Secret must carry to be named in spec.s3.credentialsSecret."""
    priority_classes: tuple[str, ...] = ()
    """PriorityClasses spec.resources.priorityClassName may name; * any."""
    toleration_keys: tuple[str, ...] = (GPU_TAINT,)
    """Taint keys spec.resources.tolerations may tolerate; * any, also a key-less toleration."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdmissionPolicy:
        """The policy the chart sets; unset variables keep the safe defaults above.

        Lists are comma-separated. A mistake is a TransferSearchError naming the
        variable, so the operator refuses to start rather than run with a policy
        other than the one intended.
        """
        images = _items(env, ENV_IMAGES, ())
        for image in images:
            if ANY in image[:-1] or any(ch.isspace() for ch in image):
                raise TransferSearchError(
                    f"{ENV_IMAGES}: {image!r}: write an image reference, or a prefix ending "
                    "in * (registry.example.com/ts/trainer:*); * only at the end"
                )
        endpoints = tuple(_endpoint(e, ENV_S3_ENDPOINTS) for e in _items(env, ENV_S3_ENDPOINTS, ()))
        label = env.get(ENV_CREDENTIALS_LABEL, "=".join(CREDENTIALS_LABEL)).strip()
        key, sep, value = label.partition("=")
        if not sep or not _LABEL_KEY.match(key) or len(key) > 316 or not _LABEL_VALUE.match(value):
            raise TransferSearchError(
                f"{ENV_CREDENTIALS_LABEL}: {label!r}: write the opt-in label of credential "
                "Secrets as key=value, e.g. transfersearch.io/credentials=true"
            )
        return cls(
            images=images,
            s3_endpoints=endpoints,
            credentials_label=(key, value),
            priority_classes=_items(env, ENV_PRIORITY_CLASSES, ()),
            toleration_keys=_items(env, ENV_TOLERATION_KEYS, (GPU_TAINT,)),
        )

    def problems(
        self, spec: TransferSearchSpec, default_image: str, default_s3: S3Settings | None
    ) -> list[str]:
        """What in the spec the policy does not allow, one sentence per field, with the fix.

        Only what the spec itself asks for is checked: a search without `image` or
        `s3` gets the admin's defaults, which need no permission.
        """
        out = []
        if spec.image and spec.image != default_image and not self.image_allowed(spec.image):
            out.append(
                f"spec.image {spec.image!r} is not an allowed trainer image "
                f"(allowed: {_listed((default_image, *self.images))}): leave spec.image unset "
                "for the default, or ask the cluster admin to add it to policy.allowedImages"
            )
        if spec.s3 is not None and spec.s3.endpoint:
            allowed = {_normal(e) for e in self.s3_endpoints}
            if default_s3 is not None and default_s3.endpoint:
                allowed.add(_normal(default_s3.endpoint))
            if ANY not in self.s3_endpoints and _normal(spec.s3.endpoint) not in allowed:
                out.append(
                    f"spec.s3.endpoint {spec.s3.endpoint!r} is not an allowed S3 endpoint "
                    f"(allowed: {_listed(sorted(allowed), 'AWS S3 only: leave it unset')}): use "
                    "one of those, or ask the cluster admin to add it to policy.allowedS3Endpoints"
                )
        priority = spec.resources.priority_class_name
        if priority and ANY not in self.priority_classes and priority not in self.priority_classes:
            out.append(
                f"spec.resources.priorityClassName {priority!r} is not allowed "
                f"(allowed: {_listed(self.priority_classes)}): remove it, or ask the cluster "
                "admin to add it to policy.allowedPriorityClasses"
            )
        if ANY not in self.toleration_keys:
            for i, toleration in enumerate(spec.resources.tolerations):
                key = toleration.key
                if key is None or key not in self.toleration_keys:
                    what = f"key {key!r}" if key else "no key (it tolerates every taint)"
                    out.append(
                        f"spec.resources.tolerations[{i}] has {what}, not an allowed taint "
                        f"(allowed: {_listed(self.toleration_keys)}): remove it, or ask the "
                        "cluster admin to add the key to policy.allowedTolerationKeys"
                    )
        return out

    def image_allowed(self, image: str) -> bool:
        return any(
            image.startswith(entry[:-1]) if entry.endswith(ANY) else image == entry
            for entry in self.images
        )

    def secret_problem(self, name: str, labels: Mapping[str, str] | None) -> str | None:
        """Why the Secret (its labels; None if it does not exist) cannot be used, if it cannot."""
        key, value = self.credentials_label
        if labels is not None and labels.get(key) == value:
            return None
        fix = f"kubectl label secret {name} {key}={value}"
        if labels is None:
            return (
                f"spec.s3.credentialsSecret {name!r}: no such Secret in the search's namespace; "
                f"create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and opt it in ({fix})"
            )
        return (
            f"spec.s3.credentialsSecret {name!r}: the Secret does not carry the label "
            f"{key}={value} that opts it in for searches: if it is meant for them, {fix}"
        )


def _items(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if name not in env:
        return default
    return tuple(item.strip() for item in env[name].split(",") if item.strip())


def _endpoint(value: str, variable: str) -> str:
    if value == ANY:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransferSearchError(
            f"{variable}: {value!r}: write endpoint URLs, e.g. http://minio.storage:9000"
        )
    return value


def _normal(endpoint: str) -> str:
    """scheme://host:port, the port written out, so equal endpoints compare equal."""
    parts = urlsplit(endpoint.strip())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return endpoint.strip()
    host = (parts.hostname or "").lower()
    return f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"


def _listed(items: tuple[str, ...] | list[str], empty: str = "none") -> str:
    return ", ".join(items) if items else empty
