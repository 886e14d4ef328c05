"""Random test graphs shared by the layer's test files."""

from __future__ import annotations

import torch


def simple_graph(num_src: int, num_dst: int, num_edges: int) -> torch.Tensor:
    """Random ``[2, E]`` edges ``j -> i`` without self loops or duplicate edges.

    A dense oracle (one mask entry per pair) and a sparse adjacency (which merges
    duplicates) both need such a graph. ``j < num_src``, ``i < num_dst``; a pair with
    ``j == i`` counts as a self loop, also in a bipartite graph.
    """
    src, dst = torch.meshgrid(torch.arange(num_src), torch.arange(num_dst), indexing="ij")
    pairs = torch.stack([src.flatten(), dst.flatten()])[:, src.flatten() != dst.flatten()]
    return pairs[:, torch.randperm(pairs.size(1))[:num_edges]]


def random_graph(num_nodes: int, num_edges: int, isolated=()) -> torch.Tensor:
    """Random ``[2, E']`` edges with repeats and self loops; targets in ``isolated`` get none."""
    edge_index = torch.randint(0, num_nodes, (2, num_edges))
    keep = ~torch.isin(edge_index[1], torch.tensor(list(isolated), dtype=torch.long))
    return edge_index[:, keep]
