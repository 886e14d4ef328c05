"""``ModelConfig``: every setting of the column network, in one frozen object.

The first eleven fields are the article's ``hyperparams`` dict, under its names and with
its defaults; the rest are switches the article does not have: each defaults to the
article's behaviour and opts in to one change. :class:`~cortexgnn.CortexNet` and
:class:`~cortexgnn.DenseReference` are built from a ``ModelConfig``, the training
configuration nests one, every field is a ``cortexgnn train`` flag, and every checkpoint
stores all of it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

__all__ = ["ARTICLE_FIELDS", "ModelConfig"]

#: The keys of the article's ``hyperparams`` dict (``brain.pth``), in its order.
ARTICLE_FIELDS = (
    "num_columns",
    "in_dim",
    "col_out",
    "top_out",
    "graph_k",
    "graph_p",
    "message_iters",
    "plasticity_lr",
    "use_attention",
    "e_i_ratio",
    "dropout",
)


FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class ModelConfig:
    """The column network's hyper-parameters and fix flags.

    Args:
        num_columns: number of cortical columns ``N`` (graph nodes).
        in_dim: input features per sample.
        col_out: column output size ``D``.
        top_out: number of classes.
        graph_k: Watts-Strogatz ring degree (``graph_k == num_columns``: the complete graph).
        graph_p: Watts-Strogatz rewiring probability.
        message_iters: message-passing iterations (0: the columns alone).
        plasticity_lr: rate of the Hebbian rule on the edge weights.
        use_attention: attention messages; ``False`` sums neighbours weighted by
            ``sigmoid(edge_weight)``.
        e_i_ratio: inhibition strength in each column (0: no inhibition).
        dropout: dropout probability.
        graph_seed: seed of the small-world graph; ``None`` draws a new one (the article).
        attention_uses_edge_weight: fix: gate the attention coefficients by
            ``sigmoid(edge_weight)``, so the Hebbian weights reach the output.
        freeze_homeostasis_in_eval: fix: evaluation leaves the homeostasis statistics alone.
        homeostasis_min_divisor: fix: divide by ``max(activity_avg, m)`` instead of
            ``activity_avg + 1e-6`` (``None``: the article's divisor).
        use_homeostasis: ``False`` removes homeostatic scaling (an ablation).
        use_hebbian: ``False`` leaves the edge weights to the optimizer alone (an ablation).
        check_finite_input: refuse NaN/Inf input with a ``ValueError`` (one reduction per
            call).
    """

    num_columns: int = 64
    in_dim: int = 784
    col_out: int = 128
    top_out: int = 10
    graph_k: int = 8
    graph_p: float = 0.15
    message_iters: int = 4
    plasticity_lr: float = 5e-5
    use_attention: bool = True
    e_i_ratio: float = 0.8
    dropout: float = 0.1
    graph_seed: int | None = None
    attention_uses_edge_weight: bool = False
    freeze_homeostasis_in_eval: bool = False
    homeostasis_min_divisor: float | None = None
    use_homeostasis: bool = True
    use_hebbian: bool = True
    check_finite_input: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        for name in ("num_columns", "in_dim", "col_out", "top_out"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.message_iters < 0:
            raise ValueError(
                f"message_iters must be >= 0 (0: no message passing), got {self.message_iters}"
            )
        # graph_k's bounds depend on whether the small-world graph is built at all (a custom
        # edge_index replaces it): small_world_graph and CortexNet check them there.
        if self.graph_k < 0:
            raise ValueError(f"graph_k must be >= 0, got {self.graph_k}")
        if not 0.0 <= self.graph_p <= 1.0:
            raise ValueError(f"graph_p is a probability in [0, 1], got {self.graph_p}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name in ("plasticity_lr", "e_i_ratio"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if abs(self.plasticity_lr) > FLOAT32_MAX:  # the edge weights are float32
            raise ValueError(
                f"plasticity_lr must lie within +-{FLOAT32_MAX:.1e} (float32), got "
                f"{self.plasticity_lr}"
            )
        divisor = self.homeostasis_min_divisor
        if divisor is not None and not (math.isfinite(divisor) and divisor > 0.0):
            raise ValueError(
                f"homeostasis_min_divisor must be a finite number > 0, or None for the "
                f"article's divisor, got {divisor}"
            )

    def replace(self, **changes) -> ModelConfig:
        """A copy with ``changes`` applied (validated like a new config)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"unknown model settings {unknown}; the settings are "
                f"{[f.name for f in fields(self)]}"
            )
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """A config from a stored dict (a checkpoint's); unknown keys are refused."""
        if not isinstance(values, dict):
            raise TypeError(f"a model config must be a dict, got {type(values).__name__}")
        return cls().replace(**values)

    def to_dict(self) -> dict:
        """All fields as plain Python values (what checkpoints store)."""
        return asdict(self)

    def article_hparams(self) -> dict:
        """The article's ``hyperparams`` dict: the first eleven fields."""
        return {name: getattr(self, name) for name in ARTICLE_FIELDS}


def _check_type(name: str, value, annotation: str) -> None:
    """Refuse a value of the wrong kind (a string for a number, a float for a count)."""
    optional = "None" in annotation
    if value is None:
        if not optional:
            raise TypeError(f"{name} must not be None")
        return
    if annotation.startswith("bool"):
        ok = isinstance(value, bool)
    elif annotation.startswith("int"):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:  # float
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok:
        kind = annotation.split(" ")[0]
        raise TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
