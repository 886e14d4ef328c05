"""What defines a training run: :class:`TrainConfig`, its model, and what a resume may change.

A ``TrainConfig`` nests the model's :class:`~cortexgnn.nn.config.ModelConfig`
(``model_config``) beside the data, protocol and run settings. A checkpoint stores
``config.to_dict()``; resuming rebuilds the run from a config that must agree with the
stored one on every field that shapes the trajectory (model, data, protocol, seed);
:data:`SESSION_FIELDS` belong to one invocation and :data:`EXTENDABLE_FIELDS` may be changed
on purpose (train for more epochs, write elsewhere).

This module imports neither torch nor the model at import time (the command line builds
its flags from it); :func:`build_model` and :func:`resolve_device` import them when called.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field, fields

from ..nn.config import ARTICLE_FIELDS, ModelConfig
from .data import DATASETS

__all__ = [
    "CheckpointMismatchError",
    "DATASET_FIELDS",
    "EXTENDABLE_FIELDS",
    "MODELS",
    "SESSION_FIELDS",
    "TrainConfig",
    "build_model",
    "check_resumable",
    "model_config_for",
    "resolve_device",
]

#: ``--model``: the column network, the article's loop, and the baselines of the studies
MODELS = (
    "cortexnet",
    "reference",
    "mlp-small",
    "mlp-matched",
    "single-column",
    "cnn-matched",
    "vit-matched",
)
#: ModelConfig fields the dataset decides (input features and classes): no flags.
DATASET_FIELDS = ("in_dim", "top_out")
MAX_THREADS = 1024  # far above any CPU's cores; 10^5 makes OpenMP/BLAS fail to start
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
        "overwrite",
        "column_shards",  # sharded checkpoints reshard: a resume may use another P
    }
)
# Fields a resumed run may change on purpose: train longer, or write elsewhere.
EXTENDABLE_FIELDS = frozenset({"epochs", "out_dir", "log_every"})
# The names of TrainConfig fields before ModelConfig was nested (checkpoints of that time).
_LEGACY_MODEL_NAMES = {"columns": "num_columns", "attention": "use_attention"}
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the requested run (other hyper-parameters or protocol)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint as ``config``.

    ``model_config`` holds the model's hyper-parameters and fix flags; its ``in_dim`` and
    ``top_out`` are replaced by the dataset's, and ``graph_seed=None`` means ``seed``
    (:func:`model_config_for`). ``seed`` seeds the weights, dropout and the shuffling: same
    seed, same run. ``threads=1`` by default: on a busy 2-core machine the digits defaults ran
    0.23 s/step with one torch thread and 1.1 s/step with two; ``None`` keeps torch's choice.
    ``out_dir=None`` makes a new folder ``runs/<timestamp>`` (see
    :mod:`cortexgnn.train.run_dir`); ``eval_every`` counts optimizer steps across epochs.

    ``val_size=None`` is the article's protocol: the periodic evaluations and the best
    accuracy are on the test set. ``val_size=n`` holds out ``n`` training images (a fixed
    split, :func:`~cortexgnn.train.data.validation_split`): the periodic evaluations run on
    them, the best step is chosen on them, and the test set is evaluated once, at the end,
    with the weights of that step (a run stopped by Ctrl-C, or with ``final_eval=False``,
    skips it; one cut short by ``max_steps`` has ended and takes it).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "cortexnet"
    model_config: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    t_max_epochs: float = 12.0
    eval_every: int = 20
    val_size: int | None = None
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1
    compile: bool = False
    column_shards: int | None = None
    out_dir: str | None = None
    overwrite: bool = False
    resume: str | None = None
    progress: bool = True
    plot: bool = True
    log_every: int = 10
    final_eval: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model_config, dict):
            self.model_config = ModelConfig.from_dict(self.model_config)
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in ("epochs", "batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, none in (
            ("max_steps", "no limit"),
            ("threads", "torch's choice"),
            ("val_size", "no validation split"),
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None: {none}), got {value}")
        if self.threads is not None and self.threads > MAX_THREADS:
            raise ValueError(
                f"threads must be <= {MAX_THREADS} (the libraries cannot start that many "
                f"threads), got {self.threads}: use at most the {os.cpu_count()} CPUs here"
            )
        if not -(2**63) <= self.seed < 2**64:
            raise ValueError(f"seed must fit in 64 bits (-2^63 <= seed < 2^64), got {self.seed}")
        for name in ("lr", "weight_decay", "t_max_epochs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.t_max_epochs == 0:
            raise ValueError("t_max_epochs must be > 0 (the cosine period, in epochs), got 0")
        if self.column_shards is not None and (self.column_shards < 1 or self.model != "cortexnet"):
            raise ValueError(
                f"column_shards splits CortexNet's columns over P >= 1 processes, got "
                f"{self.column_shards} with --model {self.model}"
            )
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")
        if self.model == "reference":
            article = set(ARTICLE_FIELDS) | {"graph_seed"}
            extra = [
                f.name
                for f in fields(ModelConfig)
                if f.name not in article and getattr(self.model_config, f.name) != f.default
            ]
            if extra:
                raise ValueError(
                    f"the reference model has only the article's settings, not {extra}: drop "
                    f"those flags or use --model cortexnet"
                )

    def to_dict(self) -> dict:
        """All fields as plain Python values (``model_config`` as a dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """A config from a stored dict; also reads the flat layout of older checkpoints."""
        if not isinstance(values, dict):
            raise TypeError(f"a training config must be a dict, got {type(values).__name__}")
        values = dict(values)
        model = dict(values.pop("model_config", None) or {})
        model_names = {f.name for f in fields(ModelConfig)}
        for key in list(values):
            name = _LEGACY_MODEL_NAMES.get(key, key)
            if name in model_names:
                model.setdefault(name, values.pop(key))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}")
        return cls(**values, model_config=ModelConfig.from_dict(model))


def model_config_for(config: TrainConfig, in_dim: int, num_classes: int) -> ModelConfig:
    """The run's model settings with the dataset's sizes and the graph seed resolved."""
    seed = config.model_config.graph_seed
    return config.model_config.replace(
        in_dim=in_dim, top_out=num_classes, graph_seed=config.seed if seed is None else seed
    )


def resolve_device(device: str):
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    import torch

    if not _DEVICE.fullmatch(device):
        raise ValueError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available here: use --device cpu "
            f"(or auto)"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available: use --device cpu")
    return torch.device(device)


def build_model(config: TrainConfig, in_dim: int, num_classes: int):
    """The configured model: the one place a run's model is made.

    ``cortexnet`` and ``reference`` are built from the run's ``ModelConfig``. The baselines
    are sized from it: ``mlp-small`` is ``in_dim -> 256 -> classes``; ``mlp-matched`` has
    one hidden layer with as many parameters as the ``CortexNet`` of that config;
    ``single-column`` is one column of that budget without a graph; ``cnn-matched`` and
    ``vit-matched`` are a small CNN and a small patch transformer of that budget (the CNN's
    dense layer and the transformer's width set it). A baseline keeps the ``ModelConfig``
    it was sized from as its ``config``, so checkpoints store it too.
    """
    model_config = model_config_for(config, in_dim, num_classes)
    if config.model == "reference":
        from ..reference import DenseReference

        return DenseReference(model_config)
    from ..nn.model import CortexNet

    if config.model == "cortexnet":
        return CortexNet(model_config)
    from ..nn import baselines
    from ..nn.topography import column_graph

    # every graph type keeps its edge count whatever the seed: seed 0 counts them
    num_edges = column_graph(model_config.replace(graph_seed=0)).size(1)
    if config.model == "single-column":
        return CortexNet(baselines.single_column_config(model_config, num_edges))
    budget = baselines.cortexnet_num_parameters(model_config, num_edges)
    dropout = model_config.dropout
    if config.model in ("cnn-matched", "vit-matched"):
        if config.model == "cnn-matched":
            count = lambda w: baselines.CNN.num_parameters(in_dim, num_classes, w)  # noqa: E731
            hidden = baselines.matched_width(count, budget)
            model = baselines.CNN(in_dim, num_classes, hidden, dropout=dropout)
        else:
            count = lambda w: baselines.PatchTransformer.num_parameters(  # noqa: E731
                in_dim, num_classes, w
            )
            width = baselines.matched_width(count, budget, step=4)  # 4 heads
            model = baselines.PatchTransformer(in_dim, num_classes, width, dropout=dropout)
        model.config = model_config
        return model
    hidden = (
        256
        if config.model == "mlp-small"
        else baselines.matched_hidden_size(budget, in_dim, num_classes)
    )
    model = baselines.MLP(in_dim, hidden, num_classes, dropout=model_config.dropout)
    model.config = model_config
    return model


def _flat(values: dict) -> dict:
    """A stored config dict with the model's fields at top level (``num_columns`` ...)."""
    flat = {k: v for k, v in values.items() if k != "model_config"}
    flat.update(values.get("model_config") or {})
    return flat


def check_resumable(state: dict, config: TrainConfig, path: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state`` can continue ``config``."""
    if "config" not in state or "step" not in state:
        raise CheckpointMismatchError(
            f"{path} is not a cortexgnn training checkpoint (no 'config'/'step'): it cannot be "
            "resumed; evaluate it with `cortexgnn eval` instead"
        )
    try:
        saved = _flat(TrainConfig.from_dict(state["config"]).to_dict())
    except (TypeError, ValueError) as err:
        raise CheckpointMismatchError(f"{path} holds an unreadable run config: {err}") from err
    from ..checkpoint import check_model_size, stored_elements

    check_model_size(
        TrainConfig.from_dict(state["config"]).model_config,
        path,
        stored_elements=stored_elements(state.get("model_state_dict")),
        dense_adjacency=config.model == "reference",
    )
    ignored = SESSION_FIELDS | EXTENDABLE_FIELDS | set(DATASET_FIELDS)
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
        for k, v in _flat(config.to_dict()).items()
        if k not in ignored and saved.get(k) != v
    ]
    if diff:
        raise CheckpointMismatchError(
            f"{path} was trained with other settings; resume with the same ones ("
            + "; ".join(diff)
            + ")"
        )
