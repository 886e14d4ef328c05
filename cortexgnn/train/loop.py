"""The article's training protocol as a library function: train (and resume) a model.

Protocol (the article's ``train.py``): shuffled batches of 128, AdamW (lr 1e-3,
weight decay 1e-5), ``CosineAnnealingLR`` with ``T_max = 12 * steps_per_epoch`` stepped every
batch, 10 epochs, the whole test set evaluated periodically and once more at the end. Two
deliberate differences: evaluations come every ``eval_every`` optimizer steps counted across
epochs (the article evaluates at every 100th batch of an epoch, which on the 12-batch digits
epochs would be never), and training always runs in train mode (the article never switches
back after an evaluation, so dropout stays off for the rest of that epoch).

A study's protocol (``val_size`` set) selects nothing on the test set: the periodic
evaluations run on a fixed validation split held out of the training images, the best step
is the best validation accuracy (its weights travel in the checkpoint as
``best_model_state_dict``), and the test set is evaluated once, when the run ends, with
those weights.

A run folder (:mod:`cortexgnn.train.run_dir`: new per run, locked while in use) holds
``checkpoint.pth`` (written atomically at every epoch end and when a run stops early),
``metrics.jsonl`` (one JSON record per line), ``summary.json`` and, with matplotlib,
``curves.png`` (see :mod:`cortexgnn.train.metrics`). The checkpoint is the article's
``brain.pth`` dict plus the full model settings (``model_config``) and what an exact resume
needs: scheduler state, step, position in the epoch, the shuffling and dropout RNG states
and the run's configuration. Under ``torchrun`` only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import atomic_save, brain_dict, read_checkpoint
from .config import (
    CheckpointMismatchError,
    TrainConfig,
    build_model,
    check_resumable,
    resolve_device,
)
from .data import load_dataset, validation_split
from .distributed import (
    all_reduce_mean,
    checkpoint_after_restart,
    distribute,
    join_torchrun,
    shard_batch,
)
from .evaluate import evaluate
from .metrics import MetricsLog, environment, peak_memory_mb, plot_curves, write_summary
from .run_dir import RunDir, open_run_dir
from .sharded import (
    best_folder,
    check_column_shards,
    remove_old_shards,
    restore_best,
    restore_model,
    save_best,
    save_model,
    shard_model,
)

__all__ = ["train"]


@dataclass
class _Progress:
    """Where a run stands; checkpointed, so times and the best accuracy survive a resume."""

    step: int = 0
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the epoch in progress
    loss: float = float("nan")  # last training loss (the article's "loss" key)
    train_s: float = 0.0
    train_cpu_s: float = 0.0  # process CPU time: steadier than wall time on a shared machine
    eval_s: float = 0.0
    best_acc: float | None = None
    best_step: int | None = None


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


def _restore(state: dict, path, model, optimizer, scheduler, shuffle, device) -> _Progress:
    restore_model(state, path, model, optimizer)  # one file, or a folder of column shards
    scheduler.load_state_dict(state["scheduler_state_dict"])
    shuffle.set_state(state["rng"]["shuffle"])
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if "progress" not in state:  # written before 1e0b9a6: the same facts, other keys
        totals = state["totals"]
        state["progress"] = dict(
            step=state["step"], epoch=state["epoch"], batch_in_epoch=state["batch_in_epoch"],
            loss=state["loss"], train_s=totals["train_s"], eval_s=totals["eval_s"],
            best_acc=totals["best_acc"], best_step=totals["best_step"],
        )  # fmt: skip
    return _Progress(**state["progress"])


def _compile_stage(model: nn.Module) -> None:
    """``torch.compile`` the costly part in place.

    That is the message passing of ``CortexNet``, the column loop of the reference, or the
    whole forward of a baseline.
    """
    for name in ("message_passing", "_column_activations", "forward"):
        if hasattr(model, name):
            setattr(model, name, torch.compile(getattr(model, name)))
            return


def train(config: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the summary (also in summary.json).

    Raises:
        ValueError: bad settings, a checkpoint that does not fit, a run folder in use or
            holding another run (:class:`~cortexgnn.train.run_dir.RunDirError`).
        FileNotFoundError: missing data or checkpoint.
        OSError: the run folder cannot be written (permissions, full disk); the last
            checkpoint stays intact.
    """
    device = resolve_device(config.device)
    if config.resume is None and checkpoint_after_restart(config.out_dir):  # torchrun restart
        config = replace(config, resume=checkpoint_after_restart(config.out_dir))
    state = read_checkpoint(config.resume, map_location="cpu") if config.resume else None
    if state is not None:
        check_resumable(state, config, config.resume)
    context = join_torchrun(device)  # None unless torchrun started several processes
    device, is_main = (device, True) if context is None else (context.device, context.is_main)
    if context is not None and config.model != "cortexnet":
        raise ValueError(
            f"--model {config.model} trains in one process only: launch it without torchrun "
            f"(or use --model cortexnet)"
        )
    if config.column_shards is not None:
        check_column_shards(config, 1 if context is None else context.world_size)
    run = contextlib.nullcontext(None)
    if is_main:  # rank 0 owns the run folder; the other processes write nothing
        resume_dir = Path(config.resume).parent if config.resume else None
        run = open_run_dir(config.out_dir, overwrite=config.overwrite, resume_dir=resume_dir)
    with run as run_dir:
        try:
            return _train(config, state, device, context, run_dir)
        except BaseException:
            if run_dir is not None:  # e.g. missing data: leave no empty runs/<timestamp>
                run_dir.discard_if_unused()
            raise


def _train(config: TrainConfig, state: dict | None, device, context, run: RunDir | None) -> dict:
    is_main = run is not None
    if run is not None:
        config = replace(config, out_dir=str(run.path))
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    train_set, test_set = load_dataset(config.dataset, config.data_dir, download=config.download)
    val_set = None
    if config.val_size is not None:  # a study: choices on validation, the test set once
        train_set, val_set = validation_split(train_set, config.val_size)
    torch.manual_seed(config.seed)
    model = build_model(config, train_set.x.size(1), int(train_set.y.max()) + 1).to(device)
    sharded = config.column_shards is not None
    if sharded:  # this process keeps its columns of the model every process built alike
        model = shard_model(model)
    kernel_s = _load_attention_kernel(model, device)  # a first build stays out of train_s
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, round(config.t_max_epochs * steps_per_epoch))
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    p = _Progress()
    if state is not None:
        p = _restore(state, config.resume, model, optimizer, scheduler, shuffle, device)
    out_dir = None if run is None else run.path
    previous_log = Path(config.resume).parent / "metrics.jsonl" if config.resume else None
    log = MetricsLog(
        None if out_dir is None else out_dir / "metrics.jsonl",
        resume_step=p.step if config.resume else None,
        resume_from=previous_log,
    )
    if config.compile:
        _compile_stage(model)
    if context is None or sharded:  # sharded: every process steps on the whole batch
        step_fn = model.training_step
    else:  # torchrun: each process trains on its shard of every global batch
        device_ids = [context.local_rank] if context.backend == "nccl" else None
        ddp = distribute(model, device_ids=device_ids)

        def step_fn(batch):
            loss = model.training_step(shard_batch(batch, context), forward=ddp)
            return all_reduce_mean(loss)  # the global batch's loss, the same on every process

    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    last_acc, last_eval_step = None, None
    best_state = _best_state(state, p, config.resume, model) if val_set is not None else None
    best_shards = {}  # column shards: the best weights' folder, written once per best step
    if sharded and state is not None and "best_sharded_state" in state:
        best_shards["best_sharded_state"] = state["best_sharded_state"]

    def run_eval(final: bool = False) -> None:
        nonlocal last_acc, last_eval_step, best_state
        start = time.perf_counter()
        split = test_set if val_set is None else val_set
        loss, last_acc = evaluate(model, split, config.batch_size)
        p.eval_s += time.perf_counter() - start
        last_eval_step = p.step
        improved = p.best_acc is None or last_acc > p.best_acc
        if improved:
            p.best_acc, p.best_step = last_acc, p.step
        if val_set is None:
            log.write(kind="eval", step=p.step, epoch=p.epoch, test_loss=loss,
                      test_acc=last_acc, final=final)  # fmt: skip
            return
        log.write(kind="eval", split="validation", step=p.step, epoch=p.epoch, val_loss=loss,
                  val_acc=last_acc, final=final)  # fmt: skip
        if improved:  # the weights (and statistics) the test set will see
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def save_checkpoint(shuffle_state: torch.Tensor) -> None:
        # column shards: every process writes its own, checkpoint.pth names their folder
        shards = save_model(model, optimizer, out_dir, p.step) if sharded else None
        if sharded and best_state is not None:
            if best_shards.get("best_sharded_state") != best_folder(p.best_step):  # a new best
                best_shards.update(save_best(model, best_state, out_dir, p.best_step))
            shards.update(best_shards)
        if out_dir is None:
            return
        # the article's brain.pth keys and every model setting, in CortexNet's keys
        state = brain_dict(model, epoch=p.epoch, loss=p.loss, article_keys=False,
                           optimizer_state_dict=optimizer.state_dict())  # fmt: skip
        if sharded:  # the weights and moments live in the shard folder that shards names
            del state["model_state_dict"], state["optimizer_state_dict"]
            state.update(shards)
        atomic_save(
            {
                **state,
                # what an exact resume needs
                "scheduler_state_dict": scheduler.state_dict(),
                "step": p.step,
                "progress": asdict(p),
                "rng": {
                    "shuffle": shuffle_state,  # at the start of the epoch in progress
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
                "config": config.to_dict(),
                "environment": environment(),
                # --val-size: the best validation step's weights, for the one test at the end
                # (column shards: in the shard folder that best_sharded_state names)
                **(
                    {} if best_state is None or sharded else {"best_model_state_dict": best_state}
                ),  # fmt: skip
            },
            out_dir / "checkpoint.pth",
        )
        if sharded:  # only now that checkpoint.pth names the new folders
            remove_old_shards(out_dir, shards["sharded_state"], shards.get("best_sharded_state"))

    bar = _progress_bar(config, total_steps, p.step) if is_main else None
    model.train()
    window, window_start = [], p.train_s  # steps/s over training time only, not evaluation
    with _StopFlag() as stop:
        while p.step < total_steps and not stop.requested:
            epoch_shuffle = shuffle.get_state()
            order = torch.randperm(len(train_set), generator=shuffle)  # [num_train]
            for index in order.split(config.batch_size)[p.batch_in_epoch :]:
                start, cpu_start = time.perf_counter(), time.process_time()
                batch = (train_set.x[index].to(device), train_set.y[index].to(device))
                optimizer.zero_grad()
                p.loss = step_fn(batch).item()  # forward, backward, Hebbian
                optimizer.step()
                scheduler.step()
                p.train_s += time.perf_counter() - start
                p.train_cpu_s += time.process_time() - cpu_start
                p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
                window.append(p.loss)
                if p.step % config.log_every == 0 or p.step == total_steps:
                    elapsed = max(p.train_s - window_start, 1e-9)
                    log.write(kind="train", step=p.step, epoch=p.epoch,
                              loss=sum(window) / len(window), lr=scheduler.get_last_lr()[0],
                              steps_per_s=len(window) / elapsed)  # fmt: skip
                    window, window_start = [], p.train_s
                if p.step % config.eval_every == 0:  # optimizer steps, across epochs
                    run_eval()
                _update_bar(bar, p.loss, last_acc, config.batch_size)
                if p.step >= total_steps or stop.requested:
                    break
            if p.batch_in_epoch == steps_per_epoch:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
                save_checkpoint(shuffle.get_state())
            else:  # stopped inside an epoch: a resume replays this epoch's order
                save_checkpoint(epoch_shuffle)
    if bar is not None:
        bar.close()
    # The final evaluation comes after the last checkpoint, so a resumed run and an
    # uninterrupted one see the same homeostasis statistics.
    if config.final_eval and last_eval_step != p.step:
        run_eval(final=True)
    test = None
    if val_set is not None and config.final_eval and p.step >= total_steps and best_state:
        # the run's one look at the test set, with the weights validation chose
        model.load_state_dict(best_state)
        start = time.perf_counter()
        test_loss, test_acc = evaluate(model, test_set, config.batch_size)
        p.eval_s += time.perf_counter() - start
        test = {"test_loss": test_loss, "test_acc": test_acc, "weights_step": p.best_step}
        log.write(kind="test", step=p.step, epoch=p.epoch, **test)
    log.close()
    summary = _summary(config, model, p, last_acc, steps_per_epoch, device)
    summary["kernel_load_s"] = kernel_s  # not in train_time_s: a cold cache compiles here
    if val_set is not None:  # nothing in it is a maximum over test evaluations
        summary.update(selection="validation", best_val_acc=p.best_acc, final_val_acc=last_acc,
                       final_test_acc=None if test is None else test["test_acc"],
                       test_loss=None if test is None else test["test_loss"],
                       best_test_acc=None, num_validation=len(val_set))  # fmt: skip
    summary["rank"] = 0 if context is None else context.rank
    summary["world_size"] = 1 if context is None else context.world_size
    summary["interrupted"] = stop.requested  # Ctrl-C: the command exits 130
    if out_dir is not None:
        if config.plot:
            title = f"{config.model} on {config.dataset}"
            summary["plot"] = plot_curves(out_dir / "metrics.jsonl", out_dir / "curves.png", title)
        write_summary(summary, out_dir / "summary.json")
    return summary


def _best_state(state: dict | None, p: _Progress, path: str | None, model) -> dict | None:
    """The best validation step's weights of a resumed ``--val-size`` run; ``None`` if new.

    A column-sharded run saved them as shards; ``model`` (sharded or not) gets its part.
    """
    if state is None or p.best_step is None:
        return None
    if "best_sharded_state" in state:
        return restore_best(state, path, model)
    if not isinstance(state.get("best_model_state_dict"), dict):
        raise CheckpointMismatchError(
            f"{path} records a best validation step ({p.best_step}) but not its weights "
            f"(best_model_state_dict): the test set would see other weights; start the run "
            f"afresh"
        )
    return state["best_model_state_dict"]


def _update_bar(bar, loss: float, acc: float | None, batch_size: int) -> None:
    if bar is None:
        return
    bar.update(1)
    rate = bar.format_dict.get("rate") or 0.0  # steps/s, smoothed by tqdm
    bar.set_postfix(loss=f"{loss:.4f}", acc="-" if acc is None else f"{100 * acc:.2f}%",
                    samples_s=f"{rate * batch_size:.0f}", refresh=False)  # fmt: skip


def _load_attention_kernel(model, device: torch.device) -> float:
    """Load (on a cold cache: compile) the C++ attention kernel before the timed steps.

    Returns the seconds it took, reported apart from the training time; 0 when the model
    does not attend on a CPU.
    """
    from ..nn.conv import ColumnAttentionConv
    from ..ops.kernel import load_kernel

    if device.type != "cpu" or not any(isinstance(m, ColumnAttentionConv) for m in model.modules()):
        return 0.0
    start = time.perf_counter()
    load_kernel()  # None (with its one warning) where it cannot be built: PyTorch paths then
    return time.perf_counter() - start


def _summary(config, model, p: _Progress, last_acc, steps_per_epoch: int, device) -> dict:
    return {
        "dataset": config.dataset,
        "model": config.model,
        "num_parameters": sum(param.numel() for param in model.parameters()),
        "steps": p.step,
        "steps_per_epoch": steps_per_epoch,
        "epochs_completed": p.epoch,
        "finished": p.step >= config.epochs * steps_per_epoch,
        "final_test_acc": last_acc,
        "best_test_acc": p.best_acc,
        "best_step": p.best_step,
        "train_time_s": p.train_s,
        "eval_time_s": p.eval_s,
        "time_per_step_s": p.train_s / p.step if p.step else None,
        "cpu_time_per_step_s": p.train_cpu_s / p.step if p.step else None,
        "steps_per_s": p.step / p.train_s if p.train_s else None,
        "peak_memory_mb": peak_memory_mb(device),
        "out_dir": config.out_dir,
        "config": config.to_dict(),  # the settings as given
        # the model as built: in_dim and top_out from the dataset, graph_seed from --seed
        "model_config": model.config.to_dict(),
        "environment": environment(),
    }
