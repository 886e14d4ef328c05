"""The column-sharded model equals one process: 2 and 4 gloo processes against CortexNet.

Workers are started with ``torch.multiprocessing`` (spawn) and join a gloo group; each
writes its shard's state and outputs, and the test puts the shards back together
(:func:`~cortexgnn.parallel.model.consolidate`) to compare with a single-process
``CortexNet`` built from the same seed. Process tests are slow; the single-shard checks
(no process group) run in the default suite.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from fused_calls import count_fused_calls

from cortexgnn import CortexNet, ModelConfig
from cortexgnn.parallel.model import ShardedCortexNet, check_shardable, consolidate

STEPS = 5
BATCH = 4
# The article's model (784 inputs, D = 128, 64 columns), a 1,024-column one made cheap by
# few inputs and channels (with a strong Hebbian rate and gated attention, so the edge
# weights move by both routes), and the plain (non-attention) message.
CONFIGS = {
    "article": ModelConfig(graph_seed=0),
    "wide": ModelConfig(
        num_columns=1024, in_dim=16, col_out=16, top_out=4, plasticity_lr=0.5,
        attention_uses_edge_weight=True, graph_seed=1,
    ),
    "plain": ModelConfig(
        num_columns=24, in_dim=8, col_out=8, top_out=3, graph_k=4, graph_p=0.3,
        use_attention=False, plasticity_lr=0.5, graph_seed=2,
    ),
    # topographic columns on an 8 x 8 image: 2 x 2 patches at stride 2, a 4 x 4 grid
    "patches": ModelConfig(
        num_columns=16, in_dim=64, col_out=8, top_out=3, patch_size=2, graph="lattice",
        plasticity_lr=0.5, graph_seed=3,
    ),
    # one shared column reading every patch, read out from one column
    "shared": ModelConfig(
        num_columns=16, in_dim=64, col_out=8, top_out=3, patch_size=2, shared_weights=True,
        graph="rewired-lattice", graph_p=0.3, readout_column=5, plasticity_lr=0.5,
        attention_uses_edge_weight=True, graph_seed=4,
    ),
    # each iteration recomputed in backward, its halo exchange included
    "recompute": ModelConfig(
        num_columns=32, in_dim=8, col_out=8, top_out=3, graph_k=4, recompute_messages=True,
        plasticity_lr=0.5, graph_seed=5,
    ),
    # bfloat16 states (the halo travels in bfloat16) with one shared column
    "bf16": ModelConfig(
        num_columns=32, in_dim=8, col_out=8, top_out=3, graph_k=4, bf16_autocast=True,
        shared_weights=True, plasticity_lr=0.5, graph_seed=6,
    ),
}  # fmt: skip
# AdamW's first steps move a weight by about lr whatever its gradient's size, so gradients
# at rounding level (|g| < 4e-8 here) take steps of either sign: in float32 one process's
# own two attention paths (fused kernel, PyG propagate) end 3.9e-3 apart on 0.008 % of the
# article model's column weights after 5 steps. That model trains in float64, where those
# gradients keep their sign; the others train in float32.
DTYPES = {name: torch.float32 for name in CONFIGS} | {"article": torch.float64}
# bfloat16 states round every sum (the halo's included) at 3 significant digits; summed in
# another order over 2 or 4 processes, the weights end up to 1.3e-4 apart after 5 AdamW
# steps of 1e-3 (an eighth of a step)
STATE_ATOL = {"bf16": 5e-4}


def _build(config: ModelConfig, dtype: torch.dtype = torch.float32) -> CortexNet:
    """The single-process model every test starts from (seed 0, a non-zero LayerNorm bias).

    LayerNorm's initial affine (1, 0) makes each column's feature mean exactly 0, so the
    Hebbian ``pre`` means are rounding noise that no two summation orders share; a non-zero
    bias (as after a few optimizer steps) gives them a value.
    """
    torch.manual_seed(0)
    model = CortexNet(config)
    with torch.no_grad():
        model.columns.norm_bias.normal_(0.0, 0.5)
    return model.to(dtype)


def _data(config: ModelConfig, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(STEPS, BATCH, config.in_dim, generator=generator).to(dtype)
    y = torch.randint(config.top_out, (STEPS, BATCH), generator=generator)
    return x, y


def _train(model, config: ModelConfig, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
    """Eval logits on the first batch, then STEPS AdamW steps; returns (logits, losses)."""
    x, y = _data(config, dtype)
    model.eval()
    with torch.no_grad():
        logits = model(x[0])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        losses.append(model.training_step((x[step], y[step])))
        optimizer.step()
    return logits, torch.stack(losses)


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    calls = count_fused_calls(setattr)  # (local targets, local + halo sources)
    results = {"fused_calls": {}}
    for name, config in CONFIGS.items():
        train_config = config.replace(dropout=0.0)  # column dropout masks differ across P
        model = ShardedCortexNet.from_model(_build(train_config, DTYPES[name]))
        calls.clear()
        logits, losses = _train(model, train_config, DTYPES[name])
        results[name] = (model.state_dict(), logits, losses, model.global_edge_index)
        results["fused_calls"][name] = list(calls)
    # the constructor starts from the parameters CortexNet draws from the same seed
    torch.manual_seed(0)
    built = ShardedCortexNet(CONFIGS["article"])
    after = torch.rand(3)
    state = {key: value.clone() for key, value in built.state_dict().items()}
    logits = built.eval()(_data(CONFIGS["article"])[0][0])  # moves homeostasis (the article)
    results["built"] = (state, built.global_edge_index, after, logits.detach())
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", params=[2, 4], ids=lambda p: f"P{p}")
def shards(request, tmp_path_factory) -> tuple[int, list[dict]]:
    world_size = request.param
    out_dir = tmp_path_factory.mktemp(f"sharded{world_size}")
    mp.start_processes(
        _worker,
        args=(world_size, _free_port(), str(out_dir)),
        nprocs=world_size,
        start_method="spawn",
    )
    return world_size, [
        torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(world_size)
    ]


def _single(name: str):
    config = CONFIGS[name].replace(dropout=0.0)
    model = _build(config, DTYPES[name])
    logits, losses = _train(model, config, DTYPES[name])
    return model, logits, losses


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sharded_training_equals_one_process(shards, name):
    world_size, ranks = shards
    model, logits, losses = _single(name)
    for rank in ranks:  # every process holds the whole batch's logits and loss
        torch.testing.assert_close(rank[name][1], logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(rank[name][2], losses, rtol=0, atol=1e-4)
    states = [rank[name][0] for rank in ranks]
    full = consolidate(states, ranks[0][name][3])
    expected = model.state_dict()
    assert full.keys() == expected.keys()
    for key, value in expected.items():
        atol = STATE_ATOL.get(name, 1e-4)
        torch.testing.assert_close(full[key], value, rtol=0, atol=atol, msg=key)
    if CONFIGS[name].plasticity_lr < 0.1:
        return
    # the Hebbian rule moved the edge weights (else the comparison says little about it)
    start = _build(CONFIGS[name], DTYPES[name]).edge_weight
    assert (full["edge_weight"] - start).abs().max() > 1e-3


@pytest.mark.slow
def test_sharded_attention_takes_the_fused_kernel(shards):
    world_size, ranks = shards
    for rank in ranks:
        calls = rank["fused_calls"]
        assert calls["plain"] == []  # no attention
        for name in ("article", "wide"):
            # every message iteration of the eval forward and the STEPS training steps
            assert len(calls[name]) == CONFIGS[name].message_iters * (1 + STEPS), name
            num_local = CONFIGS[name].num_columns // world_size
            assert all(dst == num_local and src > dst for dst, src in calls[name]), name


@pytest.mark.slow
def test_sharded_constructor_draws_cortexnets_initialisation(shards):
    world_size, ranks = shards
    torch.manual_seed(0)
    model = CortexNet(CONFIGS["article"])
    after = torch.rand(3)  # the shared stream continues where CortexNet leaves it
    full = consolidate([r["built"][0] for r in ranks], ranks[0]["built"][1])
    for key, value in model.state_dict().items():
        assert torch.equal(full[key], value), key
    model.eval()
    logits = model(_data(CONFIGS["article"])[0][0])
    for rank in ranks:
        assert torch.equal(rank["built"][2], after)
        # the article's model in float32, dropout 0.1 (inactive in eval mode)
        torch.testing.assert_close(rank["built"][3], logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "flags",
    [{}, {"message_iters": 0}, {"use_homeostasis": False}, {"homeostasis_min_divisor": 0.5}],
    ids=["plain", "no-messages", "no-homeostasis", "min-divisor"],
)
def test_a_single_shard_is_cortexnet(flags):
    config = CONFIGS["plain"].replace(**flags)
    model = _build(config)
    sharded = ShardedCortexNet.from_model(model)
    x, y = _data(config)
    model.eval(), sharded.eval()
    torch.testing.assert_close(sharded(x[0]), model(x[0]), rtol=0, atol=1e-6)
    assert sharded.plan.num_halo == 0 and sharded.plan.num_local == config.num_columns
    for net in (model, sharded):  # the same dropout masks: one shard draws like CortexNet
        torch.manual_seed(3)
        net.train().training_step((x[1], y[1]))
    for name, value in sharded.state_dict().items():  # one Hebbian and homeostasis update
        torch.testing.assert_close(value, model.state_dict()[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["patches", "shared", "recompute", "bf16"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_single_shard_of_topographic_and_shared_columns_is_cortexnet(name, dropout):
    config = CONFIGS[name].replace(dropout=dropout)
    model = _build(config)
    sharded = ShardedCortexNet.from_model(model)
    assert sharded.replicated_in_columns() == (
        [*sharded.columns.parameters(), *sharded.conv.parameters()] if config.shared_weights else []
    )
    x, y = _data(config)
    model.eval(), sharded.eval()
    torch.testing.assert_close(sharded(x[0]), model(x[0]), rtol=0, atol=1e-6)
    for net in (model, sharded):  # the same dropout masks: one shard draws like CortexNet
        torch.manual_seed(3)
        net.train().training_step((x[1], y[1]))

    # bfloat16: the same operations in another order (the mean over columns as a sum, then
    # a division) round differently, within bfloat16's precision (1 % of the tensor's scale)
    def close(actual, expected, name):
        scale = expected.abs().max().item() if config.bf16_autocast else 0.0
        atol = 1e-2 * scale if config.bf16_autocast else 1e-6
        torch.testing.assert_close(actual, expected, rtol=0, atol=atol, msg=name)

    grads = {n: p.grad for n, p in model.named_parameters()}
    for n, p in sharded.named_parameters():
        if p.grad is not None or grads[n] is not None:
            close(p.grad, grads[n], n)
    for n, value in sharded.state_dict().items():
        close(value, model.state_dict()[n], n)


def test_a_recomputing_shard_keeps_fewer_tensors_for_backward():
    def saved_bytes(recompute: bool, iterations: int) -> int:
        config = CONFIGS["recompute"].replace(recompute_messages=recompute,
                                              message_iters=iterations)  # fmt: skip
        model = ShardedCortexNet.from_model(_build(config))
        total = []
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: total.append(t.numel() * t.element_size()) or t, lambda t: t
        ):
            model(torch.rand(64, config.in_dim))
        return sum(total)

    growth = {r: saved_bytes(r, 8) - saved_bytes(r, 4) for r in (False, True)}
    assert 0 < growth[True] < growth[False] / 2


def test_settings_outside_the_per_column_model_are_refused(monkeypatch):
    import dataclasses

    import cortexgnn.parallel.model as sharded_model

    fields = sharded_model.SHARDED_FIELDS - {"use_hebbian"}  # as if use_hebbian were new
    monkeypatch.setattr(sharded_model, "SHARDED_FIELDS", fields)
    check_shardable(ModelConfig())  # at its default the unknown field is harmless
    with pytest.raises(ValueError, match=r"does not support the settings \['use_hebbian'\]"):
        check_shardable(dataclasses.replace(ModelConfig(), use_hebbian=False))


def test_a_single_shard_attends_through_the_fused_kernel(monkeypatch):
    """The sharded model's bipartite ``[local, halo]`` call takes the fused kernel."""
    calls = count_fused_calls(monkeypatch.setattr)
    config = CONFIGS["plain"].replace(use_attention=True, attention_uses_edge_weight=True)
    model = _build(config)
    sharded = ShardedCortexNet.from_model(model)
    x, y = _data(config)
    model.eval(), sharded.eval()
    expected = model(x[0])
    calls.clear()
    torch.testing.assert_close(sharded(x[0]), expected, rtol=0, atol=1e-6)
    assert calls == [(24, 24)] * config.message_iters  # every iteration, none on propagate
    for net in (model, sharded):  # backward through the kernel: one training step each
        torch.manual_seed(3)
        calls.clear()
        net.train().training_step((x[1], y[1]))
    assert calls == [(24, 24)] * config.message_iters
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name, p in sharded.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], rtol=0, atol=1e-6, msg=name)
    for name, value in sharded.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[name], rtol=0, atol=1e-6)
