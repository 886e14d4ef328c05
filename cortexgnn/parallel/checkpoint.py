"""Sharded, reshardable checkpoints of :class:`ShardedCortexNet` and its optimizer.

Saved with :mod:`torch.distributed.checkpoint` (DCP) into a folder: every process writes
its own columns, so no process ever holds the whole model. Each column-sharded tensor is
a DTensor ``Shard(dim)`` of its whole shape (the contiguous ranges of
:func:`~cortexgnn.parallel.plan.column_bounds` are DTensor's chunks), which is what lets
DCP load a folder written by ``P`` processes into ``P'`` (resharding); ``P' = 1`` needs no
process group at all. The edge weights (``E`` numbers, a different split) and the small
replicated readout are saved whole. Keys are :class:`~cortexgnn.CortexNet`'s state-dict
names under ``model.``, and ``optim.<name>.<exp_avg|exp_avg_sq|step>`` for AdamW's state,
so :func:`consolidated_state` turns a folder into a plain ``CortexNet`` state dict (what
``cortexgnn eval`` and the article's ``brain.pth`` take).

Reading is safe by construction: DCP's own reader unpickles the ``.metadata`` file with
:mod:`pickle`; :class:`SafeReader` reads it with torch's weights-only unpickler, allowing
only DCP's metadata classes, and tensors load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import Tensor, nn
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.tensor import DTensor, Shard

from ..nn.model import CortexNet
from .model import ShardedCortexNet

__all__ = [
    "SafeReader",
    "consolidated_state",
    "load_sharded",
    "save_sharded",
]

_ADAM_KEYS = ("exp_avg", "exp_avg_sq", "step")


class _MetadataUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds DCP's metadata classes, torch sizes and dtypes only."""

    def find_class(self, module: str, name: str):
        if module.startswith("torch.distributed.checkpoint.") and name in _METADATA_CLASSES:
            return super().find_class(module, name)
        if module == "torch" and name == "Size":
            return torch.Size
        if module == "torch" and isinstance(getattr(torch, name, None), _TORCH_VALUES):
            return getattr(torch, name)
        if (module, name) in _PLAIN_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a checkpoint's metadata")


_METADATA_CLASSES = frozenset(
    {
        "Metadata",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "TensorProperties",
        "StorageMeta",
        "MetadataIndex",
        "_MEM_FORMAT_ENCODING",
        "_StorageInfo",
    }
)
_TORCH_VALUES = (torch.dtype, torch.layout, torch.memory_format)
# containers and the layout/path rebuilders the metadata uses (no code runs beyond them)
_PLAIN_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch.serialization", "_get_layout"),
        ("pathlib", "PosixPath"),
        ("pathlib", "PurePosixPath"),
    }
)


class SafeReader(dcp.FileSystemReader):
    """DCP's file reader, whose metadata unpickler rebuilds DCP's own classes only."""

    def read_metadata(self, *args, **kwargs) -> dcp_metadata.Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            try:
                metadata = _MetadataUnpickler(stream).load()
            except Exception as err:  # any unpickling failure: the file is not DCP metadata
                raise ValueError(
                    f"{path} is not a checkpoint's metadata this reader trusts ({err}): use a "
                    f"folder written by cortexgnn"
                ) from None
        if not isinstance(metadata, dcp_metadata.Metadata):
            raise ValueError(f"{path} holds no checkpoint metadata")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = dcp_metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def _mesh(model: ShardedCortexNet):
    from torch.distributed.device_mesh import DeviceMesh

    device = model.edge_weight.device.type
    group = model.group if model.group is not None else dist.group.WORLD
    return DeviceMesh.from_group(group, device)


def _global(model: ShardedCortexNet, name: str, local: Tensor, mesh) -> Tensor:
    """The entry ``name`` as DCP should see it: a DTensor shard, or the whole tensor."""
    plan = model.plan
    dim = model.shard_dims.get(name)
    if name == "edge_weight":
        return _gather_edges(model, local)
    if dim is None or plan.world_size == 1:
        return local
    shape = list(local.shape)
    shape[dim] = plan.num_nodes
    stride = torch.empty(shape, device="meta").stride()
    return DTensor.from_local(
        local, mesh, [Shard(dim)], run_check=False, shape=torch.Size(shape), stride=stride
    )


def _gather_edges(model: ShardedCortexNet, local: Tensor) -> Tensor:
    """All edge values ``[E]`` from every process's slice ``[E_local]``."""
    if model.plan.world_size == 1:
        return local
    count = torch.tensor(local.numel(), device=local.device)  # NCCL gathers device tensors
    sizes = [torch.zeros_like(count) for _ in range(model.plan.world_size)]
    dist.all_gather(sizes, count, group=model.group)
    largest = int(max(sizes))
    padded = local.new_zeros(largest)
    padded[: local.numel()] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=model.group)
    return torch.cat([part[: int(size)] for part, size in zip(parts, sizes, strict=True)])


def _state(
    model: ShardedCortexNet, optimizer: torch.optim.Optimizer | None, with_optimizer_keys=None
) -> dict[str, Tensor]:
    """The DCP state dict of ``model`` (and ``optimizer``): see the module docstring."""
    mesh = _mesh(model) if model.plan.world_size > 1 else None
    state = {
        f"model.{name}": _global(model, name, value, mesh)
        for name, value in model.state_dict().items()
    }
    state["model.edge_index"] = model.global_edge_index
    if optimizer is None:
        return state
    names = _names(model)
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            slots = optimizer.state.get(param)
            if with_optimizer_keys is not None:  # loading: fill the slots the file has
                keys = [k for k in _ADAM_KEYS if f"optim.{name}.{k}" in with_optimizer_keys]
                if not keys:
                    continue
                slots = optimizer.state[param]
                for key in keys:
                    if key not in slots:
                        slots[key] = (
                            torch.zeros((), dtype=torch.float32)
                            if key == "step"
                            else torch.zeros_like(param)
                        )
            if not slots:
                continue
            for key in _ADAM_KEYS:
                value = slots[key]
                if key != "step":
                    value = _global(model, name, value, mesh)
                state[f"optim.{name}.{key}"] = value
    return state


def save_sharded(
    model: ShardedCortexNet, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike
) -> Path:
    """Write the model's and optimizer's shards into the folder ``path`` (all processes).

    Every process of the model's group must call it with the same ``path`` (a folder they
    all reach: one machine, or a shared file system).
    """
    path = Path(path)
    state = _state(model, optimizer)
    with _alone():
        dcp.save(state, checkpoint_id=path, process_group=model.group,
                 no_dist=model.plan.world_size == 1)  # fmt: skip
    return path


@contextlib.contextmanager
def _alone():
    """Silence DCP's warning that a process without a group saves or loads alone."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def _keys(path: Path) -> set[str]:
    return set(SafeReader(path).read_metadata().state_dict_metadata)


def load_sharded(
    model: ShardedCortexNet, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike
) -> None:
    """Load a folder of :func:`save_sharded` (written by any number of processes).

    Every process of the model's group calls it; each reads its own columns.

    Raises:
        ValueError: the folder holds another model (other shapes or graph).
    """
    path = Path(path)
    keys = _keys(path)
    state = _state(model, optimizer, with_optimizer_keys=keys)
    missing = sorted(set(state) - keys)
    if missing:
        raise ValueError(f"{path} lacks {missing}: it was saved from another model")
    try:
        with _alone():
            dcp.load(state, storage_reader=SafeReader(path), process_group=model.group,
                     no_dist=model.plan.world_size == 1)  # fmt: skip
    except (Exception, CheckpointException) as err:  # DCP's shape mismatches
        raise ValueError(f"{path} does not fit this model: {err}") from None
    if not torch.equal(state["model.edge_index"], model.global_edge_index):
        raise ValueError(f"{path} was saved with another column graph: build the same model")
    model.load_state_dict(
        {name: _local(model, name, state[f"model.{name}"]) for name in model.state_dict()}
    )
    if optimizer is None:
        return
    names = _names(model)
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            for key in _ADAM_KEYS:
                value = state.get(f"optim.{name}.{key}")
                if value is not None:
                    value = value if key == "step" else _local(model, name, value)
                    optimizer.state[param][key] = value.clone()


def _local(model: ShardedCortexNet, name: str, value: Tensor) -> Tensor:
    """This process's part of a loaded entry: a DTensor's shard, a slice of the edges."""
    if isinstance(value, DTensor):
        return value.to_local()
    if name == "edge_weight":
        first, last = model.plan.edge_range
        return value[first:last]
    return value  # replicated (or a single process's whole tensor)


def consolidated_state(path: str | os.PathLike, model: CortexNet) -> dict:
    """The whole model's (and optimizer's) tensors from a sharded folder, in one process.

    Args:
        path: a folder of :func:`save_sharded`.
        model: a :class:`~cortexgnn.CortexNet` of the saved settings (its tensors give the
            shapes; they are not changed).

    Returns:
        ``{"model": CortexNet state dict, "optim": {"<name>.<slot>": tensor}}``.
    """
    path = Path(path)
    keys = _keys(path)
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    for key in keys:
        if key.startswith("optim."):
            name, slot = key[len("optim.") :].rsplit(".", 1)
            if name not in params or slot not in _ADAM_KEYS:
                raise ValueError(f"{path} holds an unknown entry {key!r}")
            like = params[name]
            state[key] = (
                torch.zeros((), dtype=torch.float32) if slot == "step" else torch.zeros_like(like)
            )
    missing = sorted(k for k in state if k not in keys)
    if missing:
        raise ValueError(f"{path} lacks {missing}: it was saved from another model")
    try:
        with _alone():
            dcp.load(state, storage_reader=SafeReader(path), no_dist=True)
    except (Exception, CheckpointException) as err:
        raise ValueError(f"{path} does not fit this model: {err}") from None
    return {
        "model": {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")},
        "optim": {k[len("optim.") :]: v for k, v in state.items() if k.startswith("optim.")},
    }
