"""Test-set evaluation of a model in memory or of a checkpoint on disk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._limits import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_MESSAGE_ITERS
from ..checkpoint import check_model_size, model_from_state, read_checkpoint, stored_elements
from ..nn.config import ModelConfig
from .config import CheckpointMismatchError, TrainConfig, build_model, resolve_device
from .data import Split, load_dataset

__all__ = ["evaluate", "evaluate_checkpoint"]


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 128) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split``, in eval mode.

    Like the article, this runs the model's ``forward``, so homeostasis statistics move
    (unless the model freezes them in eval mode). The model's train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size].to(device)  # [b, in_dim]
        y = split.y[start : start + batch_size].to(device)  # [b]
        logits = model(x)  # [b, num_classes]
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    model.train(was_training)
    return total_loss / len(split), correct / len(split)


def evaluate_checkpoint(
    path: str,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    download: bool = False,
    batch_size: int = 128,
    device: str = "auto",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_message_iters: int = DEFAULT_MAX_MESSAGE_ITERS,
) -> dict:
    """Test accuracy of a checkpoint: a training checkpoint or the article's ``brain.pth``.

    The model is rebuilt from the checkpoint's stored model settings, fix flags included.
    ``dataset=None`` uses the one stored in a training checkpoint, else ``mnist`` for 784
    inputs (the article's) and ``digits`` for 64. ``max_elements`` and ``max_message_iters``
    bound the sizes the file may ask for (:func:`~cortexgnn.checkpoint.check_model_size`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    torch_device = resolve_device(device)
    state = read_checkpoint(path)
    if "sharded_state" in state:  # a --column-shards run: its shards, put together
        from .sharded import consolidated_checkpoint

        state = consolidated_checkpoint(state, path)
    saved = state.get("config")
    saved = saved if isinstance(saved, dict) else {}
    if saved.get("model", "cortexnet") in ("cortexnet", "reference"):
        limits = {"max_elements": max_elements, "max_message_iters": max_message_iters}
        model = model_from_state(state, path, **limits)  # the file is read once
    else:  # a baseline of the ablation study: rebuilt from its run's settings
        model = _baseline(state, saved, path, max_elements)
    model = model.to(torch_device)
    in_dim = model.config.in_dim
    dataset = dataset or saved.get("dataset") or {784: "mnist", 64: "digits"}.get(in_dim)
    if dataset is None:
        raise CheckpointMismatchError(f"{path}: in_dim={in_dim} fits no dataset; pass --dataset")
    _, test_set = load_dataset(dataset, data_dir, download=download)
    if test_set.x.size(1) != in_dim:
        raise CheckpointMismatchError(
            f"{path} expects {in_dim} input features but {dataset} has {test_set.x.size(1)}"
        )
    test_loss, test_acc = evaluate(model, test_set, batch_size)
    return {
        "checkpoint": str(path),
        "dataset": dataset,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "num_test": len(test_set),
        "epoch": state.get("epoch"),
        "model_config": model.config.to_dict(),
    }


def _baseline(state: dict, saved: dict, path: str, max_elements: int) -> nn.Module:
    """The ``--model`` baseline a training checkpoint holds, with its weights."""
    sizes = state.get("model_config")
    if isinstance(sizes, dict):  # before anything is built from the file's sizes
        try:
            stored = ModelConfig.from_dict(dict(sizes))
        except (TypeError, ValueError) as err:
            raise CheckpointMismatchError(f"{path}: its model_config is damaged: {err}") from err
        held = stored_elements(state.get("model_state_dict"))
        check_model_size(stored, path, max_elements=max_elements, stored_elements=held)
    try:
        config = TrainConfig.from_dict(saved)
        sizes = state["model_config"]
        model = build_model(config, int(sizes["in_dim"]), int(sizes["top_out"]))
        model.load_state_dict(state["model_state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointMismatchError(
            f"{path}: its --model {saved.get('model')!r} settings do not rebuild the stored "
            f"weights: {err}"
        ) from err
    return model
