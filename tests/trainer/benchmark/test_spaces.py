from __future__ import annotations

import numpy as np
import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space, macro_is_valid


def test_micro_encoding_round_trip() -> None:
    space = get_space("micro")
    assert space.size == 4096
    for i in range(space.size):
        assert space.index(space.arch_str(i)) == i
        assert space.index(space.op_tuple(i)) == i
    assert space.arch_str(space.index("(3, 1, 3, 1, 1, 3)")) == "64-41414-3_13_113"
    assert space.index("313113") == space.index("64-41414-3_13_113")


def test_micro_neighbours_change_one_edge() -> None:
    space = get_space("micro")
    for i in range(space.size):
        nbrs = space.neighbours(i)
        assert len(nbrs) == 18
        assert len(set(nbrs.tolist())) == 18
        diffs = (space.codes[nbrs] != space.codes[i]).sum(axis=1)
        assert (diffs == 1).all()


@pytest.mark.parametrize("name", ["micro", "macro"])
def test_neighbours_are_symmetric(name: str) -> None:
    space = get_space(name)
    pairs = {(a, int(b)) for a in range(space.size) for b in space.neighbours(a)}
    assert all((b, a) in pairs for a, b in pairs)
    assert all(a != b for a, b in pairs)


def test_macro_space_matches_benchmark_constraints() -> None:
    space = get_space("macro")
    assert space.size == 3256
    lengths = (space.codes != 0).sum(axis=1)
    assert sorted(np.unique(lengths).tolist()) == [4, 5, 6]
    for i in range(space.size):
        assert macro_is_valid(space.op_tuple(i))
        assert space.index(space.arch_str(i)) == i
    assert space.arch_str(space.index("64-2243-basic")) == "64-2243-basic"


def _one_edit(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = sorted((a, b), key=len)
    return len(long_) - len(short) == 1 and any(
        long_[:i] + long_[i + 1 :] == short for i in range(len(long_))
    )


def test_macro_neighbours_are_single_edits_and_complete() -> None:
    space = get_space("macro")
    counts = space.valid.sum(axis=1)
    assert counts.min() >= 1
    for i in range(0, space.size, 7):
        ops = space.op_tuple(i)
        got = {space.op_tuple(int(j)) for j in space.neighbours(i)}
        assert all(_one_edit(ops, n) for n in got)
        # every valid single edit is reachable: brute force over the whole space
        expected = {
            space.op_tuple(j) for j in range(space.size) if _one_edit(ops, space.op_tuple(j))
        }
        assert got == expected
    # invalid actions stay in place (a wasted move), valid ones move
    assert (space.table[~space.valid] == np.nonzero(~space.valid)[0]).all()


@pytest.mark.parametrize(
    ("space", "arch"),
    [
        ("micro", "64-41414-4_13_113"),
        ("micro", "bogus"),
        ("macro", "64-1111-basic"),
        ("macro", "64-41414-3_13_113"),
    ],
)
def test_bad_architectures_are_refused_clearly(space: str, arch: str) -> None:
    with pytest.raises(TransferSearchError, match="architecture|space"):
        get_space(space).index(arch)


def test_unknown_space() -> None:
    with pytest.raises(TransferSearchError, match="micro or macro"):
        get_space("nano")
