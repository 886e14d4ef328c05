r"""The transmitter delivery of one sweep as a PyG message-passing step.

Every sweep each neuron ``j`` hands each of its ``k_j`` receivers the same share of what it
sends, so a receiver ``i`` gets

.. math::
    \mathbf{d}_i \mathrel{+}= \sum_{j \to i} \frac{1}{k_j} \mathbf{s}_j ,

with :math:`\mathbf{s}_j` the sender's pair (``[N, *, 2]`` flattened to ``[N, F]``). The
share ``1 / k_j`` is the edge weight, so the sum is one sparse-dense product over the
receiver-by-sender adjacency (PyG's fused ``message_and_aggregate``); ``message`` states
the same thing edge by edge for PyG's unfused path.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .._pyg import import_pyg

import_pyg()  # PyG's import-time deprecation warning, silenced once

from torch_geometric.nn import MessagePassing
from torch_geometric.utils import spmm


def delivery_adjacency(edge_index: Tensor, edge_weight: Tensor, num_nodes: int) -> Tensor:
    """``[N, N]`` sparse CSR matrix, row ``i`` receiver, column ``j`` sender, value ``w_ji``.

    ``edge_index`` must hold each pair at most once (links after the article's toggle do).
    """
    order = torch.sort(edge_index[1] * num_nodes + edge_index[0]).indices  # rows, then columns
    counts = torch.bincount(edge_index[1], minlength=num_nodes)  # [N]
    crow = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():  # torch calls its sparse CSR support beta
        warnings.simplefilter("ignore", UserWarning)
        # int32 indices where they fit: the CPU product converts int64 ones on every call
        index = torch.int32 if edge_index.size(1) < 2**31 and num_nodes < 2**31 else torch.long
        return torch.sparse_csr_tensor(
            crow.to(index), edge_index[0, order].to(index), edge_weight[order],
            (num_nodes, num_nodes),
        )  # fmt: skip


def deliver_into(
    out: Tensor, x: Tensor, edge_index: Tensor, edge_weight: Tensor, scale: float = 1.0
) -> Tensor:
    """``out_i += scale * sum_{j->i} w_ji x_j`` over the given links, in place.

    The gather and scatter-add of PyG's ``propagate`` with ``aggr="sum"``, accumulated into
    an existing ``out`` instead of a fresh zero tensor: the cost is that of the links
    given, not of ``N``.

    Shapes:
        - out: ``[N, F]``; x: ``[N, F]``; edge_index: ``[2, E_S]``; edge_weight: ``[E_S]``.
    """
    messages = x.index_select(0, edge_index[0]) * (edge_weight * scale).unsqueeze(-1)  # [E_S, F]
    return out.index_add_(0, edge_index[1], messages)


class TransmitterDelivery(MessagePassing):
    """Sum of weighted sender pairs into each receiver: ``out_i = sum_{j->i} w_ji x_j``.

    Shapes:
        - x: ``[N, F]`` what each neuron sends (``F = prod(*) * 2`` for ``[N, *, 2]`` pairs).
        - adj_t: ``[N, N]`` sparse CSR from :func:`delivery_adjacency`, or an ``edge_index``
          ``[2, E]`` with ``edge_weight [E]``.
        - output: ``[N, F]``.
    """

    def __init__(self) -> None:
        super().__init__(aggr="sum", node_dim=0)

    def forward(self, x: Tensor, adj_t: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return self.propagate(adj_t, x=x, edge_weight=edge_weight, size=(x.size(0), x.size(0)))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j  # [E, F]

    def message_and_aggregate(self, adj_t: Tensor, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce="sum")  # [N, F]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
