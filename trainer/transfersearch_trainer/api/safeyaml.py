"""Reading manifests and job configs as YAML, within limits that fit them.

A manifest is a few KB. Without limits, a 1 KB file of nested aliases expands into
gigabytes and a 50,000-level nesting overflows the parser's recursion, so the file
size, the nesting and the expanded size are capped before anything is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import yaml

from transfersearch_trainer.api.errors import TransferSearchError

MAX_INPUT_BYTES = 1 << 20
_MAX_YAML_DEPTH = 64
_MAX_YAML_VALUES = 100_000  # nodes of a document once its aliases are expanded


class YamlRefusedError(yaml.MarkedYAMLError):
    """YAML that parses but is not accepted in a manifest."""


class ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents that expand beyond what a manifest needs.

    Aliases are allowed (kubectl allows them), but what they expand to is counted:
    a kilobyte of nested anchors expands into gigabytes (a "billion laughs" file
    exhausted memory in 41 s). PyYAML shares the aliased nodes, so the count is
    cheap, and nothing is built or validated before it passes. Nesting is capped
    while composing, because the composer recurses once per level.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                raise YamlRefusedError(
                    None,
                    None,
                    f"nested more than {_MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it past _MAX_YAML_VALUES nodes or nest it
    past _MAX_YAML_DEPTH levels, or refer to themselves (the expansion never ends)."""
    seen: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, height); (-1, -1): open

    def refuse(problem: str, node: yaml.Node) -> NoReturn:
        raise YamlRefusedError(None, None, problem, node.start_mark)

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = seen.get(id(node))
        if known == (-1, -1):
            refuse("an alias refers to the value that contains it", node)
        if known is None:
            seen[id(node)] = (-1, -1)
            size, height = 1, 1
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            for child in children:
                child_size, child_height = measure(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > _MAX_YAML_VALUES:
                    refuse(
                        f"aliases expand this document to more than {_MAX_YAML_VALUES} values; "
                        "a manifest has a few hundred: write the values out",
                        node,
                    )
            known = seen[id(node)] = (size, height)
        if depth + known[1] > _MAX_YAML_DEPTH:
            refuse(f"aliases nest this document more than {_MAX_YAML_DEPTH} levels deep", node)
        return known

    measure(root, 0)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: where, then what."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return " ".join(str(err).split())
    mark = err.problem_mark or err.context_mark
    what = " ".join(x for x in (err.context, err.problem) if x)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}{what}"


def read_input(path: Path, what: str) -> str:
    """The text of a manifest or job config, refusing what is too big to be one.

    Read with a cap, because a file of unbounded size (or /dev/zero) would be read
    into memory whole before anything could say it is wrong.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_INPUT_BYTES + 1)
    except OSError as err:
        raise TransferSearchError(f"{path}: cannot read the {what} ({err.strerror})") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise TransferSearchError(
            f"{path}: the {what} is larger than {MAX_INPUT_BYTES >> 20} MiB; it should be a "
            "few KB (is it the right file?)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TransferSearchError(
            f"{path}: the {what} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None


def load_documents(text: str, where: Path) -> list[Any]:
    """Every non-empty YAML document in `text`; refusals and syntax errors as one line."""
    try:
        return [d for d in yaml.load_all(text, Loader=ManifestLoader) if d is not None]
    except YamlRefusedError as err:
        raise TransferSearchError(f"{where}: {_yaml_problem(err)}") from None
    except yaml.YAMLError as err:
        raise TransferSearchError(f"{where}: not valid YAML ({_yaml_problem(err)})") from None
