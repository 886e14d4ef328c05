"""The baselines: parameter counts in closed form, matching a budget, shapes, fitting."""

from __future__ import annotations

import pytest
import torch

from cortexgnn.nn.baselines import CNN, MLP, PatchTransformer, matched_width
from cortexgnn.nn.config import ModelConfig
from cortexgnn.train.config import TrainConfig, build_model

torch.set_num_threads(1)


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("in_dim", "top_out"), [(64, 10), (784, 10), (256, 2)])
def test_parameter_counts_in_closed_form_match_the_built_models(in_dim, top_out):
    cnn = CNN(in_dim, top_out, 17, channels=3)
    assert count(cnn) == CNN.num_parameters(in_dim, top_out, 17, channels=3)
    vit = PatchTransformer(in_dim, top_out, 12, depth=2, heads=3)
    assert count(vit) == PatchTransformer.num_parameters(in_dim, top_out, 12, depth=2)


@pytest.mark.parametrize("model", [CNN(784, 10, 9, channels=2), PatchTransformer(784, 10, 8)])
def test_shapes_batch_independence_and_gradients(model):
    model.eval()
    x = torch.rand(5, 784)
    logits = model(x)
    assert logits.shape == (5, 10)
    # each sample's logits do not depend on the rest of the batch
    assert torch.allclose(model(x[2:3]), logits[2:3], atol=1e-5)
    model.train()
    loss = model.training_step((x, torch.arange(5)))
    assert loss.ndim == 0 and all(p.grad is not None for p in model.parameters())


def test_the_patch_transformer_reads_patches_in_place():
    """Patches are the image's own ``patch x patch`` blocks, in row-major order."""
    vit = PatchTransformer(16, 2, 4, depth=1, heads=1, patch=2)
    captured = {}
    vit.embed.register_forward_hook(lambda m, inputs, out: captured.setdefault("x", inputs[0]))
    image = torch.arange(16.0).reshape(1, 16)
    vit(image)
    grid = image.reshape(4, 4)
    assert torch.equal(captured["x"][0, 1], grid[0:2, 2:4].flatten())  # top-right block
    assert torch.equal(captured["x"][0, 2], grid[2:4, 0:2].flatten())


def test_matched_width_is_the_closest_to_the_budget():
    budget = 50_000

    def cnn(w):
        return CNN.num_parameters(784, 10, w)

    hidden = matched_width(cnn, budget)
    assert all(abs(cnn(hidden) - budget) <= abs(cnn(w) - budget) for w in range(1, 60))
    width = matched_width(lambda w: PatchTransformer.num_parameters(784, 10, w), budget, step=4)
    assert width % 4 == 0
    gap = abs(PatchTransformer.num_parameters(784, 10, width) - budget)
    for other in (width - 4, width + 4):
        assert gap <= abs(PatchTransformer.num_parameters(784, 10, other) - budget)


@pytest.mark.parametrize("name", ["cnn-matched", "vit-matched"])
def test_matched_baselines_take_the_column_networks_parameter_count(name):
    config = TrainConfig(model=name, model_config=ModelConfig(num_columns=4, graph_k=2, col_out=16))
    model = build_model(config, 784, 10)
    network = build_model(TrainConfig(model_config=config.model_config), 784, 10)
    # within one width step of the budget (the transformer's width moves in steps of 4)
    assert abs(count(model) - count(network)) / count(network) < 0.05
    assert model.config.num_columns == 4


@pytest.mark.parametrize(
    "model",
    [
        lambda: CNN(64, 10, 32, channels=8, dropout=0.0),
        lambda: PatchTransformer(64, 10, 32, depth=2, heads=4, dropout=0.0),
        lambda: MLP(64, 32, 10, dropout=0.0),
    ],
)
def test_each_baseline_fits_a_tiny_problem(model):
    torch.manual_seed(0)
    net = model()
    x = torch.rand(32, 64)
    y = torch.arange(32) % 10
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        net.training_step((x, y))
        optimizer.step()
    net.eval()
    assert (net(x).argmax(1) == y).float().mean() == 1.0  # memorises 32 random images


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="square image"):
        CNN(65, 10)
    with pytest.raises(ValueError, match="patch must divide"):
        PatchTransformer(64, 10, 8, patch=3)
    with pytest.raises(ValueError, match="multiple of heads"):
        PatchTransformer(64, 10, 10, heads=4)
