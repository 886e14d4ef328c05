"""Two real gloo processes on CPU: replicas stay identical and match one process.

The workers are started with ``torch.multiprocessing`` and join through the same
environment variables ``torchrun`` sets, so ``init_from_env`` is exercised as well. Every
test that starts processes is marked slow (a minute on a busy 2-core machine).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from cortexgnn import CortexNet, DenseReference
from cortexgnn.train.distributed import (
    DistributedContext,
    all_reduce_mean,
    distribute,
    init_from_env,
    join_torchrun,
    launched_by_torchrun,
    shard_batch,
)

WORLD_SIZE = 2
STEPS = 3
SHARD = 5  # samples per process and step
CONFIG = dict(
    num_columns=8, in_dim=12, col_out=6, top_out=3, graph_k=4, graph_p=0.3,
    message_iters=2, plasticity_lr=0.5, dropout=0.0, graph_seed=3,
)  # fmt: skip
# attention (edge weights learn by Hebbian rule only) and plain mode (they also get gradients)
MODES = {"attention": dict(use_attention=True), "plain": dict(use_attention=False)}


def _batches() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(STEPS, WORLD_SIZE * SHARD, CONFIG["in_dim"], generator=generator)
    y = torch.randint(CONFIG["top_out"], (STEPS, WORLD_SIZE * SHARD), generator=generator)
    return x, y


def _build(flags: dict, seed: int) -> CortexNet:
    torch.manual_seed(seed)
    model = CortexNet(**CONFIG, **flags)
    # LayerNorm with its initial affine (1, 0) makes every column's feature mean exactly 0,
    # so the Hebbian ``pre`` means are pure rounding noise that no two reduction orders
    # share. A non-zero LayerNorm bias (as after a few optimizer steps) gives them a value.
    with torch.no_grad():
        model.columns.norm_bias.normal_(0.0, 0.5)
    return model


def _state(model: CortexNet) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _worker(rank: int, port: int, out_dir: str) -> None:
    from cortexgnn.train.distributed import distribute, join_torchrun

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    context = join_torchrun(torch.device("cpu"))
    x, y = _batches()
    results = {"context": (context.rank, context.world_size, context.backend)}
    for mode, flags in {**MODES, "attention_unsynced": MODES["attention"]}.items():
        model = _build(flags, seed=rank)  # replicas start different: distribute() broadcasts
        ddp = distribute(model)
        results[f"{mode}_wraps_the_model"] = ddp.module is model  # no wrapper module between
        if mode == "attention_unsynced":
            model.sync_statistics = None  # the control: no all-reduce of the statistics
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-5)
        losses = []
        for step in range(STEPS):
            optimizer.zero_grad()
            shard = shard_batch((x[step], y[step]), context)
            losses.append(all_reduce_mean(model.training_step(shard, forward=ddp)))
            optimizer.step()
        results[mode] = (_state(model), torch.stack(losses))
    results["mean"] = all_reduce_mean(torch.tensor([float(rank), 10.0 * rank]))
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _single_process(flags: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    model = _build(flags, seed=0)  # rank 0's initialisation
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-5)
    x, y = _batches()
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        losses.append(model.training_step((x[step], y[step])).detach())
        optimizer.step()
    return _state(model), torch.stack(losses)


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.start_processes(
        _worker, args=(_free_port(), str(out_dir)), nprocs=WORLD_SIZE, start_method="spawn"
    )
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


@pytest.mark.slow
def test_join_torchrun_reads_torchrun_variables(rank_results):
    assert [r["context"] for r in rank_results] == [(0, 2, "gloo"), (1, 2, "gloo")]
    assert all(r["attention_wraps_the_model"] and r["plain_wraps_the_model"] for r in rank_results)


@pytest.mark.slow
def test_all_reduce_mean_averages_over_ranks(rank_results):
    for result in rank_results:
        torch.testing.assert_close(result["mean"], torch.tensor([0.5, 5.0]))


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_replicas_hold_identical_parameters_and_buffers(rank_results, mode):
    state0, state1 = (r[mode][0] for r in rank_results)
    assert state0.keys() == state1.keys()
    for name in state0:
        assert torch.equal(state0[name], state1[name]), name


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_replicas_match_one_process_on_the_concatenated_batch(rank_results, mode):
    expected_state, expected_losses = _single_process(MODES[mode])
    state, _ = rank_results[0][mode]
    for name in expected_state:
        torch.testing.assert_close(state[name], expected_state[name], rtol=1e-5, atol=1e-6)
    # every rank reports the global batch's loss: the mean of the (equal) shard losses
    for result in rank_results:
        torch.testing.assert_close(result[mode][1], expected_losses, rtol=1e-5, atol=1e-6)
    # the run really moved the plasticity state, so the comparison above is not vacuous
    fresh = _build(MODES[mode], seed=0).state_dict()
    assert not torch.allclose(state["homeostasis.activity_avg"], fresh["homeostasis.activity_avg"])
    assert not torch.allclose(state["edge_weight"], fresh["edge_weight"])


@pytest.mark.slow
def test_without_statistics_sync_the_replicas_drift_apart(rank_results):
    state0, state1 = (r["attention_unsynced"][0] for r in rank_results)
    assert not torch.equal(state0["homeostasis.activity_avg"], state1["homeostasis.activity_avg"])
    assert not torch.equal(state0["edge_weight"], state1["edge_weight"])


def test_init_from_env_outside_torchrun_names_the_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_from_env()


def _shards(batch, world_size):
    return [
        shard_batch(batch, DistributedContext(r, world_size, r, torch.device("cpu"), "gloo"))
        for r in range(world_size)
    ]


def test_shard_batch_splits_the_global_batch_in_rank_order():
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    shards = _shards((x, y), 3)
    assert [s[1].tolist() for s in shards] == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(torch.cat([s[0] for s in shards]), x)


def test_shard_batch_pads_an_uneven_batch_to_equal_non_empty_shards():
    x, y = torch.arange(14).view(7, 2), torch.arange(7)
    shards = _shards((x, y), 3)  # 7 -> 9 samples: the first two count twice
    assert [s[1].tolist() for s in shards] == [[0, 1, 2], [3, 4, 5], [6, 0, 1]]
    assert torch.equal(shards[2][0], x[[6, 0, 1]])
    # a last batch smaller than the process count: every process still gets a sample
    tiny = _shards((torch.arange(1),), 2)
    assert [s[0].tolist() for s in tiny] == [[0], [0]]
    with pytest.raises(ValueError, match="empty batch"):
        _shards((torch.arange(0),), 2)


def test_launched_by_torchrun_needs_more_than_one_process(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_by_torchrun()
    monkeypatch.delenv("RANK")
    assert not launched_by_torchrun()


def test_join_torchrun_is_a_no_op_in_a_single_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert join_torchrun(torch.device("cpu")) is None


def test_distribute_refuses_the_dense_reference():
    reference = DenseReference(num_columns=4, in_dim=3, col_out=2, graph_k=2, graph_seed=0)
    with pytest.raises(TypeError, match="runs in one process"):
        distribute(reference)


CLI_ARGS = ("train --dataset digits --num-columns 6 --col-out 8 --graph-k 2 --message-iters 2 "
            "--dropout 0 --batch-size 64 --max-steps 6 --log-every 1 --threads 1 --seed 1 "
            "--no-progress --no-plot --no-final-eval").split()  # fmt: skip


@pytest.mark.slow
def test_torchrun_two_processes_train_like_one(tmp_path):
    from cortexgnn.cli import main
    from cortexgnn.train.metrics import read_metrics

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cortexgnn", *CLI_ARGS,
               "--out-dir", str(tmp_path / "ddp")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert main([*CLI_ARGS, "--out-dir", str(tmp_path / "one")]) == 0
    runs = {
        d: torch.load(tmp_path / d / "checkpoint.pth", weights_only=False) for d in ("ddp", "one")
    }
    assert runs["ddp"]["step"] == runs["one"]["step"] == 6
    for name, expected in runs["one"]["model_state_dict"].items():
        # The first Hebbian step normalises rounding noise (see docs/robustness.md): its edge
        # weights may differ by up to ~2 * plasticity_lr between any two reduction orders.
        atol = 2.2 * 5e-5 if name == "edge_weight" else 1e-6
        actual = runs["ddp"]["model_state_dict"][name]
        torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-5)
    losses = {d: [r["loss"] for r in read_metrics(tmp_path / d / "metrics.jsonl")] for d in runs}
    assert len(losses["one"]) == 6
    torch.testing.assert_close(losses["ddp"], losses["one"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_torchrun_with_a_last_batch_smaller_than_the_process_count(tmp_path, capsys):
    # 1437 = 2 * 718 + 1: every epoch ends with a one-sample batch for two processes
    args = [
        *CLI_ARGS[: CLI_ARGS.index("--batch-size")],
        "--batch-size",
        "718",
        "--epochs",
        "2",
        "--max-steps",
        "6",
        "--no-progress",
        "--no-plot",
        "--out-dir",
        str(tmp_path / "run"),
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "cortexgnn", *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 6
    # only rank 0 prints the summary
    assert result.stdout.count("cortexgnn train:") == 1, result.stdout
