"""Saving and loading neuron networks: plain tensors in a file read as data.

The article's GUI saved and loaded models; here a model is one ``torch.save`` file of plain
tensors, strings and numbers (parameters, links in link order, state, flags, names),
loaded with ``weights_only=True`` so no file can run code on load. A file without the
format tag below is refused with a ``ValueError``.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import torch

from cortexgnn._limits import DEFAULT_MAX_ELEMENTS, check_elements
from cortexgnn.neurons.network import PARAMETERS, STATE, NeuronNetwork

FORMAT = "cortexgnn.neurons"
VERSION = 1
_REQUIRED = ("num_nodes", "batch_shape", "names", "synchronous_delivery", "copy_synapse",
             "edge_index")  # fmt: skip
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


def check_network_size(
    num_nodes: int,
    batch_shape: tuple[int, ...],
    num_links: int,
    max_elements: int,
    *,
    what: str,
    fix: str,
) -> None:
    """Refuse a network whose neurons, copies and links would need more than ``max_elements``.

    Every neuron of every copy holds about 20 numbers (parameters and state, pairs counted
    twice); a link a handful. Checked before any tensor or name list is built.

    Raises:
        SizeLimitError: with the bytes the network would need and ``fix``.
    """
    per_copy = 2 * (len(PARAMETERS) + len(STATE))
    elements = num_nodes * math.prod(batch_shape) * per_copy + 8 * num_links
    check_elements(
        f"{what}: {num_nodes:,} neurons x copies {batch_shape} and {num_links:,} links",
        elements,
        max_elements,
        bytes_each=8,
        fix=fix,
    )


def load_network(
    path: str | Path,
    *,
    device: torch.device | str | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> NeuronNetwork:
    """Read a file written by :func:`save_network`.

    Args:
        path: the file.
        device: where the network lives.
        max_elements: the most elements the file's ``num_nodes`` and ``batch_shape`` may
            ask for beyond four times what its tensors hold (see
            :func:`check_network_size`); raise it to load a bigger network.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a cortexgnn neuron network (another format, a newer
            version, a missing entry, or damaged), or its sizes exceed ``max_elements``.
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
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise ValueError(f"{path} is a damaged neuron network file: it lacks {missing}")
    num_nodes, batch_shape = payload["num_nodes"], payload["batch_shape"]
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"{path}: num_nodes must be a positive int, got {num_nodes!r:.60}")
    if not isinstance(batch_shape, (list, tuple)) or not all(
        isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in batch_shape
    ):
        raise ValueError(
            f"{path}: batch_shape must be a list of positive ints, got {batch_shape!r:.60}"
        )
    edge_index = payload["edge_index"]
    if not isinstance(edge_index, torch.Tensor):
        raise ValueError(f"{path}: edge_index must be a tensor, got {type(edge_index).__name__}")
    # a network really that big stores its state: the limit grows with what the file holds
    stored = sum(v.numel() for v in payload.values() if isinstance(v, torch.Tensor))
    check_network_size(
        num_nodes,
        tuple(batch_shape),
        edge_index.numel() // 2,
        max(max_elements, 4 * stored),
        what=str(path),
        fix="pass max_elements= (neurons simulate --max-elements)",
    )
    values = {name: payload[name] for name in PARAMETERS + STATE if name in payload}
    network = NeuronNetwork(
        edge_index,
        num_nodes,
        batch_shape=tuple(batch_shape),
        names=payload["names"],
        dtype=_DTYPES[payload["dtype"]],
        synchronous_delivery=bool(payload["synchronous_delivery"]),
        copy_synapse=bool(payload["copy_synapse"]),
        device=device,
        **values,
    )
    return network
