"""Weight transfer between ``DenseReference`` (the article's layout) and ``CortexNet``.

The article keeps one module per column and a dense ``[C, C]`` adjacency; ``CortexNet``
stacks column weights into ``[branch, C, D, F]``, query/key into ``[C, D, D]`` and keeps
edge weights as ``[E]`` (the dense ``adj_weight`` read at ``adj[target, source]``).
Both functions copy in place, without gradients; the caller builds the destination with
the same hyper-parameters and graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .graph import edge_index_to_dense
from .nn.columns import EXCITATORY, INHIBITORY, PROJECTION

if TYPE_CHECKING:
    from .nn.model import CortexNet
    from .reference import DenseReference

__all__ = ["copy_reference_weights", "copy_cortexnet_weights"]


@torch.no_grad()
def copy_reference_weights(ref: DenseReference, model: CortexNet) -> None:
    """Copy every weight and buffer of ``ref`` into ``model`` (same graph).

    Entries of ``ref.adj_weight`` outside the graph are dropped: they never influence an
    output.
    """
    columns = model.columns
    for c, column in enumerate(ref.columns):
        columns.weight[EXCITATORY, c] = column.fc_exc.weight
        columns.weight[INHIBITORY, c] = column.fc_inh.weight
        if column.use_projection:
            columns.weight[PROJECTION, c] = column.projection.weight
        columns.norm_weight[c] = column.norm.weight
        columns.norm_bias[c] = column.norm.bias
    if model.conv is not None:
        model.conv.query_weight.copy_(torch.stack([g.query.weight for g in ref.attention_gates]))
        model.conv.key_weight.copy_(torch.stack([g.key.weight for g in ref.attention_gates]))
    source, target = model.edge_index
    model.edge_weight.copy_(ref.adj_weight[target, source])
    model.homeostasis.activity_avg.copy_(ref.activity_avg)
    model.intermediate.load_state_dict(ref.intermediate.state_dict())
    model.top_fc.load_state_dict(ref.top_fc.state_dict())


@torch.no_grad()
def copy_cortexnet_weights(model: CortexNet, ref: DenseReference) -> None:
    """Copy every weight and buffer of ``model`` into ``ref``; off-graph ``adj_weight`` is 0."""
    columns = model.columns
    for c, column in enumerate(ref.columns):
        column.fc_exc.weight.copy_(columns.weight[EXCITATORY, c])
        column.fc_inh.weight.copy_(columns.weight[INHIBITORY, c])
        if column.use_projection:
            column.projection.weight.copy_(columns.weight[PROJECTION, c])
        column.norm.weight.copy_(columns.norm_weight[c])
        column.norm.bias.copy_(columns.norm_bias[c])
    if model.conv is not None:
        for c, gate in enumerate(ref.attention_gates):
            gate.query.weight.copy_(model.conv.query_weight[c])
            gate.key.weight.copy_(model.conv.key_weight[c])
    num_nodes = model.num_columns
    ref.adj_struct.copy_(edge_index_to_dense(model.edge_index, num_nodes))
    ref.adj_weight.copy_(edge_index_to_dense(model.edge_index, num_nodes, model.edge_weight))
    ref.activity_avg = model.homeostasis.activity_avg.clone()
    ref.intermediate.load_state_dict(model.intermediate.state_dict())
    ref.top_fc.load_state_dict(model.top_fc.state_dict())
