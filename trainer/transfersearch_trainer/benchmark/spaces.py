"""TransNAS-Bench-101's two search spaces: encodings, a canonical order, and neighbour tables.

Every loader maps architectures into one *canonical index* per space, so the same
architecture has the same index whichever file it came from, and ties are broken
by that index (lowest wins) everywhere.

Micro (cell) space, 4096 architectures: op tuple ``(a, b, c, d, e, f)`` over ops
0 none, 1 skip, 2 conv1x1, 3 conv3x3; arch string ``64-41414-a_bc_def``.
Canonical index = the tuple read as a base-4 number. Action ``k`` changes edge
``k // 3`` to the ``k % 3``-th of its three other ops (ascending): 18 actions,
all valid everywhere, and they reach 18 distinct neighbours.

Macro space, 3256 architectures: 4 to 6 ResNet modules with codes 1 normal,
2 channels x2, 3 resolution /2, 4 both; arch string ``64-<codes>-basic``. The
benchmark holds exactly the sequences with 1..4 downsampling modules (codes 3, 4)
and 1..3 channel-doubling modules (codes 2, 4). Canonical order: by length, then
lexicographic. The edit set (58 actions in a fixed order):

* ``sub(i, c)``: set module ``i`` to code ``c`` (6 positions x 4 codes; 24);
* ``ins(i, c)``: insert a module of code ``c`` before position ``i`` (7 x 4; 28);
* ``del(i)``: delete module ``i`` (6).

An action is valid when its result is another architecture of the space; when two
actions reach the same neighbour only the first in this order is valid, so valid
actions and neighbours correspond one to one. The relation is symmetric
(substitution undoes itself, insertion and deletion undo each other). Invalid
actions point back at the architecture itself (a wasted step) and are masked out.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import SpaceName, check_space

MICRO_EDGES = 6
MICRO_OPS = 4
MACRO_MAX_LEN = 6
MACRO_MIN_LEN = 4
MACRO_CODES = (1, 2, 3, 4)
TOKEN_LEN = 6  # both spaces: 6 token positions (macro pads absent modules with 0)

_MICRO_RE = re.compile(r"^64-41414-([0-3])_([0-3]{2})_([0-3]{3})$")
_MACRO_RE = re.compile(r"^64-([1-4]{4,6})-basic$")
_TUPLE_RE = re.compile(r"^\(?\s*\d(\s*,\s*\d)*\s*,?\s*\)?$")

Arch = str | tuple[int, ...] | list[int]


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """One search space: canonical codes, names and the action -> neighbour table."""

    name: SpaceName
    codes: npt.NDArray[np.int8]  # (n, TOKEN_LEN); macro: 0 = no module
    vocab: int  # distinct token values (micro 4 ops, macro 5 incl. padding)
    action_names: tuple[str, ...]
    table: npt.NDArray[np.int32]  # (n, A): neighbour reached by action, self if invalid
    valid: npt.NDArray[np.bool_]  # (n, A): action leads to a distinct new architecture
    _lookup: dict[tuple[int, ...], int]
    # What each action does, for agents that score moves by their effect: the token
    # position it edits (TOKEN_LEN = after the last module), its kind (0 change, 1 insert,
    # 2 delete) and the code it writes there (0 for deletions and invalid moves).
    action_position: npt.NDArray[np.int64]  # (A,)
    action_kind: npt.NDArray[np.int64]  # (A,)
    action_code: npt.NDArray[np.int8]  # (n, A)

    @property
    def size(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def op_tuple(self, index: int) -> tuple[int, ...]:
        row = self.codes[index]
        return tuple(int(x) for x in row if self.name == "micro" or x != 0)

    def arch_str(self, index: int) -> str:
        ops = self.op_tuple(index)
        if self.name == "micro":
            a, b, c, d, e, f = ops
            return f"64-41414-{a}_{b}{c}_{d}{e}{f}"
        return "64-" + "".join(str(x) for x in ops) + "-basic"

    def index(self, arch: Arch) -> int:
        """Canonical index of an arch string, an op tuple, or a digit string like ``232323``."""
        ops = parse_ops(arch, self.name)
        try:
            return self._lookup[ops]
        except KeyError:
            raise TransferSearchError(
                f"architecture {arch!r} is not in the {self.name} search space"
                + (
                    ""
                    if self.name == "micro"
                    else " (macro needs 1-4 modules with code 3/4 and 1-3 with code 2/4)"
                )
            ) from None

    def neighbours(self, index: int) -> npt.NDArray[np.int32]:
        """Distinct neighbours of an architecture, in action order."""
        found: npt.NDArray[np.int32] = self.table[index][self.valid[index]]
        return found


def parse_ops(arch: Arch, space: SpaceName) -> tuple[int, ...]:
    """Op codes of an architecture written in any of the benchmark's notations."""
    if isinstance(arch, tuple | list):
        return tuple(int(x) for x in arch)
    text = arch.strip()
    m = _MICRO_RE.match(text) if space == "micro" else _MACRO_RE.match(text)
    if m:
        return tuple(int(ch) for ch in "".join(m.groups()))
    if text.isdigit():
        return tuple(int(ch) for ch in text)
    if _TUPLE_RE.match(text):
        value = ast.literal_eval(text if text.startswith("(") else f"({text},)")
        return tuple(int(x) for x in value)
    example = "64-41414-3_13_113" if space == "micro" else "64-2243-basic"
    raise TransferSearchError(
        f"cannot read architecture {arch!r} for the {space} space; write it like {example!r}, "
        "as an op tuple '(3, 1, 3, 1, 1, 3)' or as digits '313113'"
    )


def macro_is_valid(ops: tuple[int, ...]) -> bool:
    if not MACRO_MIN_LEN <= len(ops) <= MACRO_MAX_LEN or any(c not in MACRO_CODES for c in ops):
        return False
    down = sum(c in (3, 4) for c in ops)
    wide = sum(c in (2, 4) for c in ops)
    return 1 <= down <= 4 and 1 <= wide <= 3


@cache
def get_space(name: str) -> SearchSpace:
    """The search space called `name` (built once per process, about 0.2 s for macro)."""
    space = check_space(name)
    return _build_micro() if space == "micro" else _build_macro()


def _build_micro() -> SearchSpace:
    n = MICRO_OPS**MICRO_EDGES
    idx = np.arange(n)
    codes = np.stack(
        [(idx // MICRO_OPS ** (MICRO_EDGES - 1 - e)) % MICRO_OPS for e in range(MICRO_EDGES)],
        axis=1,
    ).astype(np.int8)
    names: list[str] = []
    table = np.empty((n, MICRO_EDGES * (MICRO_OPS - 1)), dtype=np.int32)
    for e in range(MICRO_EDGES):
        weight = MICRO_OPS ** (MICRO_EDGES - 1 - e)
        cur = codes[:, e].astype(np.int64)
        for j in range(MICRO_OPS - 1):
            new = j + (j >= cur)  # j-th of the three other ops, ascending
            table[:, e * 3 + j] = idx + (new - cur) * weight
            names.append(f"edge{e}:other{j}")
    lookup = {tuple(int(x) for x in row): i for i, row in enumerate(codes)}
    valid = np.ones(table.shape, dtype=bool)
    position = np.repeat(np.arange(MICRO_EDGES), MICRO_OPS - 1)
    written = codes[table, position[None, :]]
    return SearchSpace(
        "micro",
        codes,
        MICRO_OPS,
        tuple(names),
        table,
        valid,
        lookup,
        position,
        np.zeros_like(position),
        written,
    )


def _macro_edits() -> list[tuple[str, int, int]]:
    edits = [("sub", i, c) for i in range(MACRO_MAX_LEN) for c in MACRO_CODES]
    edits += [("ins", i, c) for i in range(MACRO_MAX_LEN + 1) for c in MACRO_CODES]
    edits += [("del", i, 0) for i in range(MACRO_MAX_LEN)]
    return edits


def _apply_edit(ops: tuple[int, ...], kind: str, i: int, c: int) -> tuple[int, ...] | None:
    if kind == "sub":
        return (*ops[:i], c, *ops[i + 1 :]) if i < len(ops) else None
    if kind == "ins":
        return (*ops[:i], c, *ops[i:]) if i <= len(ops) else None
    return ops[:i] + ops[i + 1 :] if i < len(ops) else None


def _build_macro() -> SearchSpace:
    archs = [
        ops
        for length in range(MACRO_MIN_LEN, MACRO_MAX_LEN + 1)
        for ops in itertools.product(MACRO_CODES, repeat=length)
        if macro_is_valid(ops)
    ]
    lookup = {ops: i for i, ops in enumerate(archs)}
    n = len(archs)
    codes = np.zeros((n, TOKEN_LEN), dtype=np.int8)
    for i, ops in enumerate(archs):
        codes[i, : len(ops)] = ops
    edits = _macro_edits()
    names = tuple(f"{k}{i}" + (f":{c}" if k != "del" else "") for k, i, c in edits)
    table = np.repeat(np.arange(n, dtype=np.int32)[:, None], len(edits), axis=1)
    valid = np.zeros(table.shape, dtype=bool)
    for a, ops in enumerate(archs):
        seen = {a}
        for k, (kind, i, c) in enumerate(edits):
            new = _apply_edit(ops, kind, i, c)
            target = lookup.get(new) if new is not None else None
            if target is not None and target not in seen:
                seen.add(target)
                table[a, k] = target
                valid[a, k] = True
    kinds = {"sub": 0, "ins": 1, "del": 2}
    position = np.array([i for _, i, _ in edits], dtype=np.int64)
    kind_of = np.array([kinds[k] for k, _, _ in edits], dtype=np.int64)
    written = np.where(valid, np.array([c for _, _, c in edits], dtype=np.int8)[None, :], 0)
    return SearchSpace(
        "macro",
        codes,
        len(MACRO_CODES) + 1,
        names,
        table,
        valid,
        lookup,
        position,
        kind_of,
        written.astype(np.int8),
    )
