"""Validation problems as one short line: the fields at fault, what is wrong, what was given.

One line, because it ends up as an `error:` line, a log line, a termination message
and a status condition; the values quoted back are cut short and URLs in them lose
their credentials, because all of those are widely read.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from transfersearch_trainer.api.errors import redact

_MAX_ECHO = 80  # characters of a bad value quoted back in an error message
_MAX_PROBLEMS = 5  # problems listed in one message; the rest are counted


def echo(value: Any) -> str:
    """A bad value as the user wrote it (JSON spelling: true, "100", 100.0), cut short.

    Cut, because a value can be megabytes (an expanded YAML alias, a pasted file) and
    the message goes to a terminal, a log line and a 4 KB termination message.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return cut(text)


def cut(text: str) -> str:
    text = redact(text)  # first: a cut could leave a password without its "@"
    if len(text) > _MAX_ECHO:
        text = f"{text[: _MAX_ECHO - 3]}... ({len(text)} characters)"
    return text


# Pydantic error types whose message does not say what was given.
_ECHOED_TYPES = (
    "int_type",
    "float_type",
    "int_from_float",
    "literal_error",
    "enum",
    "string_type",
    "bool_type",
    "dict_type",
    "list_type",
    "model_type",
)


def _problem(e: Any, fields: set[str]) -> str:
    path = ".".join(cut(str(p)) for p in e["loc"] if not str(p).startswith("function-after"))
    msg = str(e["msg"]).removeprefix("Value error, ")
    given = e.get("input")
    if e["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; fields are camelCase)"
        camel = to_camel(str(e["loc"][-1]))
        if camel != e["loc"][-1] and camel in fields:
            msg = f"unknown field; write {camel} (fields are camelCase)"
    elif e["type"] in ("int_type", "float_type") and isinstance(given, str):
        msg = f"{msg}; got the string {echo(given)}: write the number without quotes"
    elif (
        e["type"] == "string_type"
        and isinstance(given, int | float)
        and not isinstance(given, bool)
    ):
        msg = f"{msg}; got the number {echo(given)}: quote it"
    elif e["type"] in _ECHOED_TYPES:
        msg = f"{msg}; got {echo(given)}"
    return f"{path or '(top level)'}: {msg}"


def describe(err: ValidationError, where: str, kind: str, fields: set[str]) -> str:
    """`where: invalid KIND (N problems): field: what; field: what; and M more`."""
    errors = err.errors()
    problems = [_problem(e, fields) for e in errors[:_MAX_PROBLEMS]]
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_PROBLEMS} more")
    head = f"{where}: invalid {kind}"
    if len(errors) > 1:
        head += f" ({len(errors)} problems)"
    return redact(f"{head}: " + "; ".join(problems))
