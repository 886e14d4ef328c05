"""Column-sharded training runs (``--column-shards P``): checks, model, checkpoints.

``torchrun --nproc_per_node P -m cortexgnn train --column-shards P ...`` splits the
columns of the per-column model over the ``P`` processes
(:class:`~cortexgnn.parallel.model.ShardedCortexNet`); every process reads the whole batch,
so the loop runs the model's own ``training_step`` on every process and the loss is the
same everywhere. ``--column-shards 1`` runs the same model in one process (no launcher).

A checkpoint is two parts: every process writes its columns into
``shards/step-<N>/`` (:func:`~cortexgnn.parallel.checkpoint.save_sharded`), then rank 0
writes ``checkpoint.pth`` as usual, without weights, naming that folder in
``sharded_state``; older folders are removed only after that. A crash while writing
therefore leaves the previous checkpoint whole. A run resumes with any process count,
with or without ``--column-shards`` (the folder reshards), and
:func:`consolidated_checkpoint` turns a sharded checkpoint into the ordinary one-file
format (``cortexgnn eval`` does it on the fly; :func:`write_consolidated` writes it).

The folder must be reachable by every process: one machine, or a shared file system.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..checkpoint import atomic_save
from ..nn.config import ModelConfig
from ..nn.model import CortexNet
from ..parallel.checkpoint import consolidated_state, load_sharded, save_sharded
from ..parallel.model import ShardedCortexNet, check_shardable

__all__ = [
    "SHARDS_FOLDER",
    "best_folder",
    "check_column_shards",
    "consolidated_checkpoint",
    "remove_old_shards",
    "restore_best",
    "restore_model",
    "save_best",
    "save_model",
    "shard_model",
    "write_consolidated",
]

SHARDS_FOLDER = "shards"


def check_column_shards(config, world_size: int) -> None:
    """Refuse a ``--column-shards`` run that cannot work, naming the fix.

    Raises:
        ValueError: ``P`` differs from the number of processes, or a setting the sharded
            model does not support (another ``--model``, ``--compile``, shared columns).
    """
    shards = config.column_shards
    if shards != world_size:
        launch = f"torchrun --nproc_per_node {shards} -m cortexgnn train --column-shards {shards}"
        raise ValueError(
            f"--column-shards {shards} splits the columns over {shards} processes, but this "
            f"run has {world_size}: launch it with `{launch} ...`"
        )
    if config.compile:
        raise ValueError("--compile is not supported with --column-shards: drop one of them")
    check_shardable(config.model_config)


def shard_model(model: CortexNet) -> ShardedCortexNet:
    """This process's columns of ``model`` (built from the same seed on every process)."""
    check_shardable(model.config)
    return ShardedCortexNet.from_model(model)


def _broadcast_path(path: Path | None) -> Path:
    """Rank 0's run folder, on every process."""
    box = [None if path is None else str(path)]
    if dist.is_initialized():
        dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def save_model(
    model: ShardedCortexNet, optimizer: torch.optim.Optimizer, out_dir: Path | None, step: int
) -> dict:
    """Write this step's shards (every process calls it).

    ``out_dir`` is the run folder on rank 0 (``None`` elsewhere). Returns the entries
    ``checkpoint.pth`` holds instead of the weights: ``sharded_state`` (the folder, relative
    to the run) and ``optimizer_param_groups`` (the learning rate the schedule reached and
    AdamW's other settings).
    """
    run = _broadcast_path(out_dir)
    relative = f"{SHARDS_FOLDER}/step-{step:09d}"
    save_sharded(model, optimizer, run / relative)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return {"sharded_state": relative, "optimizer_param_groups": groups}


def best_folder(step: int) -> str:
    """The folder, relative to the run, that holds the best step's shards."""
    return f"{SHARDS_FOLDER}/best-step-{step:09d}"


def save_best(model: ShardedCortexNet, best_state: dict, out_dir: Path | None, step: int) -> dict:
    """Write the best validation step's weights as shards (every process calls it).

    A ``--val-size`` run tests the weights of its best validation step; each process holds
    its own columns of them, so they are saved like the model, into
    ``shards/best-step-<N>/``. Returns the entry ``checkpoint.pth`` holds for them.
    """
    run = _broadcast_path(out_dir)
    relative = best_folder(step)
    current = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(best_state)
    try:
        save_sharded(model, None, run / relative)
    finally:
        model.load_state_dict(current)
    return {"best_sharded_state": relative}


def restore_best(state: dict, checkpoint: str | Path, model: nn.Module) -> dict:
    """The best validation step's weights saved by :func:`save_best`, as a state dict.

    This process's columns for a sharded ``model`` (any process count saved them), the
    whole model for a ``CortexNet``.
    """
    folder = _shards_of(state, checkpoint, "best_sharded_state", "best-step-")
    if not isinstance(model, ShardedCortexNet):
        return consolidated_state(folder, model)["model"]
    current = {name: value.clone() for name, value in model.state_dict().items()}
    load_sharded(model, None, folder)
    best = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(current)
    return best


def remove_old_shards(out_dir: Path, keep: str, keep_best: str | None = None) -> None:
    """Delete the shard folders but ``keep`` and ``keep_best`` (rank 0, once named)."""
    kept = {Path(keep).name} | ({Path(keep_best).name} if keep_best else set())
    for pattern in ("step-*", "best-step-*"):
        for folder in (out_dir / SHARDS_FOLDER).glob(pattern):
            if folder.name not in kept and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)


def _shards_of(
    state: dict, checkpoint: str | Path, key: str = "sharded_state", prefix: str = "step-"
) -> Path:
    relative = state.get(key)
    parts = Path(str(relative)).parts
    if (
        not isinstance(relative, str)
        or len(parts) != 2
        or parts[0] != SHARDS_FOLDER
        or not parts[1].startswith(prefix)
    ):  # a name inside the run folder, never a path out of it
        raise ValueError(f"{checkpoint}: {key!r} must name {SHARDS_FOLDER}/{prefix}N")
    return Path(checkpoint).parent / relative


def restore_model(
    state: dict, checkpoint: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Load model and optimizer from a checkpoint dict, sharded or not, into either model.

    A sharded model loads a sharded checkpoint directly (any process count saved it); a
    single-process ``CortexNet`` loads one through :func:`consolidated_state`.

    Raises:
        ValueError: a one-file checkpoint for a sharded model (resume it without
            ``--column-shards`` first), or a shard folder that does not fit.
    """
    if "sharded_state" not in state:
        if isinstance(model, ShardedCortexNet):
            raise ValueError(
                f"{checkpoint} is a one-process checkpoint: --column-shards resumes only runs "
                f"saved with --column-shards (any P); resume this one without the flag"
            )
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        return
    folder = _shards_of(state, checkpoint)
    groups = state.get("optimizer_param_groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError(f"{checkpoint}: 'optimizer_param_groups' does not fit this optimizer")
    for group, saved in zip(optimizer.param_groups, groups, strict=True):
        group.update({k: v for k, v in saved.items() if k in group and k != "params"})
    if isinstance(model, ShardedCortexNet):
        load_sharded(model, optimizer, folder)
        return
    whole = consolidated_state(folder, model)
    model.load_state_dict(whole["model"])
    params = dict(model.named_parameters())
    for key, value in whole["optim"].items():
        name, slot = key.rsplit(".", 1)
        optimizer.state[params[name]][slot] = value


def consolidated_checkpoint(state: dict, checkpoint: str | Path) -> dict:
    """A sharded checkpoint dict with the whole model's weights in ``model_state_dict``."""
    if "sharded_state" not in state:
        return state
    try:
        template = CortexNet(ModelConfig.from_dict(state.get("model_config")))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{checkpoint}: its model_config does not build a model: {err}") from err
    whole = consolidated_state(_shards_of(state, checkpoint), template)["model"]
    state = {k: v for k, v in state.items() if k != "sharded_state"}
    state["model_state_dict"] = whole
    return state


def write_consolidated(checkpoint: str | Path, out: str | Path) -> Path:
    """Write ``checkpoint`` (sharded) as one ordinary file ``out`` (weights, no optimizer)."""
    from ..checkpoint import read_checkpoint

    state = consolidated_checkpoint(read_checkpoint(checkpoint), checkpoint)
    state.pop("optimizer_state_dict", None)
    return atomic_save(state, out)
