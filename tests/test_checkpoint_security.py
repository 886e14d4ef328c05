"""Reading a checkpoint runs no code from it; writing one never follows a planted symlink."""

from __future__ import annotations

import pytest
import torch

from cortexgnn import CortexNet, atomic_save, load_article_checkpoint
from cortexgnn.checkpoint import UnsafeCheckpointError, read_checkpoint


class Payload:
    """What an attacker pickles: unpickling it calls ``open(marker, "w")``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(params=["zip", "legacy"])
def malicious_file(request, tmp_path):
    """A brain.pth-shaped file whose unpickling would create ``tmp_path / 'marker'``."""
    net = CortexNet(num_columns=4, in_dim=3, col_out=4, graph_k=2, graph_seed=0)
    state = {
        "model_state_dict": net.state_dict(),
        "hyperparams": net.hparams,
        "loss": Payload(tmp_path / "marker"),
    }
    path = tmp_path / "brain.pth"
    torch.save(state, path, _use_new_zipfile_serialization=request.param == "zip")
    return path, tmp_path / "marker"


def test_the_payload_is_live(malicious_file):
    """The control: an unrestricted unpickler does run it (so the tests below mean something)."""
    path, marker = malicious_file
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("reader", [read_checkpoint, load_article_checkpoint])
def test_malicious_pickle_is_refused_without_running(malicious_file, reader):
    path, marker = malicious_file
    with pytest.raises(UnsafeCheckpointError, match="contains Python objects") as info:
        reader(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and "open" in message  # names the file and the global
    assert "only tensors and plain values" in message
    assert "weights_only=False" not in message  # no advice to do the dangerous thing
    assert isinstance(info.value, ValueError)  # callers that catch bad files catch this too


def test_corrupt_file_is_not_called_unsafe(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        read_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_training_checkpoint_needs_no_allow_list(tmp_path):
    """Everything the training loop stores loads with ``weights_only=True`` as it is."""
    net = CortexNet(num_columns=4, in_dim=3, col_out=4, graph_k=2, graph_seed=0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.rand(2, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    state = {
        "epoch": 1,
        "model_state_dict": net.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "loss": float("nan"),
        "hyperparams": net.hparams,
        "model_config": net.config.to_dict(),
        "rng": {"torch": torch.get_rng_state(), "shuffle": torch.Generator().get_state()},
        "config": {"lr": 1e-3, "out_dir": None, "model_config": net.config.to_dict()},
        "environment": {"torch": torch.__version__, "cuda": None},
    }
    path = atomic_save(state, tmp_path / "checkpoint.pth")
    loaded = read_checkpoint(path)
    assert loaded["optimizer_state_dict"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])


def test_out_of_range_graph_is_refused_naming_the_file(tmp_path):
    net = CortexNet(num_columns=4, in_dim=3, col_out=4, graph_k=2, graph_seed=0)
    weights = net.state_dict()
    weights["edge_index"] = weights["edge_index"].clone()
    weights["edge_index"][0, 0] = 99  # a source column that does not exist
    path = tmp_path / "edited.pth"
    atomic_save(
        {"model_state_dict": weights, "hyperparams": net.hparams,
         "model_config": net.config.to_dict()},
        path,
    )  # fmt: skip
    with pytest.raises(ValueError, match="edited.pth") as info:
        load_article_checkpoint(path)
    assert "99" in str(info.value) or "range" in str(info.value)


def test_atomic_save_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    destination = tmp_path / "checkpoint.pth"
    destination.symlink_to(target)
    atomic_save({"a": 1}, destination)
    assert not destination.is_symlink()
    assert torch.load(destination)["a"] == 1
    assert target.read_text() == "keep me"
