"""The networks the learner benchmarks compare, side by side, by name.

The default is what `Hyperparameters()` builds. The other two are the networks it
replaced, kept so that every speed-up is measured against them in the same run and at
the same settings: `mlp-64x2` (the first MLP encoder) and `transformer-64x2` (the
original network the issue's 31.5 updates/s describes).
"""

from __future__ import annotations

from transfersearch_trainer.agent.hyperparameters import Hyperparameters

DEFAULT = Hyperparameters()
DEFAULT_NAME = f"{DEFAULT.encoder}-{DEFAULT.d_model}x{DEFAULT.layers}"
REFERENCE = "transformer-64x2"
NETWORKS: dict[str, Hyperparameters] = {
    DEFAULT_NAME: DEFAULT,
    "mlp-64x2": DEFAULT.replace(encoder="mlp", d_model=64, layers=2),
    REFERENCE: DEFAULT.replace(encoder="transformer", d_model=64, layers=2),
}
