"""Saving and loading neuron networks: plain tensors in a file read as data.

The article's GUI saved and loaded models; here a model is one ``torch.save`` file of plain
tensors, strings and numbers (parameters, links in link order, state, flags, names),
loaded with ``weights_only=True`` so no file can run code on load. A file without the
format tag below is refused with a ``ValueError``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from cortexgnn.neurons.network import PARAMETERS, STATE, NeuronNetwork

FORMAT = "cortexgnn.neurons"
VERSION = 1
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}  # fmt: skip


def save_network(network: NeuronNetwork, path: str | Path) -> Path:
    """Write ``network`` (parameters, links in order, state, flags, names) to ``path``."""
    aliased = network.last_state is network.current_state
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "num_nodes": network.num_nodes,
        "batch_shape": list(network.batch_shape),
        "names": list(network.names),
        "dtype": str(network.dtype).removeprefix("torch."),
        "synchronous_delivery": network.synchronous_delivery,
        "copy_synapse": network.copy_synapse,
        "edge_index": network.edge_index.cpu(),
        "last_state_is_current_state": aliased,
    }
    for name in PARAMETERS + STATE:
        if name == "last_state" and aliased:
            continue
        payload[name] = getattr(network, name).cpu()
    path = Path(path)
    torch.save(payload, path)
    return path


def load_network(path: str | Path, *, device: torch.device | str | None = None) -> NeuronNetwork:
    """Read a file written by :func:`save_network`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a cortexgnn neuron network (another format, a newer
            version, or damaged).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no neuron network file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{path} is not a cortexgnn neuron network file (write one with save_network or "
            f"'cortexgnn neurons simulate --save'): {type(e).__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a torch file but not a cortexgnn neuron network "
            f"(format tag {payload.get('format') if isinstance(payload, dict) else None!r})"
        )
    if payload.get("version") != VERSION:
        raise ValueError(
            f"{path} has format version {payload.get('version')}, this reads {VERSION}"
        )
    if payload.get("dtype") not in _DTYPES:
        raise ValueError(f"{path} stores an unknown dtype {payload.get('dtype')!r}")
    values = {name: payload[name] for name in PARAMETERS + STATE if name in payload}
    network = NeuronNetwork(
        payload["edge_index"],
        int(payload["num_nodes"]),
        batch_shape=tuple(payload["batch_shape"]),
        names=payload["names"],
        dtype=_DTYPES[payload["dtype"]],
        synchronous_delivery=bool(payload["synchronous_delivery"]),
        copy_synapse=bool(payload["copy_synapse"]),
        device=device,
        **values,
    )
    return network
