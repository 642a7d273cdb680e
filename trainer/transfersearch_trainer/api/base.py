"""The base models of the manifest: strict, camelCase, unknown fields refused.

Apart from `spec` so that the parts of the manifest can live in small modules
(`source`, `spec`) and still share one configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class _Spec(_Model):
    """A part of the manifest: validated as the API server validates it with the CRD.

    Strict, because the schema is: "100", 100.0 and true are not integers there, so
    they cannot be here, or `transfersearch run` would run what `kubectl apply` refuses.
    Null is unset, because the API server prunes nulls before defaulting.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data
