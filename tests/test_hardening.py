"""Bad input gets a clear error naming the problem and the fix; the numerics stay finite."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import (
    ColumnAttentionConv,
    CortexNet,
    Homeostasis,
    atomic_save,
    hebbian_delta,
    hebbian_update_,
    load_article_checkpoint,
    small_world_graph,
)

TINY = dict(num_columns=6, in_dim=10, col_out=4, top_out=3, graph_k=2, graph_seed=0)


@pytest.fixture
def net() -> CortexNet:
    return CortexNet(**TINY)


# --- graph arguments (networkx would raise deep inside, or silently accept) ---------------


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((6, 2.5, 0.1), TypeError, "k must be an int"),
        ((6, True, 0.1), TypeError, "k must be an int"),
        ((6.0, 2, 0.1), TypeError, "num_nodes must be an int"),
        ((6, 2, "0.1"), TypeError, r"p must be a float in \[0, 1\]"),
        ((0, 0, 0.1), ValueError, "num_nodes must be >= 1"),
        ((6, -2, 0.1), ValueError, "lower k or add columns"),
        ((6, 8, 0.1), ValueError, "lower k or add columns"),
        ((6, 2, float("nan")), ValueError, "rewiring probability"),
        ((6, 2, -0.1), ValueError, "rewiring probability"),
    ],
)
def test_small_world_arguments(args, error, match):
    with pytest.raises(error, match=match):
        small_world_graph(*args)


def test_model_refuses_graph_degree_larger_than_its_columns():
    with pytest.raises(ValueError, match="k=8, num_nodes=4"):
        CortexNet(**{**TINY, "num_columns": 4, "graph_k": 8})


# --- a custom edge_index -------------------------------------------------------------------


@pytest.mark.parametrize(
    "edge_index, error, match",
    [
        ([[0, 1], [1, 0]], TypeError, r"torch.as_tensor"),
        (torch.tensor([[0, 1], [1, 0]]).int(), ValueError, r"edge_index.long\(\)"),
        (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), ValueError, r"must be torch.long"),
        (torch.tensor([[0, 1], [1, 2], [2, 0]]), ValueError, r"\[E, 2\] edge list needs .t\(\)"),
        (torch.tensor([0, 1, 1, 0]), ValueError, r"shape \[2, E\]"),
        (torch.tensor([[-1, 1], [1, 0]]), ValueError, r"valid: 0..5"),
        (torch.tensor([[0, 6], [6, 0]]), ValueError, r"num_columns=6"),
    ],
)
def test_model_refuses_bad_edge_index(edge_index, error, match):
    with pytest.raises(error, match=match):
        CortexNet(**TINY, edge_index=edge_index)


# --- model inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(3, 9), r"in_dim=10"),
        (torch.rand(10), r"got shape \(10,\)"),
        (torch.rand(3, 2, 4), r"10 elements per sample"),
        (torch.rand(0, 10), r"empty batch"),
        (torch.rand(3, 10, dtype=torch.float64), r"x.to\(torch.float32\)"),
        (torch.randint(0, 255, (3, 10), dtype=torch.uint8), r"/ 255"),
    ],
)
def test_model_refuses_bad_inputs(net, x, match):
    with pytest.raises(ValueError, match=match):
        net(x)


@pytest.mark.parametrize(
    "y, match",
    [
        (torch.tensor([0.0, 1.0, 2.0]), r"y.long\(\)"),
        (torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), r"y.argmax"),
        (torch.tensor([0, 1]), r"2 labels for a batch of 3"),
        (torch.tensor([0, 1, 3]), r"top_out=3 classes \(valid: 0..2\)"),
        (torch.tensor([0, -1, 2]), r"labels -1..2"),
    ],
)
def test_training_step_refuses_bad_targets(net, y, match):
    with pytest.raises(ValueError, match=match):
        net.training_step((torch.rand(3, 10), y))
    assert all(p.grad is None for p in net.parameters())  # refused before any work


def test_non_finite_input_check_is_opt_in():
    x = torch.rand(3, 10)
    x[1, 4] = float("nan")
    x[2, 0] = float("inf")
    assert torch.isnan(CortexNet(**TINY)(x)).any()  # default: the article's silent NaN
    with pytest.raises(ValueError, match="2 NaN/Inf values"):
        CortexNet(**TINY, check_finite_input=True)(x)


# --- the attention layer (validation lives in conv.py) -----------------------------------


@pytest.mark.parametrize(
    "x_shape, edge_index, weight_shape, match",
    [
        ((6, 2, 2, 4), None, None, r"transpose\(0, 1\)"),
        ((6, 5), None, None, r"in_channels=4"),
        ((5, 4), torch.tensor([[0, 1], [1, 0]]), None, r"num_nodes=None"),
        ((6, 4), torch.tensor([[0, 1, 2]]), None, r"shape \[2, E\]"),
        ((6, 4), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), None, r"integer tensor"),
        ((6, 4), torch.tensor([[0, 7], [1, 0]]), None, r"nodes 0..7, but x has 6"),
        ((6, 4), torch.tensor([[0, 1], [1, 0]]), (2, 1), r"edge_weight must have shape \[E\]"),
    ],
)
def test_conv_refuses_bad_inputs(x_shape, edge_index, weight_shape, match):
    conv = ColumnAttentionConv(4, 4, num_nodes=6)
    if edge_index is None:
        edge_index = small_world_graph(6, 2, 0.0)
    edge_weight = None if weight_shape is None else torch.rand(weight_shape)
    with pytest.raises(ValueError, match=match):
        conv(torch.rand(x_shape), edge_index, edge_weight)


# --- checkpoints -----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, net):
    state = {"model_state_dict": net.state_dict(), "hyperparams": dict(net.hparams)}
    return tmp_path, state, atomic_save(state, tmp_path / "good.pth")


def test_checkpoint_truncated_or_empty(saved):
    tmp_path, _, good = saved
    data = good.read_bytes()
    for name, content in [("half.pth", data[: len(data) // 2]), ("empty.pth", b"")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=r"truncated or corrupt"):
            load_article_checkpoint(tmp_path / name)


def test_checkpoint_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*nope.pth"):
        load_article_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: torch.ones(3), r"needs the keys \['model_state_dict', 'hyperparams'\]"),
        (lambda s: {**s, "hyperparams": None}, r"'hyperparams' must be a dict"),
        (lambda s: {**s, "model_state_dict": [1]}, r"'model_state_dict' must be a state dict"),
        (
            lambda s: {**s, "model_state_dict": torch.nn.Linear(3, 2).state_dict()},
            r"another architecture",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "col_out": 5}}, r"do not fit"),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "num_columns": 7}}, r"do not fit"),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "use_attention": False}},
            r"do not fit",
        ),
        (
            lambda s: {**s, "hyperparams": {**s["hyperparams"], "message_iters": -1}},
            r"do not build a model",
        ),
        (lambda s: {**s, "hyperparams": {**s["hyperparams"], "heads": 2}}, r"\['heads'\]"),
    ],
)
def test_checkpoint_of_another_model(saved, edit, match):
    tmp_path, state, _ = saved
    torch.save(edit(state), tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=match):
        load_article_checkpoint(tmp_path / "bad.pth")


# --- numerical safety ----------------------------------------------------------------------


def test_hebbian_rule_with_all_zero_activity_is_zero_not_nan():
    edge_index = small_world_graph(6, 2, 0.0)
    zeros = torch.zeros(6, 3, 4)
    assert torch.equal(hebbian_delta(edge_index, zeros, zeros), torch.zeros(edge_index.size(1)))
    weight = torch.randn(edge_index.size(1))
    expected = weight.tanh()
    hebbian_update_(weight, edge_index, zeros, torch.rand(6, 3, 4), lr=1.0)
    assert torch.isfinite(weight).all()
    # p = 0 leaves only the -0.1 q_i q_j term
    assert not torch.equal(weight, expected)


def test_homeostasis_divisor_near_zero_is_the_article_inf_unless_min_divisor():
    h = torch.ones(2, 3, 4)
    faithful = Homeostasis(2, freeze_in_eval=True).eval()
    safe = Homeostasis(2, freeze_in_eval=True, min_divisor=0.05).eval()
    for module in (faithful, safe):
        module.activity_avg.fill_(-module.eps)  # a running mean that crossed zero
    assert torch.isinf(faithful(h)).all()  # 1 / (a + eps) = 1 / 0: the article's arithmetic
    torch.testing.assert_close(safe(h), h / 0.05)


def test_homeostasis_min_divisor_keeps_sign_and_bounds_scale():
    safe, faithful = Homeostasis(3, min_divisor=0.1), Homeostasis(3)
    h = -torch.rand(3, 4, 2) - 0.5  # negative activity pulls the running mean through zero
    for _ in range(300):
        out_safe, out_faithful = safe(h), faithful(h)
    assert (faithful.activity_avg < 0).all()
    assert (out_faithful > 0).all()  # the article flips the sign of negative states
    assert (out_safe < 0).all() and out_safe.abs().max() <= h.abs().max() / 0.1 + 1e-6
    with pytest.raises(ValueError, match="min_divisor must be > 0"):
        Homeostasis(3, min_divisor=0.0)


def test_two_thousand_training_steps_stay_finite():
    torch.manual_seed(0)
    model = CortexNet(num_columns=6, in_dim=8, col_out=4, top_out=3, graph_k=2, graph_seed=0,
                      message_iters=2, plasticity_lr=5e-3)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(2000, 4, 8), torch.randint(3, (2000, 4))
    for step in range(2000):
        optimizer.zero_grad()
        loss = model.training_step((x[step], y[step]))
        optimizer.step()
        assert torch.isfinite(loss), step
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name
    assert model.homeostasis.activity_avg.abs().min() > 1e-3  # far from the division by 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_float_dtypes_work_end_to_end(dtype):
    torch.manual_seed(0)
    reference = CortexNet(**TINY, dropout=0.0)
    model = CortexNet(**TINY, dropout=0.0).to(dtype)
    model.load_state_dict(reference.state_dict())
    x, y = torch.rand(4, 10), torch.tensor([0, 1, 2, 0])
    loss = model.training_step((x.to(dtype), y))
    assert loss.dtype == dtype and torch.isfinite(loss)
    assert all(p.grad.dtype == dtype for p in model.parameters() if p.grad is not None)
    tolerance = {torch.float64: 1e-5, torch.bfloat16: 0.1, torch.float16: 0.02}[dtype]
    torch.testing.assert_close(
        loss.double(), reference.training_step((x, y)).double(), atol=tolerance, rtol=0
    )


# --- datasets ------------------------------------------------------------------------------

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")  # fmt: skip


def test_dataset_unknown_name_lists_the_choices():
    from cortexgnn.train.data import load_dataset

    with pytest.raises(ValueError, match="choose one of digits, mnist, fashion-mnist"):
        load_dataset("fashion", "unused")


@pytest.mark.parametrize("present", [(), IDX_FILES[2:], IDX_FILES])
def test_dataset_missing_partial_or_corrupt_directory(tmp_path, present):
    from cortexgnn.train.data import DatasetNotFoundError, load_dataset

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in present:  # files that exist but hold no valid IDX data
        (raw / name).write_bytes(b"\x00\x00\x08\x03 not an idx file")
    with pytest.raises(DatasetNotFoundError, match=r"FashionMNIST/raw.*--download"):
        load_dataset("fashion-mnist", tmp_path)
