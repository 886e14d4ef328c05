"""Checkpoints: atomic writes, and the article's ``brain.pth`` format <-> ``CortexNet``.

The article saves ``{"epoch", "model_state_dict", "optimizer_state_dict", "loss",
"hyperparams"}`` with ``BrainNetwork``'s state dict (the keys of
:class:`cortexgnn.DenseReference`). Files written here use the same dict; the model state
is in the article's keys when written by :func:`save_article_checkpoint`, or in
``CortexNet``'s own keys for training checkpoints; :func:`load_article_checkpoint` reads both.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .nn.model import CortexNet
from .reference import DenseReference

__all__ = [
    "atomic_save",
    "read_checkpoint",
    "save_article_checkpoint",
    "load_article_checkpoint",
]

REQUIRED_KEYS = ("model_state_dict", "hyperparams")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over it.

    A crash at any moment leaves either the old file or the new one, never a torn file. A
    process killed mid-write leaves its temporary ``.<name>.*.tmp`` beside ``path`` (safe to
    delete). The directory is fsynced after the rename, so the new name also survives a
    power loss on POSIX file systems.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _umask() -> int:
    current = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return  # directories cannot be opened for fsync on Windows
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint dict, with errors that say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: check the path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a brain.pth-style checkpoint: it needs the keys "
            f"{list(REQUIRED_KEYS)}, found {found}"
        )
    return state


def _check_hyperparams(hparams: dict, path: Path) -> dict:
    if not isinstance(hparams, dict):
        raise ValueError(
            f"{path}: 'hyperparams' must be a dict of the model's constructor arguments, got "
            f"{type(hparams).__name__}"
        )
    known = set(inspect.signature(DenseReference).parameters)
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ValueError(
            f"{path}: hyperparams {unknown} are not arguments of the article's model "
            f"(known: {sorted(known)})"
        )
    return dict(hparams)


def _load_strict(model: nn.Module, state_dict: dict, path: Path) -> None:
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{path}: the weights do not fit a model built from the file's hyperparams "
            f"(another architecture, or edited hyperparams?): {err}"
        ) from err


def save_article_checkpoint(
    path: str | os.PathLike,
    model: CortexNet | DenseReference,
    *,
    epoch: int = 0,
    loss: float = float("nan"),
    optimizer_state_dict: dict | None = None,
) -> Path:
    """Write ``model`` as the article's ``brain.pth`` (``BrainNetwork`` keys), atomically.

    An optimizer state only makes sense for the module it came from; it is stored as given.
    """
    ref = model.to_reference() if isinstance(model, CortexNet) else model
    state = {
        "epoch": epoch,
        "model_state_dict": ref.state_dict(),
        "optimizer_state_dict": optimizer_state_dict or {},
        "loss": loss,
        "hyperparams": dict(ref.hparams),
    }
    return atomic_save(state, path)


def load_article_checkpoint(
    path: str | os.PathLike, *, map_location: Any = "cpu", **flags
) -> CortexNet:
    """A ``CortexNet`` from a ``brain.pth`` file, in the article's keys or ``CortexNet``'s.

    Args:
        path: ``.pth`` file holding at least ``model_state_dict`` and ``hyperparams``.
        map_location: as in :func:`torch.load`.
        **flags: ``CortexNet`` keyword-only options (they are not stored in the file).
    """
    path = Path(path)
    state = read_checkpoint(path, map_location)
    hparams = _check_hyperparams(state["hyperparams"], path)
    weights = state["model_state_dict"]
    if not isinstance(weights, dict):
        raise ValueError(
            f"{path}: 'model_state_dict' must be a state dict, got {type(weights).__name__}"
        )
    if "adj_struct" not in weights and "edge_index" not in weights:
        raise ValueError(
            f"{path}: model_state_dict has neither 'adj_struct' (the article's BrainNetwork) "
            f"nor 'edge_index' (CortexNet): it holds another architecture's weights"
        )
    try:
        if "adj_struct" in weights:  # the article's BrainNetwork layout
            model = DenseReference(**hparams)
        else:
            model = CortexNet(**hparams, edge_index=weights["edge_index"], **flags)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: its hyperparams {hparams} (with flags {flags}) do not build a model: {err}"
        ) from err
    _load_strict(model, weights, path)
    if isinstance(model, DenseReference):
        return CortexNet.from_reference(model, **flags).eval()
    return model.eval()
