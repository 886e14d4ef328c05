"""Checkpoints: atomic writes, safe reads, and the article's ``brain.pth`` <-> ``CortexNet``.

The article saves ``{"epoch", "model_state_dict", "optimizer_state_dict", "loss",
"hyperparams"}`` with ``BrainNetwork``'s state dict (the keys of
:class:`cortexgnn.DenseReference`). Files written here use the same dict plus
``"model_config"`` (every :class:`~cortexgnn.nn.config.ModelConfig` field, fix flags
included); the model state is in the article's keys when written by
:func:`save_article_checkpoint`, or in ``CortexNet``'s own keys for training checkpoints;
:func:`load_article_checkpoint` reads both, and files without ``"model_config"`` (the
article's own).

Reading a file never runs code from it: every read is ``torch.load(weights_only=True)``,
which rebuilds tensors and plain values (dicts, lists, tuples, numbers, strings, ``None``)
and refuses any other Python object. cortexgnn's checkpoints hold nothing else (model,
optimizer and scheduler states, RNG states as tensors, configs as dicts) with one exception,
the one allow-listed global: ``torch.torch_version.TorchVersion``, the type of
``torch.__version__``, which training checkpoints store in their ``"environment"`` (a
``str`` subclass defined by torch: rebuilding it runs no code from the file). A file that
names any other global is refused with :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.torch_version import TorchVersion

from ._io import atomic_write
from ._limits import (
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_MAX_MESSAGE_ITERS,
    SizeLimitError,
    check_elements,
)
from .nn.config import ARTICLE_FIELDS, ModelConfig
from .nn.model import CortexNet
from .reference import DenseReference

__all__ = [
    "DEFAULT_MAX_MESSAGE_ITERS",
    "brain_dict",
    "check_model_size",
    "stored_elements",
    "model_from_state",
    "SizeLimitError",
    "UnsafeCheckpointError",
    "atomic_save",
    "read_checkpoint",
    "save_article_checkpoint",
    "load_article_checkpoint",
]

REQUIRED_KEYS = ("model_state_dict", "hyperparams")


#: Globals ``torch.load(weights_only=True)`` may rebuild beyond tensors and plain values.
SAFE_GLOBALS = (TorchVersion,)  # torch.__version__ in the training loop's "environment"


class UnsafeCheckpointError(ValueError):
    """The file holds Python objects that only running code from it could rebuild."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`cortexgnn._io.atomic_write`: never a torn file.

    A crash at any moment leaves either the old file or the new one. A process killed
    mid-write leaves its temporary ``.<name>.*.tmp`` beside ``path`` (safe to delete).
    Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint dict without running code from it, with errors that say what is wrong.

    Args:
        path: a ``.pth`` file written by cortexgnn or by the article's ``train.py``.
        map_location: as in :func:`torch.load`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        UnsafeCheckpointError: the file holds Python objects (it names them): loading it
            would run code from the file, which cortexgnn never does.
        ValueError: the file is truncated or corrupt, or not a ``brain.pth``-style dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: check the path")
    # safe_globals (torch >= 2.5) scopes the allow-list to this call; older torch refuses it
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    allowed = safe_globals(list(SAFE_GLOBALS)) if safe_globals else contextlib.nullcontext()
    try:
        with allowed:
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(path, err)
        if unsafe:
            raise UnsafeCheckpointError(
                f"{path} was refused: it contains Python objects ({', '.join(unsafe)}) that "
                f"only running code from the file could rebuild. cortexgnn checkpoints hold "
                f"only tensors and plain values (dicts, lists, numbers, strings), so this file "
                f"was not written by cortexgnn or has been altered; it was not loaded"
            ) from None  # torch's message suggests switching weights_only off: not advice to repeat
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err
    # a --column-shards run keeps its weights in a folder that "sharded_state" names
    sharded = isinstance(state, dict) and "sharded_state" in state
    required = [key for key in REQUIRED_KEYS if not (sharded and key == "model_state_dict")]
    if not isinstance(state, dict) or any(key not in state for key in required):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a brain.pth-style checkpoint: it needs the keys "
            f"{list(REQUIRED_KEYS)}, found {found}"
        )
    return state


def _unsafe_globals(path: Path, err: pickle.UnpicklingError) -> list[str]:
    """The Python globals a refused file names (read from the pickle, never executed).

    ``torch.serialization.get_unsafe_globals_in_checkpoint`` scans a zip checkpoint's
    opcodes; the legacy format is named in the refusal message instead. An empty list
    means the pickle is broken rather than unsafe.
    """
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - legacy or corrupt file: fall back to the message
        found = []
    if not found:
        found = re.findall(r"unsupported global:?\s*(?:GLOBAL\s+)?([\w.]+)", str(err), re.I)
    allowed = {f"{kind.__module__}.{kind.__qualname__}" for kind in SAFE_GLOBALS}
    return sorted(set(found) - allowed)


def _stored_config(state: dict, path: Path, settings: dict) -> ModelConfig:
    """The file's ``ModelConfig`` (``model_config``, else ``hyperparams``), then ``settings``."""
    hparams = state["hyperparams"]
    if not isinstance(hparams, dict):
        raise ValueError(
            f"{path}: 'hyperparams' must be a dict of the model's settings, got "
            f"{type(hparams).__name__}"
        )
    stored = state.get("model_config")
    if stored is None:
        unknown = sorted(set(hparams) - set(ARTICLE_FIELDS) - {"graph_seed"})
        if unknown:
            raise ValueError(
                f"{path}: hyperparams {unknown} are not settings of the article's model "
                f"(known: {sorted(ARTICLE_FIELDS)})"
            )
        stored = hparams
    elif not isinstance(stored, dict):
        raise ValueError(
            f"{path}: 'model_config' must be a dict of ModelConfig fields, got "
            f"{type(stored).__name__}"
        )
    try:
        config = ModelConfig.from_dict(dict(stored))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its stored settings do not make a ModelConfig: {err}") from err
    disagree = {
        key: (value, getattr(config, key))
        for key, value in hparams.items()
        if key in ARTICLE_FIELDS and value != getattr(config, key)
    }
    if disagree:
        raise ValueError(
            f"{path}: 'hyperparams' and 'model_config' disagree on {sorted(disagree)} "
            f"(hyperparams, model_config: {disagree}): an edited file?"
        )
    return config.replace(**settings)


def _load_strict(model: nn.Module, state_dict: dict, path: Path) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as err:  # ValueError: the graph check
        raise ValueError(
            f"{path}: the weights do not fit a model built from the file's settings "
            f"(another architecture, an edited file?): {err}"
        ) from err


def brain_dict(
    model: CortexNet | DenseReference,
    *,
    epoch: int = 0,
    loss: float = float("nan"),
    optimizer_state_dict: dict | None = None,
    article_keys: bool = True,
) -> dict:
    """The article's ``brain.pth`` dict for ``model``: the one place that builds it.

    The article's keys (``epoch``, ``model_state_dict``, ``optimizer_state_dict``, ``loss``,
    ``hyperparams``) and ``"model_config"``, every setting of ``model`` (fix flags
    included), so :func:`load_article_checkpoint` rebuilds the same model. With
    ``article_keys`` a ``CortexNet``'s weights are stored in ``BrainNetwork``'s layout (what
    the article's code loads); without, in ``CortexNet``'s own (what a resume loads).
    """
    if article_keys and isinstance(model, CortexNet):
        weights = DenseReference.from_cortexnet(model).state_dict()
    else:
        weights = model.state_dict()
    return {
        "epoch": epoch,
        "model_state_dict": weights,
        "optimizer_state_dict": optimizer_state_dict or {},
        "loss": loss,
        "hyperparams": model.config.article_hparams(),
        "model_config": model.config.to_dict(),
    }


def save_article_checkpoint(
    path: str | os.PathLike,
    model: CortexNet | DenseReference,
    *,
    epoch: int = 0,
    loss: float = float("nan"),
    optimizer_state_dict: dict | None = None,
) -> Path:
    """Write ``model`` as the article's ``brain.pth`` (``BrainNetwork`` keys), atomically.

    The file is :func:`brain_dict`. An optimizer state only makes sense for the module it
    came from; it is stored as given.
    """
    if isinstance(model, CortexNet) and model.config.patch_size is not None:
        raise ValueError(
            "a topographic model's columns read patches where brain.pth's read the whole "
            "input: save model.state_dict() with model.config.to_dict() and model.hparams as "
            "cortexgnn train's checkpoint.pth does, which load_article_checkpoint reads back"
        )
    if isinstance(model, CortexNet) and model.config.shared_weights:
        raise ValueError(
            "a shared_weights model has one column where brain.pth holds one per column: "
            "save model.state_dict() with model.config.to_dict() and model.hparams as "
            "cortexgnn train's checkpoint.pth does, which load_article_checkpoint reads back"
        )
    state = brain_dict(model, epoch=epoch, loss=loss, optimizer_state_dict=optimizer_state_dict)
    return atomic_save(state, path)


def stored_elements(value: Any) -> int:
    """Elements of the tensors in a (nested) dict or list read from a file."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, dict):
        return sum(stored_elements(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(stored_elements(item) for item in value)
    return 0


def check_model_size(
    config: ModelConfig,
    path: str | os.PathLike,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_message_iters: int = DEFAULT_MAX_MESSAGE_ITERS,
    stored_elements: int = 0,
    dense_adjacency: bool = True,
) -> None:
    """Refuse settings from a file that would build a huge model or loop for hours.

    Runs before any graph or weight is built: the element count is an upper estimate of
    what ``CortexNet`` or ``DenseReference`` allocates for these settings (column weights,
    per-column query/key, the graph, a dense ``[N, N]`` adjacency, the readout). A file
    that really holds a model that big holds its weights too: the limit is the larger of
    ``max_elements`` and four times ``stored_elements`` (what the file's tensors hold), so
    a genuine large checkpoint loads while a few-KB file with edited sizes is refused.

    Args:
        config: the file's model settings.
        path: the file, for the message.
        max_elements: the limit for settings beyond what the file stores.
        max_message_iters: the most message-passing iterations per forward.
        stored_elements: elements of the tensors the file holds.
        dense_adjacency: the model builds a dense ``[N, N]`` adjacency (the article's
            layout); ``CortexNet`` only builds one for ``N <= 256``.

    Raises:
        SizeLimitError: the estimate exceeds ``max_elements`` or ``message_iters`` exceeds
            ``max_message_iters`` (the message names the file, the bytes and the flag).
    """
    n, d, f = config.num_columns, config.col_out, config.in_dim
    if config.graph == "complete":
        edges = n * (n - 1)
    elif config.graph in ("lattice", "rewired-lattice"):
        edges = 4 * n  # 4 neighbours at most; rewiring keeps the count
    else:  # the ring's n * k, kept by rewiring and by the random graph
        edges = n * max(config.graph_k, 1)
    reads = f if config.patch_size is None else min(f, config.patch_size**2)  # column inputs
    modules = 1 if config.shared_weights else n  # one column module serves all when shared
    elements = (
        modules * (3 * d * reads + 2 * d * d + 4 * d)  # columns (3 branches at most), Q/K
        + (n * d if config.shared_weights else 0)  # the shared columns' per-column bias
        + 3 * edges  # edge_index [2, E] and edge weights [E]
        + 2 * (n if dense_adjacency else min(n, 256)) ** 2  # dense adjacency, or the count
        + d * (d + config.top_out + 4)  # readout
    )
    check_elements(
        f"{path}: a model of num_columns={n}, in_dim={f}, col_out={d}, top_out="
        f"{config.top_out}, graph={config.graph!r}, graph_k={config.graph_k} ({edges:,} edges)",
        elements,
        max(max_elements, 4 * stored_elements),
        bytes_each=4,
        fix="pass max_elements= (cortexgnn eval --max-elements)",
    )
    if config.message_iters > max_message_iters:
        raise SizeLimitError(
            f"{path}: message_iters={config.message_iters} is above the limit of "
            f"{max_message_iters} iterations per forward (the article runs 4): check the file, "
            f"or pass max_message_iters= (cortexgnn eval --max-message-iters) if you mean it"
        )


def load_article_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: Any = "cpu",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_message_iters: int = DEFAULT_MAX_MESSAGE_ITERS,
    **settings,
) -> CortexNet:
    """A ``CortexNet`` from a ``brain.pth`` file, in the article's keys or ``CortexNet``'s.

    Args:
        path: ``.pth`` file holding at least ``model_state_dict`` and ``hyperparams``.
        map_location: as in :func:`torch.load`.
        max_elements: the most elements the file's sizes may ask for (see
            :func:`check_model_size`); raise it to load a bigger model on purpose.
        max_message_iters: the most message-passing iterations the file may ask for.
        **settings: :class:`~cortexgnn.nn.config.ModelConfig` fields that override the
            file's (its ``model_config``, else its ``hyperparams`` with defaults for the rest).

    Raises:
        UnsafeCheckpointError: the file holds Python objects (see :func:`read_checkpoint`).
        ValueError: the file is unreadable, or its settings and weights do not make a model
            (an out-of-range graph, an empty graph with message passing, a NaN edge weight,
            say), or its sizes exceed the limits (:class:`SizeLimitError`); the message
            names the file.
    """
    path = Path(path)
    return model_from_state(
        read_checkpoint(path, map_location),
        path,
        max_elements=max_elements,
        max_message_iters=max_message_iters,
        **settings,
    )


def model_from_state(
    state: dict,
    path: str | os.PathLike,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_message_iters: int = DEFAULT_MAX_MESSAGE_ITERS,
    **settings,
) -> CortexNet:
    """The ``CortexNet`` of a checkpoint dict already read by :func:`read_checkpoint`.

    What :func:`load_article_checkpoint` does after reading the file (``path`` only names
    the file in errors); for callers that also need the rest of the dict.
    """
    path = Path(path)
    config = _stored_config(state, path, settings)
    weights = state["model_state_dict"]
    check_model_size(
        config,
        path,
        max_elements=max_elements,
        max_message_iters=max_message_iters,
        stored_elements=stored_elements(weights),
        dense_adjacency=not isinstance(weights, dict) or "edge_index" not in weights,
    )
    if not isinstance(weights, dict):
        raise ValueError(
            f"{path}: 'model_state_dict' must be a state dict, got {type(weights).__name__}"
        )
    if "adj_struct" not in weights and "edge_index" not in weights:
        raise ValueError(
            f"{path}: model_state_dict has neither 'adj_struct' (the article's BrainNetwork) "
            f"nor 'edge_index' (CortexNet): it holds another architecture's weights"
        )
    article = {name: value for name, value in config.to_dict().items() if name in ARTICLE_FIELDS}
    try:
        if "adj_struct" in weights:  # the article's BrainNetwork layout
            model = DenseReference(**article, graph_seed=config.graph_seed)
        else:
            model = CortexNet(config, edge_index=weights["edge_index"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its settings {config} do not build a model: {err}") from err
    _load_strict(model, weights, path)
    if isinstance(model, DenseReference):
        fixes = {k: v for k, v in config.to_dict().items() if k not in article}
        try:  # the CortexNet constructor and its load hook check the converted graph
            model = model.to_cortexnet(**fixes)
        except ValueError as err:
            raise ValueError(f"{path}: its graph and weights do not make a model: {err}") from err
        if not model.edge_weight.isfinite().all():
            raise ValueError(f"{path}: adj_weight holds NaN or Inf on the graph's edges")
    return model.eval()
