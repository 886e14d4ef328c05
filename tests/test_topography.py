"""Topographic columns: patches per column, graphs over the grid, a one-column readout."""

from __future__ import annotations

import json

import pytest
import torch
from oracles import patch_columns_oracle

from cortexgnn import CortexNet
from cortexgnn.checkpoint import load_article_checkpoint, model_from_state, save_article_checkpoint
from cortexgnn.graph import (
    complete_graph,
    hop_distances,
    lattice_graph,
    random_graph,
    rewired_lattice_graph,
    small_world_graph,
)
from cortexgnn.nn.baselines import cortexnet_num_parameters
from cortexgnn.nn.config import ModelConfig
from cortexgnn.nn.topography import Patches

# a 10 x 10 image cut into 2 x 2 patches: a 5 x 5 grid of columns
GRID = dict(num_columns=25, in_dim=100, col_out=6, top_out=3, patch_size=2, graph_k=4,
            graph_seed=0, dropout=0.0)  # fmt: skip


@pytest.mark.parametrize("shared_weights", [False, True])
@pytest.mark.parametrize(
    "layout",
    [  # (image height, width, patch, stride, columns)
        (6, 8, 2, 2, 12),  # a rectangle, patches side by side, 3 branches (P != D)
        (6, 8, 4, 2, 6),  # overlapping patches
        (5, 5, 2, 1, 16),  # stride 1
    ],
)
def test_patch_columns_match_the_cropping_oracle(layout, shared_weights):
    height, width, patch, stride, num_columns = layout
    model = CortexNet(
        num_columns=num_columns, in_dim=height * width, col_out=6, top_out=3, graph_k=2,
        graph_seed=0, patch_size=patch, patch_stride=stride, image_height=height,
        shared_weights=shared_weights,
    ).eval()  # fmt: skip
    with torch.no_grad():  # make the per-column LayerNorm affine and bias non-trivial
        model.columns.norm_weight.normal_()
        model.columns.norm_bias.normal_()
        if shared_weights:
            model.column_bias.normal_()
    x = torch.rand(3, height * width)
    expected = patch_columns_oracle(model, x, (height, width), patch, stride)
    torch.testing.assert_close(model.column_states(x), expected)
    logits = model(x)
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()
    # shared weights: one column module reads every patch
    assert model.columns.num_columns == (1 if shared_weights else num_columns)
    assert model.columns.in_channels == patch * patch


def test_patches_are_the_crops_in_row_major_order():
    patches = Patches((4, 6), patch_size=2, stride=2)
    x = torch.arange(24.0).unsqueeze(0)  # one 4 x 6 image, pixel value = its index
    out = patches(x)  # [N, B, P]
    assert patches.grid == (2, 3) and out.shape == (6, 1, 4)
    assert out[0, 0].tolist() == [0, 1, 6, 7]  # top-left patch
    assert out[2, 0].tolist() == [4, 5, 10, 11]  # top-right
    assert out[3, 0].tolist() == [12, 13, 18, 19]  # second row, first column
    assert repr(patches) == "Patches(image_shape=(4, 6), patch_size=2, stride=2, grid=(2, 3))"


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(num_columns=16), r"make a 5 x 5 grid of columns: set num_columns=25, got 16"),
        (dict(patch_size=3), r"patches of 3 at stride 3 do not tile the image height 10"),
        (dict(patch_size=2, patch_stride=3), r"patch_stride must lie in 1..patch_size=2"),
        (dict(patch_size=11), r"patch_size=11 exceeds the 10 x 10 image"),
        (dict(in_dim=99), r"in_dim=99 is not a square image: set image_height"),
        (dict(in_dim=100, image_height=3), r"image_height=3 does not divide in_dim=100"),
        (dict(patch_size=None, graph="lattice", num_columns=24),
         r"needs a square number of columns, got num_columns=24: use 16 or 25"),
    ],
)  # fmt: skip
def test_columns_that_do_not_tile_the_grid_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        CortexNet(**{**GRID, **settings})


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(graph="ring"), r"graph must be one of \('small-world', 'lattice'"),
        (dict(patch_stride=2), r"patch_stride=2 needs patch_size"),
        (dict(patch_size=0), r"patch_size must be >= 1"),
        (dict(readout_column=64), r"readout_column must name a column 0..63"),
    ],
)
def test_config_refuses_bad_topography_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**settings)


def test_config_refuses_a_graph_that_is_not_a_name():
    with pytest.raises(TypeError, match="graph must be str"):
        ModelConfig(graph=3)


def test_each_graph_is_the_graph_py_builder_over_the_grid():
    p, seed = 0.3, 5
    expected = {
        "small-world": small_world_graph(25, 4, p, seed=seed),
        "lattice": lattice_graph(5, 5),
        "rewired-lattice": rewired_lattice_graph(5, 5, p, seed=seed),
        "random": random_graph(25, 25 * 2, seed=seed),  # the k=4 ring's 50 edges
        "complete": complete_graph(25),
    }
    for graph, edges in expected.items():
        for patch_size in (2, None):  # over the patch grid, or a 5 x 5 square of columns
            settings = dict(graph=graph, graph_p=p, graph_seed=seed, patch_size=patch_size)
            model = CortexNet(**{**GRID, **settings})
            assert torch.equal(model.edge_index, edges), graph
    # the rewired lattice differs from the lattice, and its seed decides it
    rewired = [CortexNet(**{**GRID, "graph": "rewired-lattice", "graph_seed": s}) for s in (1, 2)]
    assert not torch.equal(rewired[0].edge_index, expected["lattice"])
    assert not torch.equal(rewired[0].edge_index, rewired[1].edge_index)


def _input_gradient(model: CortexNet, x: torch.Tensor) -> torch.Tensor:
    """Per column, the summed |d logits / d pixel| over its patch, ``[N]``."""
    x = x.clone().requires_grad_(True)
    model(x).square().sum().backward()
    grid = model.patches.grid
    per_pixel = x.grad.abs().sum(0).reshape(grid[0], 2, grid[1], 2)  # 2 x 2 patches
    return per_pixel.sum((1, 3)).flatten()  # [N], row-major like the columns


@pytest.mark.parametrize(
    "graph, use_attention, shared_weights",
    [
        ("lattice", True, False),
        ("lattice", False, False),
        ("lattice", True, True),
        ("rewired-lattice", True, False),
        ("rewired-lattice", False, True),
        ("small-world", True, False),
        ("small-world", False, False),
    ],
)
def test_one_column_readout_sees_exactly_the_columns_within_k_hops(
    graph, use_attention, shared_weights
):
    x = torch.rand(4, 100)
    readout = 0  # a corner of the 5 x 5 grid: up to 8 lattice hops away from the rest
    for iters in (0, 1, 2, 3):
        model = CortexNet(
            **{**GRID, "graph": graph, "graph_p": 0.2}, readout_column=readout,
            message_iters=iters, use_attention=use_attention, shared_weights=shared_weights,
        ).eval()  # fmt: skip
        reached = _input_gradient(model, x) > 0  # [N]
        hops = hop_distances(model.edge_index, 25)[:, readout]  # [N] from each column
        within = (hops >= 0) & (hops <= iters)
        assert torch.equal(reached, within), (graph, iters)
        if iters == 0:  # only the readout column's own patch
            assert reached.nonzero().flatten().tolist() == [readout]
    assert not within.all()  # three iterations do not span the graph: a test that can fail


def test_mean_readout_sees_every_column_without_messages():
    model = CortexNet(**GRID, message_iters=0).eval()
    assert (_input_gradient(model, torch.rand(4, 100)) > 0).all()


def test_bf16_one_column_readout_returns_float32_logits():
    model = CortexNet(**GRID, readout_column=3, bf16_autocast=True, shared_weights=True).eval()
    logits = model(torch.rand(2, 100))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("shared_weights", [False, True])
def test_parameter_count_of_patch_columns(shared_weights):
    config = ModelConfig(**GRID, shared_weights=shared_weights, graph="lattice")
    model = CortexNet(config)
    counted = sum(p.numel() for p in model.parameters())
    assert cortexnet_num_parameters(config, model.edge_index.size(1)) == counted


def test_checkpoints_round_trip_the_topography(tmp_path):
    config = ModelConfig(**GRID, graph="rewired-lattice", readout_column=7, patch_stride=2,
                         shared_weights=True)  # fmt: skip
    model = CortexNet(config).eval()
    x = torch.rand(3, 100)
    state = {"model_state_dict": model.state_dict(), "model_config": config.to_dict(),
             "hyperparams": config.article_hparams()}  # fmt: skip
    path = tmp_path / "checkpoint.pth"
    torch.save(state, path)
    loaded = load_article_checkpoint(path)
    assert loaded.config == config
    assert torch.equal(loaded.edge_index, model.edge_index)
    torch.testing.assert_close(loaded(x), model(x))
    assert model_from_state(torch.load(path, weights_only=True), path).config == config
    # brain.pth holds whole-input columns: a patch model is refused, a grid graph and a
    # one-column readout over whole-input columns go through
    with pytest.raises(ValueError, match="columns read patches where brain.pth's read"):
        save_article_checkpoint(tmp_path / "brain.pth", model)
    whole = CortexNet(**{**GRID, "patch_size": None, "graph": "lattice", "readout_column": 4})
    save_article_checkpoint(tmp_path / "brain.pth", whole.eval())
    back = load_article_checkpoint(tmp_path / "brain.pth")
    assert back.config == whole.config and torch.equal(back.edge_index, whole.edge_index)
    torch.testing.assert_close(back(x), whole(x))


def test_cortexgnn_train_runs_patch_columns_on_the_two_item_task(tmp_path, capsys):
    from cortexgnn.cli import get_parser, main

    flags = ["--dataset", "two-items-digits", "--num-columns", "16", "--patch-size", "4",
             "--graph", "rewired-lattice", "--graph-p", "0.2", "--readout-column", "0",
             "--shared-weights", "--col-out", "8", "--message-iters", "3", "--batch-size", "64",
             "--epochs", "1", "--max-steps", "4", "--eval-every", "2", "--no-progress",
             "--no-plot"]  # fmt: skip
    with pytest.raises(SystemExit):
        get_parser().parse_args(["train", "--graph", "ring"])  # not one of the choices
    assert main(["train", *flags, "--out-dir", str(tmp_path)]) == 0
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    stored = state["model_config"]
    assert state["step"] == 4 and stored["in_dim"] == 256 and stored["top_out"] == 2
    assert (stored["patch_size"], stored["graph"], stored["readout_column"]) == (
        4, "rewired-lattice", 0)  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "checkpoint.pth")]) == 0  # rebuilt from the file
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_patch_columns_learn_the_two_item_digits_task(tmp_path):
    """Real data: the mean readout over 4 x 4 patch columns gets well above chance (50 %)."""
    from cortexgnn.cli import main

    flags = ["--dataset", "two-items-digits", "--num-columns", "16", "--patch-size", "4",
             "--graph", "lattice", "--col-out", "64", "--epochs", "5", "--eval-every", "1000",
             "--freeze-homeostasis-in-eval", "--no-progress", "--no-plot"]  # fmt: skip
    assert main(["train", *flags, "--out-dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_test_acc"] > 0.7
