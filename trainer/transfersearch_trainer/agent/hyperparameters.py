"""The agent's learning settings in one frozen dataclass (CleanRL style), and their overrides.

Saved with every agent; `with_overrides` is the one parser for `--hp name=value` on the
command line and for a job config's `hyperparameters` map in a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from transfersearch_trainer.api.errors import TransferSearchError


@dataclass(frozen=True)
class Hyperparameters:
    """All learning settings in one place; saved with every agent."""

    num_actors: int = 64  # parallel searches (Ape-X actors)
    episode_steps: int = 48  # moves per training window (PEB truncation)
    eps_base: float = 0.4  # Ape-X epsilon ladder
    eps_alpha: float = 7.0
    gamma: float = 0.9
    n_step: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 10.0
    replay_capacity: int = 1 << 17
    learning_starts: int = 2048  # transitions before the first update
    updates_per_step: int = 1  # learner updates per vectorised actor step
    target_update: int = 500  # learner updates between target-network syncs
    per_alpha: float = 0.6
    per_beta0: float = 0.4
    per_eps: float = 1e-3
    huber_delta: float = 1.0
    reward_scale: float = 10.0  # rewards are normalised improvements (optimum - median = 1)
    shaping: float = 0.0  # potential-based shaping coefficient (see env)
    augment: float = 0.3  # task augmentation: scale of random shifts of the training task
    budget_ref: int = 50  # the search budget the "budget used" feature is relative to
    encoder: str = "mlp"  # mlp or transformer (see agent.qnet)
    d_model: int = 32  # 32 x 1 block: 3-4x the updates/s of the 64 x 2 transformer at equal
    layers: int = 1  # quality (`transfersearch bench learner` and `bench quality` measure both)
    heads: int = 4
    ff: int = 128
    eval_interval: int = 1000  # at most this many updates between curve points (0: no curve)
    eval_searches: int = 64
    eval_budget: int = 50

    def __post_init__(self) -> None:
        if self.encoder not in ("mlp", "transformer"):
            raise TransferSearchError(
                f"hyperparameters.encoder: unknown {self.encoder!r}; use mlp or transformer"
            )

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Hyperparameters:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TransferSearchError(
                f"hyperparameters: unknown field(s) {', '.join(sorted(unknown))}"
            )
        return cls(**d)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Hyperparameters:
        return Hyperparameters.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, overrides: Mapping[str, object], where: str) -> Hyperparameters:
        """These settings with `overrides` applied, each checked for its name and type.

        Strings (from the command line) are parsed as the field's type; other values
        (from a JSON job config) must already have it: an int field takes no float or
        bool. `where` prefixes the name in errors (``"--hp "`` or ``"hyperparameters."``).
        """
        defaults = self.to_dict()
        changes: dict[str, object] = {}
        for name, value in overrides.items():
            if name not in defaults:
                raise TransferSearchError(
                    f"{where}{name}: unknown; use one of {', '.join(defaults)}"
                )
            kind = type(defaults[name])
            if isinstance(value, str):
                try:
                    changes[name] = kind(value)
                except ValueError:
                    raise TransferSearchError(
                        f"{where}{name}: {value!r} is not a {kind.__name__}"
                    ) from None
            elif kind is str:
                raise TransferSearchError(f"{where}{name}: must be a string, got {value!r}")
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind is int and not isinstance(value, int))
            ):
                raise TransferSearchError(
                    f"{where}{name}: must be {'an integer' if kind is int else 'a number'}, "
                    f"got {value!r}"
                )
            else:
                changes[name] = kind(value)
        return self.replace(**changes) if changes else self
