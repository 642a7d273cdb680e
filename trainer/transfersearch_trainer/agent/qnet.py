"""The Q-network: an encoder of the architecture, scoring each move by its effect.

Input tokens are the current architecture's op codes (embedding of the code plus
a learned position embedding) and one summary token carrying the search's
global features (is the current the best so far, its rank, staleness, budget
used). A move is scored from the encoder's output at the position it edits (the
summary token for "append at the end"), an embedding of the edit (its kind, position
and what it writes), and what the search remembers about the neighbour it leads to.
A dueling head combines a state value with these move advantages, averaged over the
valid moves only.

Two encoders, chosen by `NetConfig.encoder`:

* ``mlp`` (the default): residual MLP blocks over the flattened tokens. An architecture
  is at most 6 tokens plus the summary, so attention buys nothing a dense layer over all
  seven cannot do, and on a CPU the MLP costs about a third of the transformer per update
  (`transfersearch bench learner` measures both side by side). Its move head adds the
  edit and feature terms *after* one shared projection of the encoder output, so the
  per-move work is an add, a GELU and a dot product rather than a LayerNorm and a d x d
  matmul for every (state, move) pair.
* ``transformer``: pre-norm transformer layers and the original per-move MLP head; kept
  so that agents saved before the MLP became the default still load and run.

The split that transfer modes use: the *encoder* (token, position and summary
embeddings and the encoder layers) learns what architectures are; the *head*
(move scoring and value) learns what to do about it. `freeze-encoder` trains the
head alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from transfersearch_trainer.benchmark.spaces import TOKEN_LEN, SearchSpace
from transfersearch_trainer.search.env import ACTION_FEATURES, GLOBAL_FEATURES

NEG_INF = -1e9
ENCODERS = ("mlp", "transformer")


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to rebuild a network: saved in every agent's manifest."""

    space: str
    vocab: int
    num_actions: int
    action_position: tuple[int, ...]
    action_kind: tuple[int, ...]
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ff: int = 128
    token_len: int = TOKEN_LEN
    action_features: int = ACTION_FEATURES
    global_features: int = GLOBAL_FEATURES
    encoder: str = "mlp"

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder: unknown {self.encoder!r}; use one of {', '.join(ENCODERS)}")

    @classmethod
    def for_space(cls, space: SearchSpace, **sizes: int | str) -> NetConfig:
        return cls(
            space=space.name,
            vocab=space.vocab,
            num_actions=space.num_actions,
            action_position=tuple(int(x) for x in space.action_position),
            action_kind=tuple(int(x) for x in space.action_kind),
            **sizes,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["action_position"] = list(self.action_position)
        d["action_kind"] = list(self.action_kind)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> NetConfig:
        values = dict(d)
        values["action_position"] = tuple(values["action_position"])  # type: ignore[arg-type]
        values["action_kind"] = tuple(values["action_kind"])  # type: ignore[arg-type]
        values.setdefault("encoder", "transformer")  # saved before the encoder was a choice
        return cls(**values)  # type: ignore[arg-type]


ENCODER_PREFIXES = ("token_emb.", "pos_emb", "summary_emb", "global_proj.", "encoder.")


class MixerEncoder(nn.Module):
    """Pre-norm residual MLP blocks over all tokens at once, then a LayerNorm."""

    def __init__(self, tokens: int, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(tokens * d, hidden), nn.GELU(), nn.Linear(hidden, tokens * d))
            for _ in range(layers)
        )
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, d) -> (B, T, d)
        for norm, block in zip(self.norms, self.blocks, strict=True):
            x = x + block(norm(x).flatten(1)).view_as(x)
        out: Tensor = self.out_norm(x)
        return out


class QNetwork(nn.Module):
    action_position: Tensor
    action_kind: Tensor
    edit_base: Tensor

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        # encoder
        self.token_emb = nn.Embedding(cfg.vocab, d)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.token_len, d))
        self.summary_emb = nn.Parameter(torch.zeros(d))
        self.global_proj = nn.Linear(cfg.global_features, d)
        self.encoder: nn.Module
        if cfg.encoder == "mlp":
            self.encoder = MixerEncoder(cfg.token_len + 1, d, cfg.ff, cfg.layers)
        else:
            layer = nn.TransformerEncoderLayer(
                d, cfg.heads, cfg.ff, dropout=0.0, batch_first=True, norm_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        # head: one vector per distinct edit (kind, position, written code), so "writing a
        # conv3x3 on edge 2 is good" is a single lookup rather than something to compose
        self.edit_emb = nn.Embedding(3 * (cfg.token_len + 1) * cfg.vocab, d)
        self.feat_proj = nn.Linear(cfg.action_features, d)
        if cfg.encoder == "mlp":
            self.move_proj = nn.Linear(d, d)
            self.move_out = nn.Linear(d, 1)
        else:
            self.code_emb = nn.Embedding(cfg.vocab, d)
            self.kind_emb = nn.Embedding(3, d)
            self.advantage = nn.Sequential(
                nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1)
            )
        self.value = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
        position = torch.tensor(cfg.action_position, dtype=torch.long)
        kind = torch.tensor(cfg.action_kind, dtype=torch.long)
        self.register_buffer("action_position", position, persistent=False)
        self.register_buffer("action_kind", kind, persistent=False)
        edit_base = (kind * (cfg.token_len + 1) + position) * cfg.vocab
        self.register_buffer("edit_base", edit_base, persistent=False)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.summary_emb, std=0.02)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith(ENCODER_PREFIXES)]

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith(ENCODER_PREFIXES)]

    def forward(
        self,
        tokens: Tensor,  # (B, L) long
        action_code: Tensor,  # (B, A) long
        action_feats: Tensor,  # (B, A, F_a)
        global_feats: Tensor,  # (B, F_g)
        mask: Tensor,  # (B, A) bool
    ) -> Tensor:
        x = self.token_emb(tokens) + self.pos_emb
        summary = (self.summary_emb + self.global_proj(global_feats)).unsqueeze(1)
        h = self.encoder(torch.cat([summary, x], dim=1))  # (B, 1 + L, d)
        h_summary = h[:, 0]
        # positions 0..L-1 are tokens; position L ("after the last module") uses the summary
        h_pos = torch.cat([h[:, 1:], h_summary.unsqueeze(1)], dim=1)
        edit = self.edit_emb(self.edit_base + action_code)
        if self.cfg.encoder == "mlp":
            # index_select, not fancy indexing: its backward is an index_add, not a slow
            # accumulating index_put
            z = self.move_proj(h_pos).index_select(1, self.action_position)  # (B, A, d)
            z = nn.functional.relu(z + edit + self.feat_proj(action_feats))
            adv = self.move_out(z).squeeze(-1)  # (B, A)
        else:
            z = h_pos[:, self.action_position] + self.code_emb(action_code)
            z = z + self.kind_emb(self.action_kind) + edit + self.feat_proj(action_feats)
            adv = self.advantage(z).squeeze(-1)
        maskf = mask.to(adv.dtype)
        mean_adv = (adv * maskf).sum(-1, keepdim=True) / maskf.sum(-1, keepdim=True).clamp(min=1)
        q: Tensor = self.value(h_summary) + adv - mean_adv
        return q.masked_fill(~mask, NEG_INF)
