"""Links of a neuron network as an ``edge_index``: checks, the article's toggle, generators.

The article keeps, per neuron, a list of the neurons it sends to; :meth:`Network.link`
appends a target, or removes it when it is already there. Here the links are an
``edge_index`` (row 0 the sender ``j``, row 1 the receiver ``i``) in *link order*: grouped
by sender in neuron order, each sender's receivers in the order its list would hold them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph import check_edge_index


def check_links(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` as a ``[2, E]`` long tensor, checked by the package's one validator.

    :func:`cortexgnn.graph.check_edge_index` checks the graphs of both systems; this
    adapter only widens what a neuron network accepts before it: a list, an empty list of
    links, any integer dtype (files and the article's ``link`` calls hold small integers).
    """
    if not isinstance(edge_index, Tensor):
        edge_index = torch.as_tensor(edge_index)
    if edge_index.numel() == 0:
        return edge_index.reshape(2, 0).long()
    kind = edge_index.dtype
    if not (kind.is_floating_point or kind.is_complex or kind == torch.bool):
        edge_index = edge_index.long()  # int8 ... int64, uint8: neuron indices
    return check_edge_index(edge_index, num_nodes)


def toggle_links(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The links left after calling the article's ``link(j, i)`` for every column in order.

    A pair linked an even number of times is gone; a pair linked an odd number of times sits
    where its last ``link`` call appended it. The result is in link order.

    Args:
        edge_index: ``[2, E]`` link calls in the order they are made.
        num_nodes: number of neurons ``N``.

    Returns:
        ``[2, E']`` links in link order.
    """
    edge_index = check_links(edge_index, num_nodes)
    num_calls = edge_index.size(1)
    if num_calls == 0:
        return edge_index
    key = edge_index[0] * num_nodes + edge_index[1]  # [E] one integer per ordered pair
    pairs, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    position = torch.arange(num_calls, device=key.device)  # [E]
    last = torch.full_like(pairs, -1).scatter_reduce(0, inverse, position, reduce="amax")
    keep = counts % 2 == 1  # [P]
    pairs, last = pairs[keep], last[keep]
    # sort by sender first, then by where the last call appended the receiver
    order = torch.argsort(pairs // num_nodes * num_calls + last)
    pairs = pairs[order]
    return torch.stack([pairs // num_nodes, pairs % num_nodes])  # [2, E']


def link_order(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` stably sorted by sender: link order for links given without toggles."""
    edge_index = check_links(edge_index, num_nodes)
    order = torch.sort(edge_index[0], stable=True).indices
    return edge_index[:, order]


def out_degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``[N]`` number of links leaving each neuron (the article's ``amount``)."""
    return torch.bincount(edge_index[0], minlength=num_nodes)


def random_links(
    num_nodes: int,
    out_degree: int,
    *,
    self_links: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Every neuron linked to ``out_degree`` distinct receivers drawn uniformly at random.

    Args:
        num_nodes: number of neurons ``N``.
        out_degree: links per neuron; at most ``N - 1`` (``N`` with ``self_links``).
        self_links: allow a neuron to draw itself.
        generator: random source (default: torch's global one).

    Returns:
        ``[2, N * out_degree]`` links in link order.
    """
    choices = num_nodes if self_links else num_nodes - 1
    if num_nodes < 1 or out_degree < 0 or out_degree > choices:
        raise ValueError(
            f"random_links needs 0 <= out_degree <= {max(choices, 0)} for {num_nodes} neurons, "
            f"got out_degree={out_degree}"
        )
    # draw offsets per row, redraw the rows holding a repeat until none does
    offsets = torch.randint(0, choices, (num_nodes, out_degree), generator=generator)  # [N, d]
    while out_degree > 1:
        ordered = offsets.sort(dim=1).values
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1).nonzero().flatten()
        if repeated.numel() == 0:
            break
        shape = (repeated.numel(), out_degree)
        offsets[repeated] = torch.randint(0, choices, shape, generator=generator)
    source = torch.arange(num_nodes).unsqueeze(1).expand_as(offsets)  # [N, d]
    shift = 0 if self_links else 1  # offsets 1 .. N-1 never reach the sender itself
    target = (source + offsets + shift) % num_nodes  # [N, d]
    return torch.stack([source.reshape(-1), target.reshape(-1)])  # [2, N * d]


def chain_links(num_nodes: int) -> Tensor:
    """``[2, N - 1]`` links ``0 -> 1 -> ... -> N-1`` (the reflex arc's shape)."""
    source = torch.arange(num_nodes - 1)
    return torch.stack([source, source + 1])
