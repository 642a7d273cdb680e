"""The benchmark's networks in torch: shapes on tiny inputs, `none` edges, parameter counts."""

from __future__ import annotations

import pytest
import torch

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.evaluation.networks import MicroCell, build_network, count_parameters

SHAPES = [(2, 3, 16, 16), (2, 1, 8, 8)]


# --- an independent hand count (TransNAS-Bench-101's layers, one formula per layer) ---


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out  # bias-free


def bn(c: int) -> int:
    return 2 * c  # affine weight and bias


def stem(c_in: int, w: int) -> int:
    return conv(3, c_in, w // 2) + bn(w // 2) + conv(3, w // 2, w) + bn(w)


def head(c: int, classes: int) -> int:
    return c * classes + classes


def edge(op: int, c_in: int, c_out: int, stride: int) -> int:
    if op == 0:
        return 0
    if op == 1:  # identity, or two half-width 1x1 convs and one BN
        return 0 if stride == 1 and c_in == c_out else 2 * conv(1, c_in, c_out // 2) + bn(c_out)
    return conv(1 if op == 2 else 3, c_in, c_out) + bn(c_out)


def micro_cell(ops: tuple[int, ...], c_in: int, c_out: int, stride: int) -> int:
    sources = [0, 0, 1, 0, 1, 2]  # a: n0->n1, b: n0->n2, c: n1->n2, d/e/f: n0/n1/n2->n3
    return sum(
        edge(op, c_in if s == 0 else c_out, c_out, stride if s == 0 else 1)
        for op, s in zip(ops, sources, strict=True)
    )


def basic_block(c_in: int, c_out: int, stride: int) -> int:
    short = 0 if stride == 1 and c_in == c_out else conv(1, c_in, c_out) + bn(c_out)
    return conv(3, c_in, c_out) + bn(c_out) + conv(3, c_out, c_out) + bn(c_out) + short


def hand_count(space: str, ops: tuple[int, ...], c_in: int, classes: int, w: int) -> int:
    codes = (4, 1, 4, 1, 4) if space == "micro" else ops
    total, c = stem(c_in, w), w
    for code in codes:
        out = 2 * c if code in (2, 4) else c
        stride = 2 if code in (3, 4) else 1
        if space == "micro":
            total += micro_cell(ops, c, out, stride) + micro_cell(ops, out, out, 1)
        else:
            total += basic_block(c, out, stride) + basic_block(out, out, 1)
        c = out
    return total + head(c, classes)


def test_hand_count_itself_on_two_written_out_cases() -> None:
    # all-none micro, width 8, 1 channel, 10 classes: stem 36+8+288+16, head 64*10+10
    assert hand_count("micro", (0,) * 6, 1, 10, 8) == 348 + 650
    # macro 1-2-3-4, width 8, 3 channels, 10 classes; the stem is 108+8+288+16 = 420
    m1 = 2 * (576 + 16 + 576 + 16)  # 8 -> 8, both blocks plain
    m2 = (1152 + 32 + 2304 + 32 + 128 + 32) + (2304 + 32 + 2304 + 32)  # 8 -> 16
    m3 = (2304 + 32 + 2304 + 32 + 256 + 32) + (2304 + 32 + 2304 + 32)  # 16, stride 2
    m4 = (4608 + 64 + 9216 + 64 + 512 + 64) + (9216 + 64 + 9216 + 64)  # 16 -> 32, stride 2
    assert hand_count("macro", (1, 2, 3, 4), 3, 10, 8) == 420 + m1 + m2 + m3 + m4 + 330


@pytest.mark.parametrize(
    ("space", "arch", "channels", "classes", "width"),
    [
        ("micro", "64-41414-3_13_113", 3, 10, 8),
        ("micro", "64-41414-0_00_000", 1, 10, 8),
        ("micro", "64-41414-1_11_111", 3, 75, 16),
        ("micro", "64-41414-2_32_102", 1, 3, 8),
        ("micro", "64-41414-3_33_333", 3, 75, 64),
        ("macro", "64-1234-basic", 3, 10, 8),
        ("macro", "64-2243-basic", 1, 3, 16),
        ("macro", "64-412341-basic", 3, 75, 64),
    ],
)
def test_parameter_count_matches_the_hand_count(
    space: str, arch: str, channels: int, classes: int, width: int
) -> None:
    ops = get_space(space).op_tuple(get_space(space).index(arch))
    net = build_network(space, ops, channels, classes, width)
    assert count_parameters(net) == hand_count(space, ops, channels, classes, width)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("edge_index", range(6))
def test_every_micro_op_on_every_edge_gives_logits(shape: tuple[int, ...], edge_index: int) -> None:
    for op in range(4):
        ops = [3, 1, 2, 3, 1, 2]
        ops[edge_index] = op
        net = build_network("micro", tuple(ops), shape[1], 7, width=8)
        out = net(torch.rand(*shape))
        assert out.shape == (shape[0], 7)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "codes", [(1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3), (4, 4, 4, 4), (1, 2, 3, 4, 3, 1)]
)
def test_every_macro_code_gives_logits(shape: tuple[int, ...], codes: tuple[int, ...]) -> None:
    net = build_network("macro", codes, shape[1], 5, width=8)
    net.train()  # BatchNorm in training mode on 1x1 maps needs a batch of 2 (we have 2)
    out = net(torch.rand(*shape))
    assert out.shape == (shape[0], 5)
    assert torch.isfinite(out).all()


def test_tiny_inputs_shrink_to_one_pixel_and_stay_there() -> None:
    net = build_network("micro", (3, 1, 3, 1, 1, 3), 1, 10, width=8)
    sizes = []
    x = net.stem(torch.rand(2, 1, 8, 8))
    sizes.append(tuple(x.shape[1:]))
    for module in net.body:
        x = module(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(8, 2, 2), (16, 1, 1), (16, 1, 1), (32, 1, 1), (32, 1, 1), (64, 1, 1)]


def test_an_all_none_cell_outputs_zeros_and_has_no_parameters() -> None:
    cell = MicroCell((0,) * 6, 8, 16, 2)
    assert count_parameters(cell) == 0
    out = cell(torch.rand(2, 8, 5, 5))
    assert out.shape == (2, 16, 3, 3)
    assert torch.equal(out, torch.zeros_like(out))
    net = build_network("micro", (0,) * 6, 3, 4, width=8)
    net.eval()
    assert torch.equal(net.embed(torch.rand(3, 3, 16, 16)), torch.zeros(3, 64))


def test_a_none_edge_leaves_no_gradient_path() -> None:
    # node1 = conv1x1(n0) feeds only none edges (c, e): it is dead; node3 = conv3x3(n0)
    net = build_network("micro", (2, 0, 0, 3, 0, 0), 3, 4, width=8)
    net(torch.rand(4, 3, 16, 16)).sum().backward()
    module = net.body[0]
    assert isinstance(module, torch.nn.Sequential)
    cell = module[0]
    assert isinstance(cell, MicroCell)
    assert set(cell.edges.keys()) == {"e0", "e3"}
    assert all(p.grad is None for p in cell.edges["e0"].parameters())
    assert all(p.grad is not None for p in cell.edges["e3"].parameters())


def test_the_same_generator_seed_gives_the_same_weights() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        net = build_network("macro", (1, 2, 3, 4), 1, 3, width=8, generator=g)
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_every_space_architecture_string_builds() -> None:
    for name in ("micro", "macro"):
        space = get_space(name)
        for i in range(0, space.size, max(1, space.size // 25)):
            net = build_network(name, space.op_tuple(i), 1, 3, width=4)
            assert net(torch.rand(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize(
    ("space", "ops", "width"),
    [
        ("micro", (0, 1, 2), 8),
        ("micro", (4,) * 6, 8),
        ("macro", (5, 1, 1, 1), 8),
        ("macro", (1, 2, 3, 4), 7),
        ("nope", (1,), 8),
        ("macro", (), 8),
    ],
)
def test_bad_requests_say_what_is_wrong(space: str, ops: tuple[int, ...], width: int) -> None:
    with pytest.raises(TransferSearchError):
        build_network(space, ops, 1, 3, width)
