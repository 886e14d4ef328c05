"""The training loop: it learns, it resumes exactly, its checkpoints and logs are complete."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace

import pytest
import torch
from test_data import write_tiny_mnist

from cortexgnn import CortexNet, DenseReference, load_article_checkpoint, save_article_checkpoint
from cortexgnn.nn.config import ModelConfig
from cortexgnn.train.config import CheckpointMismatchError, TrainConfig
from cortexgnn.train.data import load_dataset, validation_split
from cortexgnn.train.evaluate import evaluate, evaluate_checkpoint
from cortexgnn.train.loop import _StopFlag, train

# digits (64 inputs), 6 columns of 8 channels; 1437 / 256 -> 6 steps per epoch
MODEL = dict(num_columns=6, graph_k=2, col_out=8)
TINY = dict(
    dataset="digits", batch_size=256, epochs=2, eval_every=4, log_every=2, progress=False,
    plot=False,
)  # fmt: skip


def tiny(tmp_path, **overrides) -> TrainConfig:
    """A tiny run in ``tmp_path``; ModelConfig fields among ``overrides`` go to the model."""
    model = {k: overrides.pop(k) for k in list(overrides) if hasattr(ModelConfig, k)}
    model_config = ModelConfig(**{**MODEL, **model})
    return TrainConfig(**{**TINY, "out_dir": str(tmp_path), **overrides}, model_config=model_config)


def records(run_dir, drop=("time", "steps_per_s")):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in lines]


def test_train_learns_and_writes_a_complete_run(tmp_path):
    summary = train(tiny(tmp_path, epochs=4, lr=1e-2, plot=True, eval_every=5))
    assert summary["steps"] == 24 and summary["epochs_completed"] == 4 and summary["finished"]
    assert summary["final_test_acc"] > 0.5  # chance is 0.1
    logged = records(tmp_path)
    evals = [r for r in logged if r["kind"] == "eval"]
    # every eval_every-th optimizer step, counted across epochs, plus once at the end
    assert [r["step"] for r in evals] == [5, 10, 15, 20, 24]
    assert evals[-1]["final"] and evals[-1]["test_acc"] == summary["final_test_acc"]
    assert max(r["test_acc"] for r in evals) == summary["best_test_acc"]
    losses = [r["loss"] for r in logged if r["kind"] == "train"]
    assert losses[-1] < losses[0]
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 24


def test_checkpoint_is_an_article_brain_pth_plus_resume_state(tmp_path):
    train(tiny(tmp_path, dropout=0.05))
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=True)  # plain values only
    for key in ("epoch", "model_state_dict", "optimizer_state_dict", "loss", "hyperparams"):
        assert key in state
    assert state["epoch"] == 2 and state["step"] == 12
    assert state["hyperparams"]["num_columns"] == 6 and state["hyperparams"]["in_dim"] == 64
    assert state["scheduler_state_dict"]["T_max"] == 12 * 6
    assert state["config"]["model_config"]["num_columns"] == 6
    # every model setting, resolved: the dataset's sizes and the graph seed (--seed)
    assert state["model_config"] == ModelConfig(**MODEL, in_dim=64, top_out=10, graph_seed=0,
                                                dropout=0.05).to_dict()  # fmt: skip
    assert state["hyperparams"] == ModelConfig.from_dict(state["model_config"]).article_hparams()
    model = load_article_checkpoint(tmp_path / "checkpoint.pth")
    assert model.config.to_dict() == state["model_config"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model_state_dict"][name]), name


@pytest.mark.parametrize("stop_at", [4, 6])  # inside the first epoch, and at its end
def test_resume_ends_with_the_same_weights(tmp_path, stop_at):
    whole = tmp_path / "whole"
    train(tiny(whole))
    parts = tmp_path / "parts"
    first = train(tiny(parts, max_steps=stop_at))
    assert first["steps"] == stop_at and not first["finished"]
    train(tiny(parts, resume=str(parts / "checkpoint.pth")))
    a = torch.load(whole / "checkpoint.pth", weights_only=False)
    b = torch.load(parts / "checkpoint.pth", weights_only=False)
    assert a["step"] == b["step"] == 12
    for name, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][name]), name
    for slot, values in a["optimizer_state_dict"]["state"].items():
        assert torch.equal(values["exp_avg"], b["optimizer_state_dict"]["state"][slot]["exp_avg"])
    assert records(whole) == records(parts)  # same losses and accuracies, no duplicates


def test_same_seed_same_run_other_seed_other_graph(tmp_path):
    a = train(tiny(tmp_path / "a", epochs=1, final_eval=False))
    b = train(tiny(tmp_path / "b", epochs=1, final_eval=False))
    c = train(tiny(tmp_path / "c", epochs=1, final_eval=False, seed=1))
    assert records(tmp_path / "a") == records(tmp_path / "b")
    assert a["best_test_acc"] == b["best_test_acc"]
    graph = [torch.load(tmp_path / r / "checkpoint.pth", weights_only=False)["model_state_dict"]
             ["edge_index"] for r in "abc"]  # fmt: skip
    assert torch.equal(graph[0], graph[1]) and not torch.equal(graph[0], graph[2])
    assert c["steps"] == 6


def test_resume_refuses_other_hyperparameters(tmp_path):
    train(tiny(tmp_path, max_steps=2))
    with pytest.raises(CheckpointMismatchError, match="num_columns: checkpoint 6 vs now 7"):
        train(tiny(tmp_path, num_columns=7, resume=str(tmp_path / "checkpoint.pth")))
    with pytest.raises(CheckpointMismatchError, match="lr: checkpoint 0.001 vs now 0.01"):
        train(tiny(tmp_path, lr=1e-2, resume=str(tmp_path / "checkpoint.pth")))


def test_resume_refuses_an_article_checkpoint(tmp_path):
    ref = DenseReference(num_columns=6, in_dim=64, col_out=8, graph_k=2, graph_seed=0)
    save_article_checkpoint(tmp_path / "brain.pth", ref)
    with pytest.raises(CheckpointMismatchError, match="cannot be resumed"):
        train(tiny(tmp_path / "run", resume=str(tmp_path / "brain.pth")))


def test_reference_model_trains_and_evaluates_as_cortexnet(tmp_path):
    summary = train(tiny(tmp_path, model="reference", epochs=1, eval_every=100))
    assert summary["model"] == "reference" and summary["steps"] == 6
    state = torch.load(tmp_path / "checkpoint.pth", weights_only=False)
    assert "adj_struct" in state["model_state_dict"]  # the article's BrainNetwork keys
    # evaluating the checkpoint replays the final evaluation exactly (same buffers, batches)
    result = evaluate_checkpoint(str(tmp_path / "checkpoint.pth"))
    assert result["dataset"] == "digits"
    assert result["test_acc"] == pytest.approx(summary["final_test_acc"], abs=1 / 360)


def test_evaluate_checkpoint_of_an_article_file(tmp_path):
    ref = DenseReference(num_columns=6, in_dim=64, col_out=8, graph_k=2, graph_seed=0).eval()
    save_article_checkpoint(tmp_path / "brain.pth", ref, epoch=10)
    expected = evaluate(ref.to_cortexnet(), load_dataset("digits")[1])
    result = evaluate_checkpoint(str(tmp_path / "brain.pth"))  # dataset inferred: 64 inputs
    assert result["dataset"] == "digits" and result["epoch"] == 10
    assert result["test_acc"] == pytest.approx(expected[1], abs=1 / 360)
    write_tiny_mnist(tmp_path)
    with pytest.raises(CheckpointMismatchError, match="expects 64 input features"):
        evaluate_checkpoint(str(tmp_path / "brain.pth"), dataset="mnist", data_dir=str(tmp_path))


def test_evaluate_restores_the_mode_and_moves_homeostasis():
    model = CortexNet(num_columns=6, in_dim=64, col_out=8, graph_k=2, graph_seed=0).train()
    before = model.homeostasis.activity_avg.clone()
    loss, acc = evaluate(model, load_dataset("digits")[1], batch_size=100)
    assert model.training and 0 <= acc <= 1 and loss > 0
    assert not torch.equal(before, model.homeostasis.activity_avg)  # the article's quirk


def test_stop_flag_turns_ctrl_c_into_a_request():
    with _StopFlag() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_final_eval_and_threads(tmp_path):
    try:
        summary = train(tiny(tmp_path, max_steps=2, eval_every=100, final_eval=False, threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert summary["final_test_acc"] is None
    assert all(r["kind"] == "train" for r in records(tmp_path))


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="gat")
    with pytest.raises(ValueError, match="reference model has only the article's settings"):
        TrainConfig(model="reference", model_config=ModelConfig(freeze_homeostasis_in_eval=True))
    assert replace(TrainConfig(), model="reference").model == "reference"


def test_reference_under_torchrun_is_refused_before_any_file(tmp_path, monkeypatch):
    from cortexgnn.train import loop
    from cortexgnn.train.distributed import DistributedContext

    context = DistributedContext(0, 2, 0, torch.device("cpu"), "gloo")
    monkeypatch.setattr(loop, "join_torchrun", lambda device: context)
    with pytest.raises(ValueError, match="--model reference trains in one process only"):
        train(tiny(tmp_path / "run", model="reference"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_compile_trains_the_same_model(tmp_path):
    # no dropout: compiled code draws its random masks from another generator
    eager = train(tiny(tmp_path / "eager", epochs=1, dropout=0.0))
    compiled = train(tiny(tmp_path / "compiled", epochs=1, dropout=0.0, compile=True))
    assert compiled["steps"] == eager["steps"]
    a = torch.load(tmp_path / "eager" / "checkpoint.pth", weights_only=False)
    b = torch.load(tmp_path / "compiled" / "checkpoint.pth", weights_only=False)
    for name, tensor in a["model_state_dict"].items():
        torch.testing.assert_close(b["model_state_dict"][name], tensor, atol=1e-4, rtol=1e-4)


def test_resume_reads_checkpoints_written_before_the_progress_key(tmp_path):
    whole = train(tiny(tmp_path / "whole"))
    train(tiny(tmp_path / "old", max_steps=4))
    path = tmp_path / "old" / "checkpoint.pth"
    state = torch.load(path, weights_only=False)
    p = state.pop("progress")  # the layout of commit 94cfaf2
    state["batch_in_epoch"] = p["batch_in_epoch"]
    state["totals"] = {k: p[k] for k in ("train_s", "eval_s", "best_acc", "best_step")}
    torch.save(state, path)
    resumed = train(tiny(tmp_path / "old", resume=str(path)))
    assert resumed["final_test_acc"] == whole["final_test_acc"] and resumed["steps"] == 12


def test_progress_bar_shows_the_latest_accuracy(tmp_path, capsys):
    train(tiny(tmp_path, epochs=1, progress=True, eval_every=3, final_eval=False))
    err = capsys.readouterr().err
    assert "6/6" in err and "acc=" in err and "acc=-" not in err.splitlines()[-1].split("\r")[-1]


def test_runs_without_the_optional_tqdm_and_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    summary = train(tiny(tmp_path, epochs=1, progress=True, plot=True))
    assert summary["steps"] == 6 and summary["plot"] is None
    assert not (tmp_path / "curves.png").exists()


def test_the_kernel_loads_before_the_timed_steps(tmp_path, monkeypatch):
    """A cold kernel cache compiles before training starts: its time is reported apart."""
    import time as time_module

    from cortexgnn.ops import kernel

    calls = []

    def slow_load():
        calls.append(time_module.perf_counter())
        time_module.sleep(1.0)  # a compile, shortened
        return None

    monkeypatch.setattr(kernel, "load_kernel", slow_load)
    summary = train(tiny(tmp_path / "run", max_steps=2))
    assert len(calls) == 1 and summary["kernel_load_s"] >= 1.0
    assert summary["train_time_s"] < 1.0  # two tiny steps: the wait is not in them


# --- the study protocol: a validation split, the test set once -------------------------


def test_validation_split_is_fixed_disjoint_and_independent_of_the_run_seed():
    train_set, _ = load_dataset("digits")
    rest, val = validation_split(train_set, 200)
    again_rest, again_val = validation_split(train_set, 200)
    assert len(val) == 200 and len(rest) == len(train_set) - 200
    assert torch.equal(val.x, again_val.x) and torch.equal(rest.y, again_rest.y)
    # every training image lands in exactly one of the two parts
    rows = {tuple(r.tolist()) + (int(c),) for r, c in zip(train_set.x, train_set.y, strict=True)}
    parts = [
        tuple(r.tolist()) + (int(c),) for s in (rest, val) for r, c in zip(s.x, s.y, strict=True)
    ]
    assert len(parts) == len(train_set) and set(parts) == rows
    _, other = validation_split(train_set, 200, seed=1)
    assert not torch.equal(val.x, other.x)
    with pytest.raises(ValueError, match=r"val_size must lie in 1..1436"):
        validation_split(train_set, len(train_set))


def test_val_size_chooses_on_validation_and_tests_once_with_the_chosen_weights(tmp_path):
    summary = train(
        tiny(tmp_path, epochs=3, lr=1e-2, val_size=300, freeze_homeostasis_in_eval=True)
    )
    logged = records(tmp_path)
    evals = [r for r in logged if r["kind"] == "eval"]
    tests = [r for r in logged if r["kind"] == "test"]
    assert evals and all(r["split"] == "validation" and "test_acc" not in r for r in evals)
    assert len(tests) == 1 and tests[0]["step"] == summary["steps"]  # once, at the end
    best = max(evals, key=lambda r: r["val_acc"])  # the first of equals, as the loop keeps it
    assert summary["best_step"] == best["step"] == tests[0]["weights_step"]
    assert summary["best_val_acc"] == best["val_acc"] and summary["best_test_acc"] is None
    assert summary["num_validation"] == 300 and summary["selection"] == "validation"
    # the one test number is the chosen step's weights on the whole test set
    # (the last checkpoint precedes the end-of-run evaluation: if that one is the best, its
    # weights are the checkpoint's own; frozen statistics leave evaluated weights unchanged)
    saved = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    at_end = best["step"] == summary["steps"]
    assert at_end or saved["progress"]["best_step"] == best["step"]
    model = CortexNet(ModelConfig(**MODEL, in_dim=64, top_out=10, graph_seed=0))
    model.load_state_dict(saved["model_state_dict" if at_end else "best_model_state_dict"])
    _, acc = evaluate(model, load_dataset("digits")[1], batch_size=256)
    assert summary["final_test_acc"] == acc == tests[0]["test_acc"]


def test_val_size_resume_tests_the_weights_chosen_before_the_interruption(tmp_path):
    whole = train(tiny(tmp_path / "whole", lr=1e-2, val_size=300))
    parts = tmp_path / "parts"
    train(tiny(parts, lr=1e-2, val_size=300, max_steps=5))
    resumed = train(tiny(parts, lr=1e-2, val_size=300, resume=str(parts / "checkpoint.pth")))
    for key in ("best_step", "best_val_acc", "final_test_acc", "final_val_acc"):
        assert resumed[key] == whole[key], key
    state = torch.load(parts / "checkpoint.pth", weights_only=True)
    del state["best_model_state_dict"]
    torch.save(state, parts / "checkpoint.pth")
    with pytest.raises(CheckpointMismatchError, match="not its weights"):
        train(tiny(parts, lr=1e-2, val_size=300, epochs=3, resume=str(parts / "checkpoint.pth")))


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_homeostasis_makes_training_blind_to_evaluations(tmp_path, freeze):
    """With the statistics frozen in eval mode, evaluating often or never trains the same
    weights; the article's eval-time updates (the labelled variant) let evaluations in."""
    often = tmp_path / "often"
    never = tmp_path / "never"
    for folder, every in ((often, 2), (never, 1000)):
        train(tiny(folder, val_size=300, eval_every=every, final_eval=False,
                   freeze_homeostasis_in_eval=freeze))  # fmt: skip
    a = torch.load(often / "checkpoint.pth", weights_only=True)["model_state_dict"]
    b = torch.load(never / "checkpoint.pth", weights_only=True)["model_state_dict"]
    same = all(torch.equal(a[k], b[k]) for k in a)
    assert same == freeze
    if not freeze:
        assert not torch.equal(a["homeostasis.activity_avg"], b["homeostasis.activity_avg"])


def test_val_size_validation():
    with pytest.raises(ValueError, match="val_size must be >= 1"):
        TrainConfig(val_size=0)
