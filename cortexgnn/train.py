"""The article's training protocol as library functions: train, evaluate, resume.

Protocol (SPEC.md, the article's ``train.py``): shuffled batches of 128, AdamW (lr 1e-3,
weight decay 1e-5), ``CosineAnnealingLR`` with ``T_max = 12 * steps_per_epoch`` stepped every
batch, 10 epochs, the whole test set evaluated after every 100th batch of each epoch (the
article's ``batch_idx % 100 == 0``) and once more at the end. One deliberate difference:
the article never switches back to train mode after an evaluation (dropout stays off for the
rest of that epoch); here training always runs in train mode.

A run directory holds ``checkpoint.pth`` (written atomically at every epoch end and when a run
stops early), ``metrics.jsonl`` (one JSON record per line), ``summary.json`` and, with
matplotlib, ``curves.png`` (see :mod:`cortexgnn.metrics`). The checkpoint is the article's
``brain.pth`` dict plus what an exact resume needs: scheduler state, step, position in the
epoch, the shuffling and dropout RNG states and the run's configuration.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_save, load_article_checkpoint, read_checkpoint
from .data import DATASETS, Split, load_dataset
from .metrics import MetricsLog, environment, peak_memory_mb, plot_curves, write_summary
from .model import CortexNet
from .reference import DenseReference

__all__ = [
    "CheckpointMismatchError",
    "TrainConfig",
    "evaluate",
    "evaluate_checkpoint",
    "resolve_device",
    "train",
]

MODELS = ("cortexnet", "reference")
# Fields that belong to one invocation, not to the run: a resumed run takes them afresh.
SESSION_FIELDS = frozenset(
    {"data_dir", "download", "device", "compile", "max_steps", "resume", "progress", "plot"}
)
# Fields a resumed run may change on purpose: train longer, or write elsewhere.
EXTENDABLE_FIELDS = frozenset({"epochs", "out_dir", "log_every"})


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the requested run (other hyper-parameters or protocol)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint as ``config``.

    Model fields mirror the article's hyper-parameters (``columns`` is ``num_columns``);
    ``in_dim`` and ``top_out`` come from the dataset. ``seed`` seeds the weights, dropout, the
    shuffling and the small-world graph (``graph_seed``): same seed, same run.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "cortexnet"
    columns: int = 64
    col_out: int = 128
    graph_k: int = 8
    graph_p: float = 0.15
    message_iters: int = 4
    plasticity_lr: float = 5e-5
    attention: bool = True
    e_i_ratio: float = 0.8
    dropout: float = 0.1
    attention_uses_edge_weight: bool = False
    freeze_homeostasis_in_eval: bool = False
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    t_max_epochs: float = 12.0
    eval_every: int = 100
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    out_dir: str = "runs/latest"
    resume: str | None = None
    progress: bool = True
    plot: bool = True
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for name in ("columns", "epochs", "batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model == "reference" and (
            self.attention_uses_edge_weight or self.freeze_homeostasis_in_eval
        ):
            raise ValueError(
                "the reference model has no attention_uses_edge_weight or "
                "freeze_homeostasis_in_eval option"
            )


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def build_model(config: TrainConfig, in_dim: int, num_classes: int) -> nn.Module:
    """The configured ``CortexNet`` or ``DenseReference`` (graph seeded by ``config.seed``)."""
    hparams = dict(
        num_columns=config.columns, in_dim=in_dim, col_out=config.col_out, top_out=num_classes,
        graph_k=config.graph_k, graph_p=config.graph_p, message_iters=config.message_iters,
        plasticity_lr=config.plasticity_lr, use_attention=config.attention,
        e_i_ratio=config.e_i_ratio, dropout=config.dropout,
    )  # fmt: skip
    if config.model == "reference":
        return DenseReference(**hparams, graph_seed=config.seed)
    return CortexNet(
        **hparams,
        graph_seed=config.seed,
        attention_uses_edge_weight=config.attention_uses_edge_weight,
        freeze_homeostasis_in_eval=config.freeze_homeostasis_in_eval,
    )


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


def _check_resumable(state: dict, config: TrainConfig, path: str) -> None:
    if "config" not in state or "step" not in state:
        raise CheckpointMismatchError(
            f"{path} is not a cortexgnn training checkpoint (no 'config'/'step'): it cannot be "
            "resumed; evaluate it with `cortexgnn eval` instead"
        )
    saved, now = state["config"], asdict(config)
    ignored = SESSION_FIELDS | EXTENDABLE_FIELDS
    diff = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}"
        for k, v in now.items()
        if k not in ignored and saved.get(k) != v
    ]
    if diff:
        raise CheckpointMismatchError(
            f"{path} was trained with other settings; resume with the same ones ("
            + "; ".join(diff)
            + ")"
        )


class _StopFlag:
    """Ctrl-C asks the loop to stop after the current step and write a checkpoint."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress_bar(config: TrainConfig, total: int, initial: int):
    if not config.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0)


def train(config: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the summary (also in summary.json)."""
    device = resolve_device(config.device)
    train_set, test_set = load_dataset(config.dataset, config.data_dir, download=config.download)
    num_classes = int(train_set.y.max()) + 1
    torch.manual_seed(config.seed)
    model = build_model(config, train_set.x.size(1), num_classes).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, round(config.t_max_epochs * steps_per_epoch))
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    step, epoch, batch_in_epoch, loss_value = 0, 0, 0, float("nan")
    totals = {"train_s": 0.0, "eval_s": 0.0, "best_acc": None, "best_step": None}
    if config.resume:
        state = read_checkpoint(config.resume, map_location=device)
        _check_resumable(state, config, config.resume)
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        scheduler.load_state_dict(state["scheduler_state_dict"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        loss_value, totals = state["loss"], dict(state["totals"])
        shuffle.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    log = MetricsLog(out_dir / "metrics.jsonl", keep_until_step=step if config.resume else -1)
    step_fn = model.training_step
    if config.compile:
        name = "column_activations" if isinstance(model, CortexNet) else "_column_activations"
        setattr(model, name, torch.compile(getattr(model, name)))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    last_acc, last_eval_step = None, None

    def run_eval() -> None:
        nonlocal last_acc, last_eval_step
        start = time.perf_counter()
        test_loss, last_acc = evaluate(model, test_set, config.batch_size)
        totals["eval_s"] += time.perf_counter() - start
        last_eval_step = step
        if totals["best_acc"] is None or last_acc > totals["best_acc"]:
            totals["best_acc"], totals["best_step"] = last_acc, step
        log.write(kind="eval", step=step, epoch=epoch, test_loss=test_loss, test_acc=last_acc)

    def save_checkpoint(epoch_start_shuffle: torch.Tensor) -> None:
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        atomic_save(
            {
                "epoch": epoch,
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(),
                "loss": loss_value,
                "hyperparams": dict(model.hparams),
                "scheduler_state_dict": scheduler.state_dict(),
                "step": step,
                "batch_in_epoch": batch_in_epoch,
                "rng": {
                    "shuffle": epoch_start_shuffle,
                    "torch": torch.get_rng_state(),
                    "cuda": cuda_rng,
                },
                "config": asdict(config),
                "model_kind": config.model,
                "totals": dict(totals),
                "environment": environment(),
            },
            out_dir / "checkpoint.pth",
        )

    bar = _progress_bar(config, total_steps, step)
    model.train()
    window, window_start = [], time.perf_counter()
    with _StopFlag() as stop:
        while step < total_steps and not stop.requested:
            epoch_start_shuffle = shuffle.get_state()
            order = torch.randperm(len(train_set), generator=shuffle)  # [num_train]
            for index in order.split(config.batch_size)[batch_in_epoch:]:
                start = time.perf_counter()
                batch = (train_set.x[index].to(device), train_set.y[index].to(device))
                optimizer.zero_grad()
                loss = step_fn(batch)
                optimizer.step()
                scheduler.step()
                loss_value = loss.item()
                totals["train_s"] += time.perf_counter() - start
                step, batch_in_epoch = step + 1, batch_in_epoch + 1
                window.append(loss_value)
                if step % config.log_every == 0 or step == total_steps:
                    now = time.perf_counter()
                    log.write(
                        kind="train",
                        step=step,
                        epoch=epoch,
                        loss=sum(window) / len(window),
                        lr=scheduler.get_last_lr()[0],
                        steps_per_s=len(window) / (now - window_start),
                    )
                    window, window_start = [], now
                if batch_in_epoch % config.eval_every == 0:
                    run_eval()
                if bar is not None:
                    bar.update(1)
                    rate = bar.format_dict.get("rate") or 0.0
                    acc = "-" if last_acc is None else f"{100 * last_acc:.2f}%"
                    bar.set_postfix(
                        loss=f"{loss_value:.4f}",
                        acc=acc,
                        samples_s=f"{rate * config.batch_size:.0f}",
                        refresh=False,
                    )
                if step >= total_steps or stop.requested:
                    break
            if batch_in_epoch == steps_per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
                save_checkpoint(shuffle.get_state())
            else:  # stopped inside an epoch: resume replays this epoch's order
                save_checkpoint(epoch_start_shuffle)
    if bar is not None:
        bar.close()
    # The final evaluation comes after the last checkpoint, so a resumed run and an
    # uninterrupted one see the same homeostasis statistics.
    if last_eval_step != step:
        run_eval()
    summary = {
        "dataset": config.dataset,
        "model": config.model,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs_completed": epoch,
        "finished": step >= config.epochs * steps_per_epoch,
        "final_test_acc": last_acc,
        "best_test_acc": totals["best_acc"],
        "best_step": totals["best_step"],
        "train_time_s": totals["train_s"],
        "eval_time_s": totals["eval_s"],
        "time_per_step_s": totals["train_s"] / step if step else None,
        "steps_per_s": step / totals["train_s"] if totals["train_s"] else None,
        "peak_memory_mb": peak_memory_mb(device),
        "out_dir": str(out_dir),
        "config": asdict(config),
        "environment": environment(),
    }
    log.close()
    if config.plot:
        summary["plot"] = plot_curves(out_dir / "metrics.jsonl", out_dir / "curves.png")
    write_summary(summary, out_dir / "summary.json")
    return summary


def evaluate_checkpoint(
    path: str,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    download: bool = False,
    batch_size: int = 128,
    device: str = "auto",
) -> dict:
    """Test accuracy of a checkpoint: a training checkpoint or the article's ``brain.pth``.

    ``dataset=None`` uses the one stored in a training checkpoint, else ``mnist`` for 784
    inputs (the article's) and ``digits`` for 64.
    """
    state = read_checkpoint(path)
    saved = state.get("config", {})
    flags = {
        k: saved[k]
        for k in ("attention_uses_edge_weight", "freeze_homeostasis_in_eval")
        if k in saved and saved.get("model") == "cortexnet"
    }
    model = load_article_checkpoint(path, **flags).to(resolve_device(device))
    in_dim = model.in_dim
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
    }
