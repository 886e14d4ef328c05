"""CorticalColumns: batched columns equal one small network per column."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cortexgnn import CorticalColumns


def one_column(cols: CorticalColumns, c: int, x: torch.Tensor) -> torch.Tensor:
    exc = F.relu(x @ cols.weight[0, c].t())
    out = exc * (1 - cols.e_i_ratio * torch.sigmoid(x @ cols.weight[1, c].t()))
    if cols.use_projection:
        out = out + x @ cols.weight[2, c].t()
    return F.layer_norm(out, (cols.out_channels,), cols.norm_weight[c], cols.norm_bias[c])


@pytest.mark.parametrize("in_channels,out_channels", [(12, 6), (6, 6)])
def test_equals_per_column_loop(in_channels, out_channels):
    cols = CorticalColumns(5, in_channels, out_channels, dropout=0.0)
    with torch.no_grad():
        cols.norm_weight.uniform_(0.5, 1.5)
        cols.norm_bias.normal_()
    x = torch.randn(4, in_channels)
    out = cols(x)
    assert out.shape == (5, 4, out_channels)
    assert cols.weight.shape[0] == (3 if in_channels != out_channels else 2)
    for c in range(5):
        torch.testing.assert_close(out[c], one_column(cols, c, x), atol=1e-5, rtol=1e-5)


def test_initialisation_uses_per_column_fans():
    cols = CorticalColumns(16, 400, 50)
    std_exc = cols.weight[0].std().item()
    assert abs(std_exc - math.sqrt(2 / 400)) / math.sqrt(2 / 400) < 0.05
    assert cols.weight[1].abs().max() <= math.sqrt(6 / 450)
    assert cols.weight[2].abs().max() <= 1 / math.sqrt(400)


def test_gradients_and_dropout():
    cols = CorticalColumns(3, 8, 4, dropout=0.5)
    x = torch.randn(6, 8)
    cols(x).sum().backward()
    assert all(p.grad is not None for p in cols.parameters())
    cols.eval()
    torch.testing.assert_close(cols(x), cols(x))
    cols.train()
    assert (cols(x) == 0).any()


def test_bad_input():
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        CorticalColumns(3, 8, 4)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="num_columns"):
        CorticalColumns(0, 8, 4)
