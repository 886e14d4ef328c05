"""``ColumnAttentionConv``: scaled dot-product attention of each node over its in-neighbours."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

__all__ = ["ColumnAttentionConv"]


class ColumnAttentionConv(MessagePassing):
    r"""Dot-product attention over incoming edges, with per-node or shared query/key.

    For every target node :math:`i`, head :math:`h` and in-neighbour :math:`j \in
    \mathcal{N}(i)` (edge :math:`j \to i`):

    .. math::
        s_{ij}^{h} = \frac{(Q_i^{h} x_i)^\top (K_i^{h} x_j)}{\sqrt{C}}
                   = \frac{\tilde q_i^{h\top} x_j}{\sqrt{C}},\qquad
        \tilde q_i^{h} = K_i^{h\top} Q_i^{h} x_i,

    .. math::
        \alpha_{ij}^{h} = \operatorname{softmax}_{j \in \mathcal{N}(i)} s_{ij}^{h},\qquad
        x_i'^{h} = \sum_{j \in \mathcal{N}(i)} w_{ji}\, \alpha_{ij}^{h}\, x_j,

    where :math:`w_{ji}` is the optional edge weight (1 without it). With per-node weights
    (``num_nodes`` given) node :math:`i` owns :math:`Q_i, K_i`, as each cortical column does
    in the article; otherwise all nodes share one pair. The key projection is folded into
    the query (:math:`\tilde q_i`), so an edge costs one dot product and no key is ever
    projected per edge. Values are the raw neighbour features, so the output of a head has
    ``in_channels`` features; heads are concatenated or averaged.

    A node with no incoming edge receives a zero message. (The article masks scores with
    ``-1e9`` instead, so such a column would attend uniformly over *all* columns;
    Watts-Strogatz graphs with ``k >= 2`` never contain one, so both agree there.)

    Args:
        in_channels: node feature size ``F``.
        out_channels: query/key size ``C`` per head (the attention width).
        heads: number of attention heads ``H``.
        concat: concatenate heads (output ``H * F``) or average them (output ``F``).
        num_nodes: give it to learn one query/key pair per node; ``None`` shares one pair
            across all nodes (any graph size).
        dropout: dropout probability on the attention coefficients in training mode.

    Shapes:
        - **input:** node features ``x`` of shape ``[N, F]``, or ``[N, B, F]`` for a batch
          of ``B`` feature sets on one static graph (nodes first);
          ``edge_index [2, E]``; ``edge_weight [E]`` (optional).
        - **output:** ``[N, H * F]`` or ``[N, B, H * F]`` (``[..., F]`` if
          ``concat=False``); with ``return_attention_weights=True`` also
          ``(edge_index [2, E], alpha [E, H] or [E, B, H])``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        heads: int = 1,
        concat: bool = True,
        num_nodes: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(aggr="add", node_dim=0)
        if in_channels < 1 or out_channels < 1 or heads < 1:
            raise ValueError(
                f"in_channels, out_channels and heads must be >= 1, got {in_channels}, "
                f"{out_channels}, {heads}"
            )
        if num_nodes is not None and num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1 or None (shared weights), got {num_nodes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.num_nodes = num_nodes
        self.dropout = dropout
        # Weights are stored like nn.Linear's, [out, in], with a leading node dim when per-node.
        lead = () if num_nodes is None else (num_nodes,)
        self.query_weight = torch.nn.Parameter(
            torch.empty(*lead, heads * out_channels, in_channels)
        )
        self.key_weight = torch.nn.Parameter(torch.empty(*lead, heads * out_channels, in_channels))
        self._alpha: Tensor | None = None  # set by message(), read back in forward()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw query and key weights as ``nn.Linear`` does: ``U(-1/sqrt(F), 1/sqrt(F))``."""
        super().reset_parameters()
        bound = 1.0 / math.sqrt(self.in_channels)
        torch.nn.init.uniform_(self.query_weight, -bound, bound)
        torch.nn.init.uniform_(self.key_weight, -bound, bound)

    def _check_inputs(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(
                f"x must be [N, F] or [N, B, F] (nodes first), got shape {tuple(x.shape)}; "
                f"a [B, N, F] batch needs x.transpose(0, 1)"
            )
        if x.size(-1) != self.in_channels:
            raise ValueError(
                f"x has {x.size(-1)} features in its last dim, but in_channels={self.in_channels}"
            )
        if self.num_nodes is not None and x.size(0) != self.num_nodes:
            raise ValueError(
                f"this layer has per-node weights for num_nodes={self.num_nodes} nodes, got "
                f"x with {x.size(0)} nodes in dim 0 (nodes first); build it with "
                f"num_nodes=None to share weights across graphs of any size"
            )
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        if edge_index.dtype not in (torch.long, torch.int32):
            raise ValueError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
        if edge_index.numel() > 0:
            low, high = int(edge_index.min()), int(edge_index.max())
            if low < 0 or high >= x.size(0):
                raise ValueError(
                    f"edge_index refers to nodes {low}..{high}, but x has {x.size(0)} nodes"
                )
        if edge_weight is not None and edge_weight.shape != (edge_index.size(1),):
            raise ValueError(
                f"edge_weight must have shape [E] = [{edge_index.size(1)}], got "
                f"{tuple(edge_weight.shape)}"
            )

    def folded_query(self, x: Tensor) -> Tensor:
        r"""Per-node folded query :math:`\tilde q_i^h = K_i^{h\top} Q_i^h x_i`.

        Args:
            x: ``[N, B, F]`` node features.

        Returns:
            ``[N, B, H, F]``.
        """
        heads, channels = self.heads, self.out_channels
        if self.num_nodes is None:
            q = x @ self.query_weight.t()  # [N, B, H*C]
            key = self.key_weight.unflatten(0, (heads, channels))  # [H, C, F]
            return torch.einsum("nbhc,hcf->nbhf", q.unflatten(-1, (heads, channels)), key)
        q = torch.bmm(x, self.query_weight.transpose(1, 2))  # [N, B, H*C]
        if heads == 1:
            return torch.bmm(q, self.key_weight).unsqueeze(2)  # [N, B, 1, F]
        key = self.key_weight.unflatten(1, (heads, channels))  # [N, H, C, F]
        return torch.einsum("nbhc,nhcf->nbhf", q.unflatten(-1, (heads, channels)), key)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over incoming edges; see the class docstring for shapes."""
        self._check_inputs(x, edge_index, edge_weight)
        single = x.dim() == 2
        h = x.unsqueeze(1) if single else x  # [N, B, F]
        query = self.folded_query(h)  # [N, B, H, F]
        out = self.propagate(edge_index, x=h, query=query, edge_weight=edge_weight)  # [N, B, H, F]
        alpha = self._alpha
        self._alpha = None
        out = out.flatten(-2) if self.concat else out.mean(dim=-2)  # [N, B, H*F] or [N, B, F]
        if single:
            out, alpha = out.squeeze(1), alpha.squeeze(1)  # [N, *], [E, H]
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def message(
        self,
        x_j: Tensor,
        query_i: Tensor,
        edge_weight: Tensor | None,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        """Per-edge weighted neighbour features.

        Args:
            x_j: ``[E, B, F]`` source features.
            query_i: ``[E, B, H, F]`` folded queries of the targets.
            edge_weight: ``[E]`` or ``None``.
            index: ``[E]`` target of each edge (filled in by PyG).
            ptr: CSR pointer of the targets when PyG has one, else ``None``.
            size_i: number of target nodes.

        Returns:
            ``[E, B, H, F]``.
        """
        # (Q_i x_i).(K_i x_j) = (K_i^T Q_i x_i).x_j: one dot product per edge and head.
        score = (query_i * x_j.unsqueeze(2)).sum(-1) / math.sqrt(self.out_channels)  # [E, B, H]
        alpha = softmax(score, index, ptr, size_i, dim=0)  # [E, B, H]
        self._alpha = alpha
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        if edge_weight is not None:
            alpha = alpha * edge_weight.view(-1, 1, 1)
        return alpha.unsqueeze(-1) * x_j.unsqueeze(2)  # [E, B, H, F]

    def __repr__(self) -> str:
        weights = "shared" if self.num_nodes is None else f"num_nodes={self.num_nodes}"
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}, {weights})"
        )
