"""The networks TransNAS-Bench-101's architecture strings describe, in torch, for classification.

Written from the benchmark's own definitions (yawen-d/TransNASBench, read, not copied):
``lib/models/net_infer/net_macro.py`` (``MacroNet``: stem, modules, head),
``lib/models/net_infer/cell_micro.py`` (``MicroCell``, ``ResNetBasicblock``),
``lib/models/net_ops/cell_ops.py`` (the ops ``OPS``, ``ReLUConvBN``, ``Zero``,
``FactorizedReduce``) and ``lib/models/task_models/decoder.py`` (``FFDecoder``, the
classification head); NASLib's ``naslib/search_spaces/transbench101/graph.py`` agrees on
the micro skeleton (5 modules of 2 cells, reduction in modules 1, 3 and 5).

Both spaces share one skeleton, ``<width>-<module codes>-<cell>``:

* **stem**: conv3x3 stride 2 (in -> width/2), BN, then ReLU-conv3x3 stride 2-BN
  (width/2 -> width): the input is downsampled 4x before the first module.
* **modules**, one per code, each of **2 blocks**; code 1 keeps shape, 2 doubles the
  channels, 3 halves the resolution (stride 2), 4 does both. Only a module's first block
  changes shape (stride, channels); the second maps C_out -> C_out at stride 1.
  Micro networks use the fixed codes ``41414`` (so 10 cells, channels width -> 8*width,
  resolution /32 overall); macro networks take their codes from the architecture and use
  the ResNet basic block as the block.
* **head** (``FFDecoder``): global average pool, flatten, one linear layer.
* **init**: Kaiming-normal convs (fan_out, ReLU), BN weight 1 and bias 0; the linear
  layer keeps torch's default, as in the benchmark.

Micro cell (``MicroCell``): node0 = the cell input; node1 = a(n0); node2 = b(n0) + c(n1);
node3 = d(n0) + e(n1) + f(n2); the cell outputs node3 (no residual around the cell). Edges
out of node0 carry the block's stride and C_in -> C_out; the others are C_out -> C_out,
stride 1. Ops: 0 none (zeros), 1 skip (identity, or ``FactorizedReduce`` when the edge
changes shape), 2 ReLU-conv1x1-BN, 3 ReLU-conv3x3-BN. A ``none`` edge builds no module and
is left out of its node's sum (the benchmark multiplies by zero: same values, but here it
leaves no autograd path); a node whose edges are all ``none`` is a zero tensor of the
node's shape, so an all-none cell outputs zeros and the network still runs.

Macro block (``ResNetBasicblock``): ReLU-conv3x3(stride)-BN, ReLU-conv3x3-BN, plus a
shortcut that is the identity, or conv1x1(stride)-BN when the shape changes; no ReLU after
the sum.

Scaling allowed here (the benchmark is ``width=64`` on 3x256x256 inputs): ``width`` is the
base channel count (stem output; must be even, as the stem halves it and
``FactorizedReduce`` splits it), ``in_channels`` any (the benchmark's stem takes 3), and
any input resolution. Every stride-2 layer maps H to ceil(H / 2) (3x3 convs pad 1, 1x1
convs and zeros agree), so small inputs shrink to 1x1 and then *stay* 1x1: 8x8 digits are
2x2 after the stem and 1x1 from the first reduction on; nothing crashes and the adaptive
pool takes whatever is left. (BatchNorm in training needs more than one value per
channel, so a training batch of one 1x1 image is avoided by the training loop.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from transfersearch_trainer.api.errors import TransferSearchError

MICRO_SKELETON = (4, 1, 4, 1, 4)  # the "41414" of every micro architecture string
BLOCKS_PER_MODULE = 2
NONE, SKIP, CONV1X1, CONV3X3 = 0, 1, 2, 3
# The cell's DAG: for each of nodes 1..3 the source nodes of its edges, in op-tuple order.
CELL_SOURCES: tuple[tuple[int, ...], ...] = ((0,), (0, 1), (0, 1, 2))


class ReLUConvBN(nn.Sequential):
    """ReLU, a bias-free conv, BatchNorm: the benchmark's ``ReLUConvBN``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class FactorizedReduce(nn.Module):
    """The skip edge that changes shape: two 1x1 convs, one shifted by a pixel, concatenated.

    ReLU first, then ``conv(x)`` and ``conv(x shifted up-left by one, zero padded)``, each
    giving half the output channels, then BN; H -> ceil(H / stride) like every other op."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out % 2:
            raise TransferSearchError(f"a skip edge needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=stride, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=stride, bias=False)
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        out: torch.Tensor = self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))
        return out


def make_edge(op: int, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """One cell edge's module; ``None`` for the none op (it contributes nothing)."""
    if op == NONE:
        return None
    if op == SKIP:
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return FactorizedReduce(c_in, c_out, stride)
    if op == CONV1X1:
        return ReLUConvBN(c_in, c_out, 1, stride)
    if op == CONV3X3:
        return ReLUConvBN(c_in, c_out, 3, stride)
    raise TransferSearchError(f"unknown micro op {op} (0 none, 1 skip, 2 conv1x1, 3 conv3x3)")


def _reduced(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


class MicroCell(nn.Module):
    """The 4-node cell of ``64-41414-a_bc_def`` (see the module docstring)."""

    def __init__(self, ops: Sequence[int], c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if len(ops) != 6:
            raise TransferSearchError(f"a micro cell has 6 edges, got ops {tuple(ops)}")
        self.c_out = c_out
        self.stride = stride
        # Module names e0..e5 follow the op tuple; none edges have no module.
        self.edges = nn.ModuleDict()
        self.wiring: list[list[tuple[int, str]]] = []  # per node 1..3: (source, edge name)
        k = 0
        for sources in CELL_SOURCES:
            inputs: list[tuple[int, str]] = []
            for src in sources:
                edge = make_edge(
                    ops[k], c_in if src == 0 else c_out, c_out, stride if src == 0 else 1
                )
                if edge is not None:
                    self.edges[f"e{k}"] = edge
                    inputs.append((src, f"e{k}"))
                k += 1
            self.wiring.append(inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        shape = (n, self.c_out, _reduced(h, self.stride), _reduced(w, self.stride))
        nodes = [x]
        for inputs in self.wiring:
            terms = [self.edges[name](nodes[src]) for src, name in inputs]
            node = x.new_zeros(shape) if not terms else terms[0]
            for term in terms[1:]:
                node = node + term
            nodes.append(node)
        return nodes[-1]


class BasicBlock(nn.Module):
    """The macro space's block: the benchmark's ``ResNetBasicblock`` (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.shortcut(x) + self.conv_b(self.conv_a(x))
        return out


class Network(nn.Module):
    """Stem, one module of two blocks per code, global average pool and a linear head."""

    def __init__(
        self,
        codes: Sequence[int],
        cell_ops: Sequence[int] | None,
        in_channels: int,
        classes: int,
        width: int,
    ) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise TransferSearchError(f"width must be an even number >= 2, got {width}")
        if classes < 1 or in_channels < 1:
            raise TransferSearchError(f"need classes >= 1 and in_channels >= 1, got {classes}")
        half = width // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(half),
            ReLUConvBN(half, width, 3, 2),
        )
        modules: list[nn.Module] = []
        channels = width
        for code in codes:
            if code not in (1, 2, 3, 4):
                raise TransferSearchError(f"unknown module code {code} (1-4)")
            c_out = channels * 2 if code in (2, 4) else channels
            stride = 2 if code in (3, 4) else 1
            blocks = [
                _block(cell_ops, channels if b == 0 else c_out, c_out, stride if b == 0 else 1)
                for b in range(BLOCKS_PER_MODULE)
            ]
            modules.append(nn.Sequential(*blocks))
            channels = c_out
        self.body = nn.Sequential(*modules)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, classes)
        self.features = channels
        self.initialize(None)

    def initialize(self, generator: torch.Generator | None) -> None:
        """The benchmark's init, drawn from `generator` (None: torch's global RNG).

        A private generator makes a network's weights depend on its seed alone, so several
        trainings in threads (``--parallel``) do not race for the global RNG. The linear
        head is drawn like torch's default ``nn.Linear`` init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(
                    m.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the head sees, ``(N, features)``."""
        pooled: torch.Tensor = self.pool(self.body(self.stem(x)))
        return pooled.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.embed(x))
        return logits


def _block(cell_ops: Sequence[int] | None, c_in: int, c_out: int, stride: int) -> nn.Module:
    return (
        BasicBlock(c_in, c_out, stride)
        if cell_ops is None
        else MicroCell(cell_ops, c_in, c_out, stride)
    )


def build_network(
    space: str,
    ops: tuple[int, ...],
    in_channels: int,
    classes: int,
    width: int = 64,
    generator: torch.Generator | None = None,
) -> Network:
    """The classifier an architecture of `space` describes (``ops``: the space's op tuple).

    Micro: ``ops`` is the cell ``(a, b, c, d, e, f)`` on the fixed ``41414`` skeleton;
    macro: ``ops`` is the 4-6 module codes, with basic blocks. ``width`` replaces the
    benchmark's 64 base channels (every layer scales with it). ``generator`` seeds the
    initial weights without touching torch's global RNG."""
    if space == "micro":
        net = Network(MICRO_SKELETON, tuple(ops), in_channels, classes, width)
    elif space == "macro":
        if not 1 <= len(ops) <= 6:
            raise TransferSearchError(f"a macro network has 1-6 modules, got codes {ops}")
        net = Network(tuple(ops), None, in_channels, classes, width)
    else:
        raise TransferSearchError(f"unknown search space {space!r} (micro or macro)")
    if generator is not None:
        net.initialize(generator)
    return net


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, as the benchmark counts them (every module that was built)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
