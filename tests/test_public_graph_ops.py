"""Every exported function or layer that takes a graph refuses indices out of range.

Nothing from Python may reach the C++ kernel (or an unchecked index) with a source or target
outside ``0..N-1``: each public entry point runs :func:`cortexgnn.graph.check_edge_index`.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import cortexgnn
from cortexgnn import (
    ColumnAttentionConv,
    CortexNet,
    ModelConfig,
    attention_graph,
    check_edge_index,
    edge_index_to_dense,
    folded_attention,
    hebbian_delta,
    hebbian_update_,
    sort_by_target,
    weighted_neighbour_sum,
)

N = 6
GOOD = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
# each bad graph swaps one index of GOOD for an out-of-range or negative node
BAD = {
    "source N+1": (0, 0, N + 1),
    "source 10^8": (0, 1, 10**8),
    "target N": (1, 2, N),
    "target 10^8": (1, 3, 10**8),
    "negative source": (0, 4, -1),
    "negative target": (1, 5, -3),
}


def bad_graph(case):
    row, column, value = BAD[case]
    edge_index = GOOD.clone()
    edge_index[row, column] = value
    return edge_index


def _folded_attention_on_a_hand_built_graph(edge_index):
    """``folded_attention`` cannot be handed raw edges: forge the CSR of a valid graph."""
    good = attention_graph(GOOD, N)
    source, target = edge_index
    forged = dataclasses.replace  # runs AttentionGraph.__post_init__, the check
    query, x = torch.randn(N, 1, 1, 3), torch.randn(N, 1, 3)
    graph = forged(good, col=source[good.order], dst=target[good.order])
    return folded_attention(query, x, graph, scale=1.0)


def _conv(fused):
    return lambda edge_index: ColumnAttentionConv(3, 3, fused=fused)(torch.randn(N, 3), edge_index)


OPS = {
    "check_edge_index": lambda ei: check_edge_index(ei, N),
    "attention_graph": lambda ei: attention_graph(ei, N),
    "folded_attention": _folded_attention_on_a_hand_built_graph,
    "weighted_neighbour_sum": lambda ei: weighted_neighbour_sum(
        torch.randn(N, 2, 3), ei, torch.ones(6)
    ),
    "hebbian_delta": lambda ei: hebbian_delta(ei, torch.randn(N, 2, 3), torch.randn(N, 2, 3)),
    "hebbian_update_": lambda ei: hebbian_update_(
        torch.zeros(6), ei, torch.randn(N, 2, 3), torch.randn(N, 2, 3), 0.1
    ),
    "sort_by_target": lambda ei: sort_by_target(ei, N),
    "edge_index_to_dense": lambda ei: edge_index_to_dense(ei, N),
    "ColumnAttentionConv (fused)": _conv(True),
    "ColumnAttentionConv (unfused)": _conv(False),
    "CortexNet": lambda ei: CortexNet(
        ModelConfig(num_columns=N, in_dim=3, col_out=4, graph_k=2), edge_index=ei
    ),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_public_graph_op_refuses_out_of_range_and_negative_nodes(op):
    for case in BAD:
        with pytest.raises(ValueError, match="edge_index refers to"):
            OPS[op](bad_graph(case))
    OPS[op](GOOD)  # and the valid graph runs


def test_every_exported_name_that_takes_a_graph_is_covered_above():
    takes_graph = set()
    for name in cortexgnn.__all__:
        value = getattr(cortexgnn, name)
        if not callable(value):
            continue
        target = value.forward if isinstance(value, type) and hasattr(value, "forward") else value
        parameters = set(inspect.signature(target).parameters)
        if isinstance(value, type):
            parameters |= set(inspect.signature(value.__init__).parameters)
        if parameters & {"edge_index", "graph"}:
            takes_graph.add(name)
    covered = {op.split(" ")[0] for op in OPS}
    assert takes_graph <= covered, takes_graph - covered


def test_the_wrong_dtype_or_shape_is_refused_before_the_kernel():
    with pytest.raises(ValueError, match="dtype"):
        attention_graph(GOOD.float(), N)
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        attention_graph(GOOD.t(), N)
    with pytest.raises(ValueError, match="num_nodes"):
        attention_graph(GOOD, 0)
    good = attention_graph(GOOD, N)
    with pytest.raises(ValueError, match="ptr"):
        dataclasses.replace(good, ptr=good.ptr.flip(0))
    with pytest.raises(ValueError, match="edge_weight"):
        folded_attention(
            torch.randn(N, 1, 1, 3), torch.randn(N, 1, 3), good, torch.ones(5), scale=1.0
        )
