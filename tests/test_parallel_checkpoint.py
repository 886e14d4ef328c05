"""Sharded checkpoints reshard: saved by P processes, resumed by P' (4, 2 and 1).

A run continues from a folder as it would have without stopping: bit for bit with the
same number of processes, to float rounding with another. The reference trajectory is one
process's; the workers run as gloo processes (spawn), the single shard in the test itself.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from cortexgnn import CortexNet, ModelConfig
from cortexgnn.parallel.checkpoint import consolidated_state, load_sharded, save_sharded
from cortexgnn.parallel.model import ShardedCortexNet, consolidate

CONFIG = ModelConfig(
    num_columns=32, in_dim=8, col_out=8, top_out=3, plasticity_lr=0.5, dropout=0.0,
    attention_uses_edge_weight=True, graph_seed=1,
)  # fmt: skip
#: the per-column model, and one column shared by all (read out from one column): only
#: its per-column bias, homeostasis and edges are split
CONFIGS = {"per-column": CONFIG, "shared": CONFIG.replace(shared_weights=True, readout_column=7)}
STEPS = 2  # before and after each save


def _model(seed: int, config: ModelConfig = CONFIG) -> ShardedCortexNet:
    torch.manual_seed(seed)
    model = CortexNet(config)
    with torch.no_grad():
        model.columns.norm_bias.normal_(0.0, 0.5)  # Hebbian means away from rounding noise
    return ShardedCortexNet.from_model(model)


def _optimizer(model) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-5)


def _steps(model, optimizer, first: int) -> None:
    generator = torch.Generator().manual_seed(100 + first)
    for _ in range(STEPS):
        x = torch.randn(4, CONFIG.in_dim, generator=generator)
        y = torch.randint(CONFIG.top_out, (4,), generator=generator)
        optimizer.zero_grad()
        model.training_step((x, y))
        optimizer.step()


def _resumed(path, config: ModelConfig, seed: int = 9):
    """A model that starts elsewhere (another seed), then loads ``path``."""
    model = _model(seed, config)
    optimizer = _optimizer(model)
    _steps(model, optimizer, first=50)  # give it optimizer state of its own, to overwrite
    load_sharded(model, optimizer, path)
    return model, optimizer


def _state(model, optimizer) -> dict:
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for param, slots in optimizer.state.items():
        state.update({f"optim.{names[id(param)]}.{k}": v.clone() for k, v in slots.items()})
    return state


def _worker(rank: int, world_size: int, port: int, root: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    for name, config in CONFIGS.items():  # one process group for every model
        folder, results = os.path.join(root, name), {}
        if world_size == 4:  # P = 4 from scratch; resumes of its own folder and of P = 1's
            model = _model(0, config)
            optimizer = _optimizer(model)
            _steps(model, optimizer, first=0)
            save_sharded(model, optimizer, os.path.join(folder, "p4"))
            _steps(model, optimizer, first=STEPS)
            results["straight"] = _state(model, optimizer)
            model, optimizer = _resumed(os.path.join(folder, "p4"), config)
            _steps(model, optimizer, first=STEPS)
            results["resumed"] = _state(model, optimizer)
            model, optimizer = _resumed(os.path.join(folder, "p1"), config)
            _steps(model, optimizer, first=STEPS)
            results["from_p1"] = _state(model, optimizer)
        else:  # P = 2 resumes P = 4 and saves again
            model, optimizer = _resumed(os.path.join(folder, "p4"), config)
            save_sharded(model, optimizer, os.path.join(folder, "p2"))
            _steps(model, optimizer, first=STEPS)
            results["from_p4"] = _state(model, optimizer)
        results["edge_index"] = model.global_edge_index
        torch.save(results, os.path.join(folder, f"P{world_size}-rank{rank}.pt"))
    dist.destroy_process_group()


def _spawn(world_size: int, root: Path) -> dict[str, list[dict]]:
    """Every model's results on ``world_size`` processes, by model name, in rank order."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_worker, args=(world_size, port, str(root)), nprocs=world_size,
                       start_method="spawn")  # fmt: skip
    return {
        name: [torch.load(root / name / f"P{world_size}-rank{r}.pt", weights_only=True)
               for r in range(world_size)]
        for name in CONFIGS
    }  # fmt: skip


@pytest.fixture(scope="module")
def resharded(tmp_path_factory) -> tuple[Path, dict, dict, dict]:
    """One process's reference runs, then P = 4 and P = 2 for every model (two spawns)."""
    root = tmp_path_factory.mktemp("reshard")
    references = {}
    for name, config in CONFIGS.items():
        # one process: the reference trajectory, and the folder P = 4 resumes from
        model = _model(0, config)
        optimizer = _optimizer(model)
        _steps(model, optimizer, first=0)
        save_sharded(model, optimizer, root / name / "p1")
        _steps(model, optimizer, first=STEPS)
        references[name] = _state(model, optimizer)
    return root, references, _spawn(4, root), _spawn(2, root)


def _whole(ranks: list[dict], key: str, shared: bool) -> dict:
    """One state from every rank's, model and optimizer slots consolidated alike."""
    model = consolidate(
        [{k[6:]: v for k, v in r[key].items() if k.startswith("model.")} for r in ranks],
        ranks[0]["edge_index"],
        shared,
    )
    state = {f"model.{k}": v for k, v in model.items() if k != "edge_index"}
    optim = {}
    for r in ranks:  # the same names as the model's, so consolidate slices them alike
        for k, v in r[key].items():
            if k.startswith("optim."):
                optim.setdefault(k, []).append(v)
    for k, parts in optim.items():
        name, slot = k[len("optim.") :].rsplit(".", 1)
        if slot == "step":
            state[k] = parts[0]
        else:
            parts = [{name: p} for p in parts]
            state[k] = consolidate(parts, ranks[0]["edge_index"], shared)[name]
    return state


def _assert_states(actual: dict, expected: dict, atol: float) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if atol == 0:
            assert torch.equal(actual[key], value), key
        else:
            torch.testing.assert_close(actual[key], value, rtol=0, atol=atol, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_checkpoints_reshard_between_4_2_and_1_processes(resharded, name):
    root, references, fours, twos = resharded
    config, shared = CONFIGS[name], CONFIGS[name].shared_weights
    # Across process counts the shared query/key gradient is summed in another order; AdamW
    # (lr 1e-2) turns its rounding-level entries into steps of either sign: 1.4e-5 apart
    # after 4 steps on 1.6 % of the key weight, every other entry within 2.4e-6.
    atol = 1e-4 if shared else 1e-5
    reference, four, two = references[name], fours[name], twos[name]
    straight = _whole(four, "straight", shared)
    _assert_states(_whole(four, "resumed", shared), straight, atol=0)  # same P: bit for bit
    _assert_states(straight, reference, atol=atol)  # P = 4 runs like one process
    _assert_states(_whole(four, "from_p1", shared), reference, atol=atol)  # 1 -> 4
    _assert_states(_whole(two, "from_p4", shared), straight, atol=atol)  # 4 -> 2
    for folder in ("p2", "p4"):  # 2 -> 1 and 4 -> 1
        model, optimizer = _resumed(root / name / folder, config)
        _steps(model, optimizer, first=STEPS)
        _assert_states(_state(model, optimizer), straight, atol=atol)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_single_process_continues_bit_for_bit_and_consolidates(tmp_path, name):
    config = CONFIGS[name]
    model = _model(0, config)
    optimizer = _optimizer(model)
    _steps(model, optimizer, first=0)
    save_sharded(model, optimizer, tmp_path / "run")
    whole = consolidated_state(tmp_path / "run", CortexNet(config))
    for name, value in model.state_dict().items():
        assert torch.equal(whole["model"][name], value), name
    assert torch.equal(whole["model"]["edge_index"], model.global_edge_index)
    _steps(model, optimizer, first=STEPS)
    resumed, resumed_optimizer = _resumed(tmp_path / "run", config)
    _steps(resumed, resumed_optimizer, first=STEPS)
    _assert_states(_state(resumed, resumed_optimizer), _state(model, optimizer), atol=0)


def test_a_folder_of_another_model_is_refused(tmp_path):
    model = _model(0)
    save_sharded(model, None, tmp_path / "run")
    other = ShardedCortexNet.from_model(CortexNet(CONFIG.replace(col_out=4)))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_sharded(other, None, tmp_path / "run")
    (tmp_path / "run" / ".metadata").write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(ValueError, match="metadata this reader trusts"):
        load_sharded(model, None, tmp_path / "run")
