import math
import os
import subprocess
import sys

import pytest
import torch

from cortexgnn import ColumnAttentionConv, CortexNet, DenseReference
from cortexgnn.graph import small_world_graph
from cortexgnn.ops.attention import (
    AttentionGraph,
    attention_graph,
    conv_fast_path,
    folded_attention,
)
from cortexgnn.ops.kernel import load_kernel

needs_kernel = pytest.mark.skipif(load_kernel() is None, reason="C++ kernel cannot be built here")


def dense_oracle(query, x, edge_index, edge_weight=None, scale=1.0):
    """Loop over target nodes and their in-edge list, written without PyG or the module.

    ``x`` is ``[N, B, F]`` (one value row for all heads) or ``[N, B, H, F]`` (per head).
    """
    num_nodes, batch, heads, _ = query.shape
    if x.dim() == 3:
        x = x.unsqueeze(2).expand(-1, -1, heads, -1)
    out = torch.zeros_like(query)
    source, target = edge_index
    for i in range(num_nodes):
        edges = (target == i).nonzero().flatten()
        if edges.numel() == 0:
            continue
        x_j = x[source[edges]]  # [k, B, H, F]
        scores = torch.einsum("bhf,kbhf->kbh", query[i], x_j) * scale  # [k, B, H]
        alpha = scores.softmax(dim=0)
        if edge_weight is not None:
            alpha = alpha * edge_weight[edges].view(-1, 1, 1)
        out[i] = torch.einsum("kbh,kbhf->bhf", alpha, x_j)
    return out


def random_graph_case(num_nodes=12, batch=3, heads=2, features=5, isolated=True):
    edge_index = small_world_graph(num_nodes, 4, 0.3, seed=3)
    if isolated:  # drop every edge into node 0 and add a duplicate edge 2 -> 1
        edge_index = edge_index[:, edge_index[1] != 0]
        edge_index = torch.cat([edge_index, torch.tensor([[2], [1]])], dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1))]  # any order is allowed
    query = torch.randn(num_nodes, batch, heads, features, dtype=torch.float64)
    x = torch.randn(num_nodes, batch, features, dtype=torch.float64)
    weight = torch.rand(edge_index.size(1), dtype=torch.float64)
    return query, x, edge_index, weight


BACKENDS = ["dense", "torch", pytest.param("cpp", marks=needs_kernel)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_loop_oracle_with_isolated_node_and_parallel_edges(backend, weighted):
    query, x, edge_index, weight = random_graph_case()
    if backend == "cpp":  # the kernel is float32-only
        query, x, weight = query.float(), x.float(), weight.float()
    w = weight if weighted else None
    out = folded_attention(query, x, edge_index, w, scale=0.4, backend=backend)
    expected = dense_oracle(query, x, edge_index, w, scale=0.4)
    tol = 1e-5 if backend == "cpp" else 1e-10
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)
    assert out[0].abs().max() == 0  # node 0 has no in-edge: zero output


@pytest.mark.parametrize("backend", ["dense", pytest.param("cpp", marks=needs_kernel)])
def test_gradients_match_the_pytorch_path(backend):
    query, x, edge_index, weight = (t.float() for t in random_graph_case())
    grad_out = torch.randn_like(query)
    grads = {}
    for name in ("torch", backend):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        out = folded_attention(*leaves[:2], edge_index, leaves[2], scale=0.3, backend=name)
        grads[name] = torch.autograd.grad((out * grad_out).sum(), leaves)
    for got, want in zip(grads[backend], grads["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_per_head_match_the_loop_oracle(backend):
    query, _, edge_index, weight = random_graph_case()
    x = torch.randn(*query.shape, dtype=query.dtype)  # [N, B, H, F]: keys = values per head
    if backend == "cpp":
        query, x, weight = query.float(), x.float(), weight.float()
    out = folded_attention(query, x, edge_index, weight, scale=0.7, backend=backend)
    tol = 1e-5 if backend == "cpp" else 1e-10
    torch.testing.assert_close(
        out, dense_oracle(query, x, edge_index, weight, 0.7), atol=tol, rtol=tol
    )


@pytest.mark.parametrize("per_head", [False, True])
@needs_kernel
def test_dropout_and_per_head_gradients_match_the_pytorch_path(per_head):
    query, x, edge_index, weight = (t.float() for t in random_graph_case())
    if per_head:
        x = torch.randn_like(query)
    grad_out = torch.randn_like(query)
    outs, grads = {}, {}
    for name in ("torch", "cpp"):
        leaves = [t.clone().requires_grad_() for t in (query, x, weight)]
        torch.manual_seed(7)  # one mask for both backends: drawn before dispatch
        out = folded_attention(
            *leaves[:2], edge_index, leaves[2], scale=0.3, dropout=0.4, backend=name
        )
        outs[name] = out
        grads[name] = torch.autograd.grad((out * grad_out).sum(), leaves)
    torch.testing.assert_close(outs["cpp"], outs["torch"], atol=1e-5, rtol=1e-4)
    for got, want in zip(grads["cpp"], grads["torch"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_dropout_zeroes_and_rescales_coefficients():
    query, x, edge_index, _ = random_graph_case(isolated=False)
    ones = torch.ones_like(x)  # every value 1: the output is the sum of the kept coefficients
    kept = folded_attention(query, ones, edge_index, scale=0.5, dropout=0.5, backend="torch")
    plain = folded_attention(query, ones, edge_index, scale=0.5, backend="torch")
    torch.testing.assert_close(plain, torch.ones_like(plain))  # softmax sums to 1
    assert not torch.allclose(kept, plain)
    # Over many draws the inverted-dropout sum is unbiased: E[sum m alpha] = 1.
    draws = torch.stack(
        [
            folded_attention(query, ones, edge_index, scale=0.5, dropout=0.5, backend="torch")
            for _ in range(400)
        ]
    )
    assert (draws.mean(0) - 1).abs().max() < 0.15
    with pytest.raises(ValueError, match="dense"):
        folded_attention(query, x, edge_index, scale=1.0, dropout=0.5, backend="dense")
    with pytest.raises(ValueError, match="dropout"):
        folded_attention(query, x, edge_index, scale=1.0, dropout=1.0)


def test_dense_path_gradcheck_in_float64():
    query, x, edge_index, weight = random_graph_case(num_nodes=6, batch=2, heads=1, features=3)
    leaves = [t.requires_grad_() for t in (query, x, weight)]
    assert torch.autograd.gradcheck(
        lambda q, v, w: folded_attention(q, v, edge_index, w, scale=0.5, backend="dense"),
        leaves,
    )


@needs_kernel
def test_cpp_kernel_gradient_without_edge_weight_skips_it():
    query, x, edge_index, _ = (t.float() for t in random_graph_case(isolated=False))
    query.requires_grad_(), x.requires_grad_()
    out = folded_attention(query, x, edge_index, scale=1 / math.sqrt(5), backend="cpp")
    out.sum().backward()
    assert query.grad is not None and x.grad is not None


def test_attention_graph_csr_and_transpose():
    edge_index = torch.tensor([[1, 2, 0, 2, 1], [0, 0, 1, 1, 2]])
    graph = AttentionGraph.from_edge_index(edge_index[:, [4, 0, 3, 1, 2]], num_nodes=3)
    assert graph.ptr.tolist() == [0, 2, 4, 5]
    assert graph.col.tolist() == [1, 2, 0, 2, 1]
    # transposed: edges grouped by source, each pointing back to its CSR position
    assert graph.tptr.tolist() == [0, 1, 3, 5]
    assert graph.col[graph.tedge].tolist() == [0, 1, 1, 2, 2]
    assert graph.tdst.tolist() == graph.dst[graph.tedge].tolist()
    assert graph.count[0].tolist() == [0, 1, 1]


def test_attention_graph_is_cached_per_tensor_and_version():
    edge_index = small_world_graph(10, 4, 0.0)
    first = attention_graph(edge_index, 10)
    assert attention_graph(edge_index, 10) is first
    edge_index[0, 0] = edge_index[0, 0]  # an in-place write bumps the version
    assert attention_graph(edge_index, 10) is not first


def test_rejects_bad_arguments():
    query, x, edge_index, _ = random_graph_case()
    with pytest.raises(ValueError, match="backend"):
        folded_attention(query, x, edge_index, scale=1.0, backend="triton")
    with pytest.raises(ValueError, match="query must be"):
        folded_attention(query[:, :, 0], x, edge_index, scale=1.0)
    with pytest.raises(ValueError, match="features"):
        folded_attention(query[..., :2], x, edge_index, scale=1.0)
    with pytest.raises(ValueError, match="float32"):
        folded_attention(query, x, edge_index, scale=1.0, backend="cpp")


def test_model_fast_path_matches_reference_and_conv_path():
    ref = DenseReference(num_columns=10, in_dim=12, col_out=6, graph_k=4, graph_seed=1)
    net = CortexNet.from_reference(ref)
    x = torch.rand(5, 12)
    assert net.folded_attention_weight().shape == (10, 6, 6)
    pre = net.columns(x)
    fast = net.message(pre, net.folded_attention_weight())
    torch.testing.assert_close(fast, net.message(pre), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_nodes", [20, 300])
@pytest.mark.parametrize("per_node", [False, True])
def test_conv_fast_path_equals_its_propagate_path(num_nodes, per_node):
    conv = ColumnAttentionConv(6, 4, heads=2, num_nodes=num_nodes if per_node else None)
    edge_index = small_world_graph(num_nodes, 4, 0.2, seed=0)
    x = torch.randn(num_nodes, 3, 6, requires_grad=True)
    weight = torch.rand(edge_index.size(1))
    assert conv_fast_path(conv, x, x, edge_index, weight) is not None
    fast = conv(x, edge_index, weight)
    slow, _ = conv(x, edge_index, weight, return_attention_weights=True)  # propagate path
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    leaves = (x, conv.query_weight)
    grads = [torch.autograd.grad(out.square().sum(), leaves) for out in (fast, slow)]
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("per_node", [False, True])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_project_first_fast_path_equals_its_propagate_path(per_node, batch):
    conv = ColumnAttentionConv(
        6, 4, heads=2, project_first=True, num_nodes=30 if per_node else None,
        add_self_loops=True, bias=True,
    )  # fmt: skip
    edge_index = small_world_graph(30, 4, 0.2, seed=1)
    x = torch.randn(30, *batch, 6, requires_grad=True)
    weight = torch.rand(edge_index.size(1))
    assert conv_fast_path(conv, x, x, edge_index, weight) is not None
    fast = conv(x, edge_index, weight)
    slow, _ = conv(x, edge_index, weight, return_attention_weights=True)  # propagate path
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    leaves = (x, *conv.parameters())
    grads = [torch.autograd.grad(out.square().sum(), leaves) for out in (fast, slow)]
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_conv_fast_path_takes_dropout_and_steps_aside_for_a_separate_value():
    x = torch.randn(8, 2, 5)
    edge_index = small_world_graph(8, 4, 0.0)
    training = ColumnAttentionConv(5, 5, dropout=0.5, project_first=True)
    first = conv_fast_path(training, x, x, edge_index, None)
    assert first is not None
    assert not torch.equal(first, conv_fast_path(training, x, x, edge_index, None))  # new masks
    evaluating = training.eval()
    torch.testing.assert_close(
        conv_fast_path(evaluating, x, x, edge_index, None),
        conv_fast_path(evaluating, x, x, edge_index, None),
    )
    projected = ColumnAttentionConv(5, 5, project_value=True)  # key x, value V x: two tensors
    assert conv_fast_path(projected, x, x, edge_index, None) is None
    assert conv_fast_path(ColumnAttentionConv(5, 5), x, x.clone(), edge_index, None) is None


def test_kernel_can_be_switched_off_by_environment(tmp_path):
    """``CORTEXGNN_NO_KERNEL=1``: the PyTorch path runs, with the kernel's results."""
    script = (
        "import torch\n"
        "from cortexgnn.ops.kernel import load_kernel\n"
        "from cortexgnn import ColumnAttentionConv\n"
        "from cortexgnn.graph import small_world_graph\n"
        "assert load_kernel() is None\n"
        "torch.manual_seed(0)\n"
        "conv = ColumnAttentionConv(6, 4, heads=2, project_first=True, num_nodes=300)\n"
        "out = conv(torch.ones(300, 6), small_world_graph(300, 4, 0.2, seed=0))\n"
        "torch.save(out, 'out.pt')\n"
    )
    env = {**os.environ, "CORTEXGNN_NO_KERNEL": "1"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=tmp_path)
    torch.manual_seed(0)
    conv = ColumnAttentionConv(6, 4, heads=2, project_first=True, num_nodes=300)
    out = conv(torch.ones(300, 6), small_world_graph(300, 4, 0.2, seed=0))
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), out, atol=1e-5, rtol=1e-5)


def test_fused_false_always_takes_propagate(monkeypatch):
    conv = ColumnAttentionConv(6, 4, heads=2, project_first=True, add_self_loops=True)
    x, edge_index = torch.randn(30, 3, 6), small_world_graph(30, 4, 0.2, seed=2)
    fused = conv(x, edge_index)
    conv.fused = False
    assert repr(conv).endswith(", fused=False)")

    def refuse(*args):
        raise AssertionError("fused=False must not reach the fast path")

    monkeypatch.setattr("cortexgnn.nn.conv.conv_fast_path", refuse)
    torch.testing.assert_close(conv(x, edge_index), fused, atol=1e-5, rtol=1e-5)
    conv.fused = True
    with pytest.raises(AssertionError, match="must not reach"):
        conv(x, edge_index)
