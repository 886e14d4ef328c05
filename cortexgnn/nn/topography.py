"""Topographic columns: where each column sits on a 2-D grid, what it reads, how it is wired.

With ``ModelConfig.patch_size`` set, the columns sit on the grid of patch positions of the
image, numbered row-major (left to right, top to bottom), and column ``r * cols + c`` reads
the ``patch_size x patch_size`` patch whose top-left pixel is ``(r * stride, c * stride)``.
:class:`Patches` cuts an image batch into those patches, nodes first, so that
:class:`~cortexgnn.nn.columns.CorticalColumns` evaluates every column on its own patch in
one batched GEMM (or the one shared column on every patch). :func:`column_graph` builds the
graph a ``ModelConfig`` asks for, over column index (the article's ring) or over the grid.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import (
    complete_graph,
    lattice_graph,
    random_graph,
    rewired_lattice_graph,
    small_world_graph,
)
from .config import ModelConfig

__all__ = [
    "Patches",
    "column_graph",
    "grid_shape",
    "image_shape",
    "patch_grid",
    "patch_stride",
]


def image_shape(config: ModelConfig) -> tuple[int, int]:
    """``(height, width)`` of the one-channel image held by ``config.in_dim`` inputs.

    ``image_height=None`` means a square image; a ``ValueError`` names an ``in_dim`` that
    is no image of that shape.
    """
    in_dim, height = config.in_dim, config.image_height
    if height is None:
        side = math.isqrt(in_dim)
        if side * side != in_dim:
            raise ValueError(
                f"in_dim={in_dim} is not a square image: set image_height to the image's "
                f"height (its width is in_dim / image_height)"
            )
        return side, side
    if in_dim % height:
        raise ValueError(
            f"image_height={height} does not divide in_dim={in_dim}: the image must hold "
            f"in_dim = height x width pixels"
        )
    return height, in_dim // height


def patch_grid(height: int, width: int, patch_size: int, stride: int) -> tuple[int, int]:
    """``(rows, cols)`` of the patch positions that tile a ``height x width`` image.

    Raises:
        ValueError: the patch exceeds the image, the stride leaves pixels that no patch
            reads (``stride > patch_size``), or the patches do not end on the image's edge.
    """
    if patch_size > min(height, width):
        raise ValueError(
            f"patch_size={patch_size} exceeds the {height} x {width} image: use a smaller patch"
        )
    if not 1 <= stride <= patch_size:
        raise ValueError(
            f"patch_stride must lie in 1..patch_size={patch_size} (a larger stride leaves "
            f"pixels that no column reads), got {stride}"
        )
    for name, side in (("height", height), ("width", width)):
        if (side - patch_size) % stride:
            raise ValueError(
                f"patches of {patch_size} at stride {stride} do not tile the image {name} "
                f"{side}: (side - patch_size) must be a multiple of the stride; choose a patch "
                f"size and stride that fit"
            )
    return (height - patch_size) // stride + 1, (width - patch_size) // stride + 1


def grid_shape(config: ModelConfig) -> tuple[int, int]:
    """``(rows, cols)`` of the columns' grid: the patch grid, or a square without patches.

    Raises:
        ValueError: ``num_columns`` does not fill the grid, named with the count that does.
    """
    num_columns = config.num_columns
    if config.patch_size is None:
        side = math.isqrt(num_columns)
        if side * side != num_columns:
            raise ValueError(
                f"a grid graph over columns that read the whole input needs a square number "
                f"of columns, got num_columns={num_columns}: use {side * side} or "
                f"{(side + 1) ** 2}, or set patch_size"
            )
        return side, side
    height, width = image_shape(config)
    rows, cols = patch_grid(height, width, config.patch_size, patch_stride(config))
    if rows * cols != num_columns:
        raise ValueError(
            f"{config.patch_size} x {config.patch_size} patches at stride "
            f"{patch_stride(config)} on the {height} x {width} image make a {rows} x {cols} "
            f"grid of columns: set num_columns={rows * cols}, got {num_columns}"
        )
    return rows, cols


def patch_stride(config: ModelConfig) -> int:
    """The stride between patches (``patch_stride``, else ``patch_size``)."""
    return config.patch_size if config.patch_stride is None else config.patch_stride


def column_graph(config: ModelConfig) -> Tensor:
    """The ``edge_index [2, E]`` of the graph ``config.graph`` over its columns.

    ``small-world``: the article's Watts-Strogatz ring over column index (``graph_k``,
    ``graph_p``); ``lattice`` and ``rewired-lattice`` (rewiring probability ``graph_p``):
    over the grid of :func:`grid_shape`; ``random``: G(n, m) with the edge count of the
    ``graph_k`` ring; ``complete``: every pair. Draws are seeded by ``graph_seed``.
    """
    num_nodes, seed = config.num_columns, config.graph_seed
    if config.graph == "small-world":
        return small_world_graph(num_nodes, config.graph_k, config.graph_p, seed=seed)
    if config.graph == "complete":
        return complete_graph(num_nodes)
    if config.graph == "random":
        # rewiring keeps the ring's edge count, so p = 0 gives it without a draw
        num_edges = small_world_graph(num_nodes, config.graph_k, 0.0).size(1) // 2
        return random_graph(num_nodes, num_edges, seed=seed)
    rows, cols = grid_shape(config)
    if config.graph == "lattice":
        return lattice_graph(rows, cols)
    return rewired_lattice_graph(rows, cols, config.graph_p, seed=seed)


class Patches(nn.Module):
    """Cut images into the columns' patches, nodes first.

    Args:
        image_shape: ``(height, width)`` of the one-channel images.
        patch_size: side of each square patch.
        stride: step between neighbouring patches (``1 .. patch_size``).

    Shapes:
        - **input:** ``[B, height * width]`` (row-major pixels).
        - **output:** ``[N, B, patch_size * patch_size]``, ``N = rows * cols`` patch
          positions in row-major order, each patch's pixels row-major.
    """

    def __init__(self, image_shape: tuple[int, int], patch_size: int, stride: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.patch_size = patch_size
        self.stride = stride
        self.grid = patch_grid(*self.image_shape, patch_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        """The patches ``[N, B, P]`` of ``x [B, height * width]``."""
        images = x.unflatten(1, (1, *self.image_shape))  # [B, 1, H, W]
        patches = F.unfold(images, self.patch_size, stride=self.stride)  # [B, P, N]
        return patches.permute(2, 0, 1)  # [N, B, P]

    def extra_repr(self) -> str:
        return (
            f"image_shape={self.image_shape}, patch_size={self.patch_size}, "
            f"stride={self.stride}, grid={self.grid}"
        )
