"""Baselines that ask whether the column network's biology earns its parameters.

- :class:`MLP`: one hidden layer, ``in_dim -> hidden -> classes`` (ReLU, dropout); sized
  either small (``hidden=256``) or, with :func:`matched_hidden_size`, to the parameter count
  of a ``CortexNet``.
- :func:`single_column_config`: one cortical column (the same excitatory/inhibitory unit,
  LayerNorm, homeostasis and readout) that holds the whole network's parameter budget and
  has no graph.
- :class:`CNN`: two 3x3 convolution blocks and a dense hidden layer whose width
  :func:`matched_width` sizes to a parameter budget.
- :class:`PatchTransformer`: a small ViT: non-overlapping patches, a class token, a few
  pre-norm transformer layers; its width adjustable the same way.

All train through the same ``training_step`` contract as :class:`~cortexgnn.CortexNet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

__all__ = [
    "CNN",
    "MLP",
    "PatchTransformer",
    "cortexnet_num_parameters",
    "matched_hidden_size",
    "matched_width",
    "single_column_config",
]


class _Classifier(nn.Module):
    """The training contract every baseline shares with ``CortexNet``."""

    def training_step(self, batch: tuple[Tensor, Tensor], forward=None) -> Tensor:
        """Forward, cross-entropy, ``backward()``; returns the detached loss.

        ``forward`` replaces the model's own forward (a ``DistributedDataParallel`` wrapper).
        """
        x, y = batch
        loss = F.cross_entropy((forward or self)(x), y)
        loss.backward()
        return loss.detach()


def _image_side(in_dim: int) -> int:
    side = math.isqrt(in_dim)
    if side * side != in_dim:
        raise ValueError(f"in_dim must be a square image's pixel count (side * side), got {in_dim}")
    return side


class MLP(_Classifier):
    """``in_dim -> hidden -> top_out`` with ReLU and dropout; no graph, no plasticity.

    Args:
        in_dim: input features.
        hidden: hidden units.
        top_out: classes.
        dropout: dropout probability after the hidden layer.

    Shapes:
        - **input:** ``[B, in_dim]`` (or ``[B, ...]`` with ``in_dim`` elements per sample).
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(self, in_dim: int, hidden: int, top_out: int, dropout: float = 0.1) -> None:
        super().__init__()
        if min(in_dim, hidden, top_out) < 1:
            raise ValueError(
                f"in_dim, hidden and top_out must be >= 1, got {in_dim}, {hidden}, {top_out}"
            )
        self.hparams = {"in_dim": in_dim, "hidden": hidden, "top_out": top_out, "dropout": dropout}
        self.hidden = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, top_out)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]``."""
        return self.out(self.dropout(F.relu(self.hidden(x.flatten(1)))))


class CNN(_Classifier):
    """Two convolution blocks and a dense hidden layer, for one-channel square images.

    ``conv3x3(1 -> c) -> ReLU -> maxpool2 -> conv3x3(c -> 2c) -> ReLU -> maxpool2 ->
    linear(2c (side // 4)^2 -> hidden) -> ReLU -> dropout -> linear(hidden -> top_out)``,
    ``same`` padding. ``hidden`` sets the parameter count (:meth:`num_parameters`) while
    the convolutions, where the compute is, stay small.

    Args:
        in_dim: pixels of a square image (``side * side``, ``side >= 4``).
        top_out: classes.
        hidden: units of the dense layer.
        channels: channels of the first block ``c`` (the second has ``2c``).
        dropout: dropout probability before the readout.

    Shapes:
        - **input:** ``[B, in_dim]`` flattened images.
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(
        self, in_dim: int, top_out: int, hidden: int = 128, *, channels: int = 32,
        dropout: float = 0.1,
    ) -> None:  # fmt: skip
        super().__init__()
        side = _image_side(in_dim)
        if side < 4 or min(top_out, hidden, channels) < 1:
            raise ValueError(
                f"CNN needs side >= 4 and top_out, hidden, channels >= 1, got side {side}, "
                f"top_out {top_out}, hidden {hidden}, channels {channels}"
            )
        self.side = side
        self.hparams = {"in_dim": in_dim, "top_out": top_out, "hidden": hidden,
                        "channels": channels, "dropout": dropout}  # fmt: skip
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.hidden = nn.Linear(2 * channels * (side // 4) ** 2, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, top_out)

    @staticmethod
    def num_parameters(in_dim: int, top_out: int, hidden: int, *, channels: int = 32) -> int:
        """Parameters of ``CNN(in_dim, top_out, hidden, channels=channels)``, unbuilt."""
        c, cells = channels, (_image_side(in_dim) // 4) ** 2
        convs = 10 * c + (18 * c + 2) * c
        return convs + (2 * c * cells + 1) * hidden + (hidden + 1) * top_out

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]``."""
        h = x.reshape(x.size(0), 1, self.side, self.side)  # [B, 1, side, side]
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)  # [B, c, side/2, side/2]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, 2c, side/4, side/4]
        h = self.dropout(F.relu(self.hidden(h.flatten(1))))  # [B, hidden]
        return self.out(h)  # [B, top_out]


class PatchTransformer(_Classifier):
    """A small vision transformer (ViT-style) for one-channel square images.

    The image is cut into non-overlapping ``patch x patch`` patches, each embedded
    linearly to ``width`` channels; a learned class token and learned position embeddings
    are added; ``depth`` pre-norm transformer layers (``heads`` heads, MLP ``4 * width``,
    GELU) follow; the class token's final LayerNorm feeds a linear readout.

    Args:
        in_dim: pixels of a square image (``side * side``).
        top_out: classes.
        width: embedding size; a multiple of ``heads``.
        depth: transformer layers.
        heads: attention heads.
        patch: patch side; ``None`` picks 7, 4 or 2, the first that divides ``side``.
        dropout: dropout probability inside the layers.

    Shapes:
        - **input:** ``[B, in_dim]`` flattened images.
        - **output:** logits ``[B, top_out]``.
    """

    def __init__(
        self,
        in_dim: int,
        top_out: int,
        width: int = 64,
        *,
        depth: int = 4,
        heads: int = 4,
        patch: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        side = _image_side(in_dim)
        patch = patch or self.default_patch(side)
        if side % patch:
            raise ValueError(f"patch must divide the image side {side}, got {patch}")
        if min(top_out, width, depth, heads) < 1 or width % heads:
            raise ValueError(
                f"PatchTransformer needs top_out, depth, heads >= 1 and width a multiple of "
                f"heads, got top_out {top_out}, width {width}, depth {depth}, heads {heads}"
            )
        self.side, self.patch = side, patch
        self.hparams = {"in_dim": in_dim, "top_out": top_out, "width": width, "depth": depth,
                        "heads": heads, "patch": patch, "dropout": dropout}  # fmt: skip
        num_patches = (side // patch) ** 2
        self.embed = nn.Linear(patch * patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, num_patches + 1, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, top_out)
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @staticmethod
    def default_patch(side: int) -> int:
        """The patch side used when none is given: 7, 4 or 2, the first dividing ``side``."""
        return next((p for p in (7, 4, 2) if side % p == 0), 1)

    @staticmethod
    def num_parameters(
        in_dim: int, top_out: int, width: int, *, depth: int = 4, patch: int | None = None
    ) -> int:
        """Parameters of ``PatchTransformer(in_dim, top_out, width, ...)``, without building it."""
        side = _image_side(in_dim)
        patch = patch or PatchTransformer.default_patch(side)
        tokens = (side // patch) ** 2 + 1
        embed = patch * patch * width + width + tokens * width + width
        # attention (4 w^2 + 4 w), MLP (8 w^2 + 5 w), two LayerNorms (4 w)
        layer = 12 * width * width + 13 * width
        return embed + depth * layer + 2 * width + width * top_out + top_out

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, top_out]``."""
        b, p, g = x.size(0), self.patch, self.side // self.patch
        patches = x.reshape(b, g, p, g, p).permute(0, 1, 3, 2, 4).flatten(3).flatten(1, 2)
        h = self.embed(patches)  # [B, g*g, width]
        h = torch.cat([self.cls_token.expand(b, -1, -1), h], dim=1) + self.position
        h = self.encoder(h)  # [B, g*g + 1, width]
        return self.out(self.norm(h[:, 0]))  # [B, top_out]


def matched_width(count, budget: int, *, step: int = 1) -> int:
    """The width (a multiple of ``step``) whose ``count(width)`` is closest to ``budget``.

    ``count`` must grow with the width, as :meth:`CNN.num_parameters` and
    :meth:`PatchTransformer.num_parameters` do.
    """
    low, high = 1, 2
    while count(high * step) < budget:
        low, high = high, 2 * high
    while high - low > 1:  # count(low * step) < budget <= count(high * step)
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid * step) < budget else (low, mid)
    return min((low * step, high * step), key=lambda w: abs(count(w) - budget))


def cortexnet_num_parameters(config: ModelConfig, num_edges: int) -> int:
    """Trainable parameters of a ``CortexNet`` built from ``config`` with ``num_edges`` edges.

    Columns (2 or 3 branches of ``D x in_dim``, LayerNorm), one ``D x D`` query/key pair per
    column when it attends (attention on, ``message_iters > 0``), the edge weights, and the
    readout (``D x D``, LayerNorm,
    ``top_out x D``, biases). With ``shared_weights`` one column and one query/key pair
    serve all columns, and each column adds its bias of ``D``. Topographic columns
    (``patch_size``) read ``patch_size**2`` inputs instead of ``in_dim``.
    """
    n, d, c = config.num_columns, config.col_out, config.top_out
    f = config.in_dim if config.patch_size is None else config.patch_size**2
    branches = 3 if f != d else 2
    modules = 1 if config.shared_weights else n
    columns = modules * (branches * d * f + 2 * d) + (n * d if config.shared_weights else 0)
    attention = 2 * modules * d * d if config.use_attention and config.message_iters > 0 else 0
    readout = d * d + d + 2 * d + c * d + c
    return columns + attention + num_edges + readout


def matched_hidden_size(num_params: int, in_dim: int, top_out: int) -> int:
    """The hidden size of an :class:`MLP` with about ``num_params`` parameters.

    Solves ``in_dim * h + h + h * top_out + top_out = num_params`` for ``h`` (rounded).
    """
    return max(1, round((num_params - top_out) / (in_dim + 1 + top_out)))


def single_column_config(config: ModelConfig, num_edges: int) -> ModelConfig:
    """One column holding the parameter budget of the network ``config`` describes.

    The column's width ``D`` solves ``params(single column, D) = params(network)``; message
    passing is off (one node has no neighbours), the column reads the whole input with the
    mean readout, everything else is ``config``'s.

    Args:
        config: the network to match.
        num_edges: its graph's edge count (its edge weights are parameters).
    """
    budget = cortexnet_num_parameters(config, num_edges)
    f, c = config.in_dim, config.top_out
    # One column, D != in_dim (3 branches): D^2 + (3 f + 2 + 1 + 2 + c) D + c = budget
    linear = 3 * f + 5 + c
    width = (-linear + math.sqrt(linear * linear + 4 * (budget - c))) / 2
    return config.replace(
        num_columns=1,
        col_out=max(1, round(width)),
        message_iters=0,
        graph_k=0,
        patch_size=None,
        patch_stride=None,
        graph="small-world",
        readout_column=None,
    )
