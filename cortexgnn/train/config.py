"""What defines a training run: :class:`TrainConfig`, its model, and what a resume may change.

A checkpoint stores ``asdict(config)``. Resuming rebuilds the run from a config that must
agree with the stored one on every field that shapes the trajectory (model, data, protocol,
seed); :data:`SESSION_FIELDS` belong to one invocation and :data:`EXTENDABLE_FIELDS` may be
changed on purpose (train for more epochs, write elsewhere).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..nn.model import CortexNet
from ..reference import DenseReference
from .data import DATASETS

__all__ = [
    "CheckpointMismatchError",
    "EXTENDABLE_FIELDS",
    "MODELS",
    "SESSION_FIELDS",
    "TrainConfig",
    "build_model",
    "check_resumable",
    "resolve_device",
]

MODELS = ("cortexnet", "reference")
# Fields that belong to one invocation, not to the run: a resumed run takes them afresh.
SESSION_FIELDS = frozenset(
    {
        "data_dir",
        "download",
        "device",
        "compile",
        "max_steps",
        "resume",
        "progress",
        "plot",
        "final_eval",
        "threads",
    }
)
# Fields a resumed run may change on purpose: train longer, or write elsewhere.
EXTENDABLE_FIELDS = frozenset({"epochs", "out_dir", "log_every"})


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the requested run (other hyper-parameters or protocol)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint as ``config``.

    Model fields mirror the article's hyper-parameters (``columns`` is ``num_columns``);
    ``in_dim`` and ``top_out`` come from the dataset. ``seed`` seeds the weights, dropout, the
    shuffling and the small-world graph (``graph_seed``): same seed, same run.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "cortexnet"
    columns: int = 64
    col_out: int = 128
    graph_k: int = 8
    graph_p: float = 0.15
    message_iters: int = 4
    plasticity_lr: float = 5e-5
    attention: bool = True
    e_i_ratio: float = 0.8
    dropout: float = 0.1
    attention_uses_edge_weight: bool = False
    freeze_homeostasis_in_eval: bool = False
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    t_max_epochs: float = 12.0
    eval_every: int = 100
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    compile: bool = False
    out_dir: str = "runs/latest"
    resume: str | None = None
    progress: bool = True
    plot: bool = True
    log_every: int = 10
    final_eval: bool = True

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in ("columns", "epochs", "batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model == "reference" and (
            self.attention_uses_edge_weight or self.freeze_homeostasis_in_eval
        ):
            raise ValueError(
                "the reference model has no attention_uses_edge_weight or "
                "freeze_homeostasis_in_eval option"
            )


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def build_model(config: TrainConfig, in_dim: int, num_classes: int) -> nn.Module:
    """The configured ``CortexNet`` or ``DenseReference`` (graph seeded by ``config.seed``)."""
    hparams = dict(
        num_columns=config.columns, in_dim=in_dim, col_out=config.col_out, top_out=num_classes,
        graph_k=config.graph_k, graph_p=config.graph_p, message_iters=config.message_iters,
        plasticity_lr=config.plasticity_lr, use_attention=config.attention,
        e_i_ratio=config.e_i_ratio, dropout=config.dropout,
    )  # fmt: skip
    if config.model == "reference":
        return DenseReference(**hparams, graph_seed=config.seed)
    return CortexNet(
        **hparams,
        graph_seed=config.seed,
        attention_uses_edge_weight=config.attention_uses_edge_weight,
        freeze_homeostasis_in_eval=config.freeze_homeostasis_in_eval,
    )


def check_resumable(state: dict, config: TrainConfig, path: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state`` can continue ``config``."""
    if "config" not in state or "step" not in state:
        raise CheckpointMismatchError(
            f"{path} is not a cortexgnn training checkpoint (no 'config'/'step'): it cannot be "
            "resumed; evaluate it with `cortexgnn eval` instead"
        )
    saved, now = state["config"], asdict(config)
    ignored = SESSION_FIELDS | EXTENDABLE_FIELDS
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
        for k, v in now.items()
        if k not in ignored and saved.get(k) != v
    ]
    if diff:
        raise CheckpointMismatchError(
            f"{path} was trained with other settings; resume with the same ones ("
            + "; ".join(diff)
            + ")"
        )
