"""``cortexgnn train`` and ``cortexgnn eval``: thin commands over :mod:`cortexgnn.train`.

Every :class:`~cortexgnn.train.config.TrainConfig` and
:class:`~cortexgnn.nn.config.ModelConfig` setting is one flag, named after the field,
with the field's default. The handlers import what they run (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from .._limits import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_MESSAGE_ITERS
from ..nn.config import CHOICES, ModelConfig
from ..train.config import DATASET_FIELDS, MODELS, SESSION_FIELDS, TrainConfig
from ..train.data import DATASETS
from .parser import BOOL, Parser

__all__ = [
    "MODEL_HELP",
    "add_eval_parser",
    "add_train_parser",
    "run_eval",
    "run_train",
    "typed_train_flags",
]

_DEFAULTS = TrainConfig()

#: Help of every ``ModelConfig`` field the command line sets (``in_dim`` and ``top_out``
#: come from the dataset). The flag is the field's name hyphenated, its default the field's.
MODEL_HELP = {
    "num_columns": "number of cortical columns N (graph nodes)",
    "col_out": "column output size D",
    "graph_k": "Watts-Strogatz ring degree (= num-columns: complete graph)",
    "graph_p": "Watts-Strogatz rewiring probability (of the ring, or of --graph rewired-lattice)",
    "message_iters": "message-passing iterations (0: the columns alone)",
    "plasticity_lr": "Hebbian rate on the edge weights",
    "use_attention": "attention messages (else sigmoid(edge weight)-weighted sums)",
    "e_i_ratio": "inhibition strength in each column",
    "dropout": "dropout probability",
    "graph_seed": "seed of the small-world graph; None: --seed",
    "attention_uses_edge_weight": "fix: the Hebbian edge weights gate attention",
    "freeze_homeostasis_in_eval": "fix: evaluation leaves the homeostasis statistics alone",
    "homeostasis_min_divisor": "fix: homeostasis divides by max(activity, M); None: the "
    "article's activity + 1e-6",
    "use_homeostasis": "homeostatic scaling (off: an ablation)",
    "use_hebbian": "Hebbian plasticity of the edge weights (off: an ablation)",
    "check_finite_input": "refuse NaN/Inf input (one reduction per batch)",
    "shared_weights": "one column and one query/key pair for all columns, plus a learned "
    "per-column bias (D + k parameters per column)",
    "recompute_messages": "recompute the message iterations in backward (less memory)",
    "bf16_autocast": "bfloat16 autocast and node states; statistics and logits stay float32",
    "patch_size": "topographic columns: each reads a PATCH x PATCH patch of the image at its "
    "grid position (num-columns must equal the grid's size); None: the whole input",
    "patch_stride": "step between patches, 1..patch-size; None: patch-size",
    "image_height": "image height (width = in_dim / height); None: a square image",
    "graph": "graph over the columns: the article's Watts-Strogatz ring over column index, "
    "or over the grid positions a 2-D lattice, a lattice rewired with --graph-p, random with "
    "the ring's edge count, complete",
    "readout_column": "read the logits from this one column; None: the mean over columns",
}


def _optional(kind: type):
    """An argparse type: ``kind``, or ``None`` spelt ``none``."""

    def parse(text: str):
        if text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {kind.__name__} value: {text!r} (or none)"
            ) from None

    parse.__name__ = kind.__name__
    return parse


# (group, flag, argparse options, help) of the TrainConfig fields outside the model; each
# flag's destination is the field and its default the field's default.
_TRAIN_FLAGS = [
    ("data", "--dataset", {"choices": DATASETS}, "digits ships with scikit-learn (offline)"),
    ("data", "--data-dir", {}, "root holding MNIST/raw or FashionMNIST/raw; None means "
     "$CORTEXGNN_DATA_DIR, else ./data"),
    ("data", "--download", {"action": BOOL}, "let torchvision download MNIST/Fashion-MNIST"),
    ("model", "--model", {"choices": MODELS}, "batched sparse CortexNet, the article's loop, "
     "or a baseline sized from the model flags (mlp-small, mlp-matched, single-column)"),
    ("protocol", "--epochs", {"type": int}, "training epochs"),
    ("protocol", "--batch-size", {"type": int}, "batch size (training and evaluation)"),
    ("protocol", "--lr", {"type": float}, "AdamW learning rate"),
    ("protocol", "--weight-decay", {"type": float}, "AdamW weight decay"),
    ("protocol", "--t-max-epochs", {"type": float}, "cosine schedule period T_max, in epochs"),
    ("protocol", "--eval-every", {"type": int},
     "evaluate every N optimizer steps (counted across epochs): on the test set, or on the "
     "validation split with --val-size"),
    ("protocol", "--val-size", {"type": _optional(int)},
     "hold out this many training images (a fixed split; a study uses 5000): evaluations and "
     "the best step on them, the test set once at the end with the best step's weights; "
     "none: the article's protocol (every evaluation on the test set)"),
    ("protocol", "--max-steps", {"type": int}, "stop with a checkpoint after this many steps"),
    ("protocol", "--seed", {"type": int}, "seeds weights, dropout, shuffling (and the graph "
     "unless --graph-seed)"),
    ("run", "--device", {}, "auto, cpu, cuda, cuda:N or mps"),
    ("run", "--threads", {"type": _optional(int)},
     "torch CPU threads; none: torch's choice (one per core). 1 measured fastest on a busy "
     "2-core machine (digits defaults: 0.23 s/step vs 1.1 s/step with 2); on an idle "
     "many-core machine compare the speed line of a few --max-steps with more"),
    ("run", "--column-shards", {"type": _optional(int), "metavar": "P"}, "split the "
     "columns over P processes (launch them with torchrun --nproc_per_node P); none: each "
     "process holds every column"),
    ("run", "--compile", {"action": BOOL}, "torch.compile the column + message-passing stage "
     "(its dropout masks differ from eager mode's)"),
    ("run", "--out-dir", {}, "run folder (checkpoint.pth, metrics.jsonl, curves.png, "
     "summary.json); None: a new runs/<timestamp>, with runs/latest pointing at it, or with "
     "--resume the checkpoint's folder"),
    ("run", "--overwrite", {"action": BOOL}, "replace a run already in --out-dir"),
    ("run", "--resume", {"metavar": "CHECKPOINT"}, "continue the run saved in CHECKPOINT"),
    ("run", "--progress", {"action": BOOL}, "tqdm progress bar"),
    ("run", "--plot", {"action": BOOL}, "write curves.png at the end (needs matplotlib)"),
    ("run", "--log-every", {"type": int}, "steps between training-loss records"),
    ("run", "--final-eval", {"action": BOOL}, "evaluate once more at the end of the run"),
]  # fmt: skip


def _model_flags() -> list[tuple[str, dict, str]]:
    """``(dest, argparse options, help)`` of every ModelConfig field the command line sets."""
    kinds = {"int": int, "float": float, "str": str}
    flags = []
    for f in fields(ModelConfig):
        if f.name in DATASET_FIELDS:
            continue
        annotation = str(f.type)
        if annotation.startswith("bool"):
            options = {"action": BOOL}
        else:
            kind = kinds[annotation.split(" ")[0]]
            options = {"type": _optional(kind) if "None" in annotation else kind}
            if f.name in CHOICES:
                options["choices"] = CHOICES[f.name]
        flags.append((f.name, options, MODEL_HELP.get(f.name, f"ModelConfig.{f.name}")))
    return flags


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """The ``train`` sub-command: the article's protocol, every setting a flag."""
    p = subparsers.add_parser(
        "train",
        help="train a model (default: the article's protocol on the offline digits set)",
        description="Train CortexNet (or the dense reference) with the article's protocol: "
        "AdamW, cosine schedule, periodic evaluation on the full test set, a checkpoint "
        "every epoch. With --resume, settings you do not type come from the checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    groups = {name: p.add_argument_group(name) for name in ("data", "model", "protocol", "run")}
    for group, flag, options, text in _TRAIN_FLAGS:
        dest = flag[2:].replace("-", "_")
        default = getattr(_DEFAULTS, dest)
        groups[group].add_argument(flag, dest=dest, default=default, help=text, **options)
    for dest, options, text in _model_flags():
        default = getattr(_DEFAULTS.model_config, dest)
        flag = "--" + dest.replace("_", "-")
        groups["model"].add_argument(flag, dest=dest, default=default, help=text, **options)
    p.set_defaults(handler=run_train)
    return p


def _config_from_args(args: argparse.Namespace, given: set[str]) -> TrainConfig:
    """A ``TrainConfig``; when resuming, untyped run settings come from the checkpoint.

    ``--out-dir`` is never inherited: a resumed run writes where its checkpoint is.
    """
    top = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "model_config"}
    model = {dest: getattr(args, dest) for dest, _, _ in _model_flags()}
    if args.resume:
        from ..checkpoint import read_checkpoint
        from ..train.config import CheckpointMismatchError

        stored = read_checkpoint(args.resume).get("config")
        if stored is not None:
            try:
                saved = TrainConfig.from_dict(stored)
            except (TypeError, ValueError) as err:
                raise CheckpointMismatchError(
                    f"{args.resume} holds an unreadable run config: {err}"
                ) from err
            inherit = lambda name: name not in given and name not in SESSION_FIELDS  # noqa: E731
            for name in top:
                if inherit(name) and name != "out_dir":
                    top[name] = getattr(saved, name)
            for name in model:
                if inherit(name):
                    model[name] = getattr(saved.model_config, name)
    try:
        return TrainConfig(**top, model_config=ModelConfig().replace(**model))
    except TypeError as err:  # a value of the wrong kind (from a stored config)
        raise ValueError(str(err)) from err


def run_train(args: argparse.Namespace) -> int:
    """Train, then print a one-screen summary (rank 0 only under torchrun)."""
    from ..train.loop import train

    config = _config_from_args(args, args.given)
    s = train(config)
    if s.get("rank", 0) != 0:
        return 0
    acc = "n/a" if s["final_test_acc"] is None else f"{100 * s['final_test_acc']:.2f} %"
    best = "n/a" if s["best_test_acc"] is None else f"{100 * s['best_test_acc']:.2f} %"
    env = s["environment"]
    processes = f", {s['world_size']} processes" if s.get("world_size", 1) > 1 else ""
    lines = [
        f"cortexgnn train: {s['model']} on {s['dataset']}, {s['num_parameters']:,} parameters,"
        f" {env['threads']} thread{'s' if env['threads'] != 1 else ''}{processes}, commit "
        f"{env['git_commit']}",
        f"  steps          {s['steps']} ({s['epochs_completed']} epochs of "
        f"{s['steps_per_epoch']} steps{'' if s['finished'] else ', stopped early'})",
        f"  test accuracy  final {acc}, best {best} (step {s['best_step']})"
        if s.get("selection") != "validation"
        else f"  validation     best {100 * (s['best_val_acc'] or 0):.2f} % (step "
        f"{s['best_step']}); test accuracy {acc} (once, with step {s['best_step']}'s weights)",
        f"  wall time      {s['train_time_s'] + s['eval_time_s']:.1f} s "
        f"(train {s['train_time_s']:.1f} s, eval {s['eval_time_s']:.1f} s"
        + (
            f"; the attention kernel took {s['kernel_load_s']:.1f} s more to load or compile"
            if s.get("kernel_load_s", 0) >= 0.5
            else ""
        )
        + ")",  # fmt: skip
        f"  speed          {s['time_per_step_s'] or 0:.4f} s/step, {s['steps_per_s'] or 0:.2f} "
        f"steps/s (CPU time {s['cpu_time_per_step_s'] or 0:.4f} s/step)",
        f"  peak memory    {s['peak_memory_mb']:.0f} MiB",
        f"  files          {s['out_dir']}/ (checkpoint.pth, metrics.jsonl, summary.json"
        f"{', curves.png' if s.get('plot') else ''})",
    ]
    if s.get("interrupted"):
        lines.append("  interrupted    by Ctrl-C after the checkpoint above: --resume continues")
    print("\n".join(lines))
    return 130 if s.get("interrupted") else 0  # 128 + SIGINT, the shell's convention


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """The ``eval`` sub-command: test accuracy of a checkpoint (also an article brain.pth)."""
    p = subparsers.add_parser(
        "eval",
        help="test accuracy of a checkpoint (a training checkpoint or an article brain.pth)",
        description="Evaluate a checkpoint on its test set; the model is rebuilt with the "
        "settings stored in the file, fix flags included.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", help="checkpoint.pth or brain.pth")
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="default: the checkpoint's, else mnist for 784 inputs",
    )
    p.add_argument("--data-dir", default=None, help="as for train")
    p.add_argument("--download", action=BOOL, default=False, help="as for train")
    p.add_argument("--batch-size", type=int, default=128, help="evaluation batch size")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--max-elements",
        type=int,
        default=DEFAULT_MAX_ELEMENTS,
        help="refuse a checkpoint whose sizes ask for more elements (raise it on purpose)",
    )
    p.add_argument(
        "--max-message-iters",
        type=int,
        default=DEFAULT_MAX_MESSAGE_ITERS,
        help="refuse a checkpoint with more message-passing iterations",
    )
    p.set_defaults(handler=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate and print one line."""
    from ..train.evaluate import evaluate_checkpoint

    r = evaluate_checkpoint(
        args.checkpoint,
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        batch_size=args.batch_size,
        device=args.device,
        max_elements=args.max_elements,
        max_message_iters=args.max_message_iters,
    )
    print(
        f"{r['checkpoint']}: test accuracy {100 * r['test_acc']:.2f} % "
        f"(loss {r['test_loss']:.4f}) on {r['num_test']} {r['dataset']} test images"
    )
    return 0


def typed_train_flags(argv: list[str]) -> set[str]:
    """The ``train`` settings the user typed in ``argv`` (the arguments after ``train``).

    A second ``train`` parser whose defaults are all ``SUPPRESS`` leaves every untyped
    destination out of the namespace.
    """
    parser = add_train_parser(Parser(prog="cortexgnn").add_subparsers())
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser.set_defaults(handler=None)
    return set(vars(parser.parse_args(argv))) - {"handler"}
