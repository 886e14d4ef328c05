"""``cortexgnn neurons simulate`` (parser standalone) and the pictures it draws."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

import pytest
import torch

from cortexgnn.neurons import NeuronNetwork, load_network
from cortexgnn.train.neurons_cli import add_neurons_parser, run_neurons_simulate


def parse(argv):
    parser = argparse.ArgumentParser(prog="cortexgnn")
    add_neurons_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_article_example_from_the_command_line(tmp_path, capsys):
    log = tmp_path / "log.tsv"
    args = parse(["neurons", "simulate", "--article", "--steps", "7", "--log", str(log),
                  "--readout", "0", "--no-progress"])  # fmt: skip
    assert args.handler is run_neurons_simulate
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "neuron ПЕРВЫЙ released at sweeps [5]" in out
    lines = log.read_text().splitlines()
    assert lines[:3] == ["1\tПЕРВЫЙ\ttransmit", "1\tВТОРОЙ\treceive", "1\tВТОРОЙ\ttransmit"]
    assert lines[12] == "5\tПЕРВЫЙ\trelease"


def test_edge_list_stimulus_copies_plots_and_save(tmp_path, capsys):
    edges = tmp_path / "arc.txt"
    edges.write_text("# sensor -> inter -> motor\n0 1\n1 2\n")
    saved = tmp_path / "net.pt"
    args = parse([
        "neurons", "simulate", "--graph", str(edges), "--steps", "6", "--copies", "2",
        "--stimulus", "0:2,0", "--plots", str(tmp_path / "plots"), "--trace-nodes", "0,2",
        "--save", str(saved), "--no-progress",
    ])  # fmt: skip
    assert run_neurons_simulate(args) == 0
    assert (tmp_path / "plots" / "neurons_raster.png").stat().st_size > 0
    assert (tmp_path / "plots" / "neurons_traces.png").stat().st_size > 0
    net = load_network(saved)
    assert net.batch_shape == (2,) and net.edge_index.tolist() == [[0, 1], [1, 2]]


def test_user_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        run_neurons_simulate(parse(["neurons", "simulate", "--graph", str(tmp_path / "x.txt")]))
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2\n")
    with pytest.raises(ValueError, match="sender receiver"):
        run_neurons_simulate(parse(["neurons", "simulate", "--graph", str(bad)]))
    with pytest.raises(ValueError, match="NODE:EXC,INH"):
        run_neurons_simulate(parse(["neurons", "simulate", "--stimulus", "0:1", "--no-progress"]))
    with pytest.raises(ValueError, match="outside"):
        run_neurons_simulate(parse(["neurons", "simulate", "--readout", "99", "--no-progress"]))


def test_animation_lights_links_small(tmp_path):
    from cortexgnn.train.neuron_plots import animate

    net = NeuronNetwork(torch.tensor([[0, 1], [1, 2]]), 3)
    out = net.run(6, record=("actions", "sent"))
    path = animate(net.edge_index, 3, out["actions"], out["sent"], tmp_path / "a.gif", fps=2)
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 6


def test_core_never_imports_the_application_stack():
    import ast
    from pathlib import Path

    import cortexgnn.neurons

    folder = Path(cortexgnn.neurons.__file__).parent
    banned = {"argparse", "tqdm", "matplotlib", "torchvision"}
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & banned, (path.name, names)


@pytest.mark.slow
def test_simulate_subprocess_with_progress_and_animation(tmp_path):
    gif = tmp_path / "net.gif"
    result = subprocess.run(
        [sys.executable, "-m", "cortexgnn", "neurons", "simulate", "--num-nodes", "12",
         "--steps", "8", "--animation", str(gif)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert gif.stat().st_size > 0 and "sweep" in result.stderr


def test_sizes_from_flags_and_edge_lists_are_bounded(tmp_path):
    edges = tmp_path / "far.txt"
    edges.write_text("0 1\n1 1000000000\n")
    with pytest.raises(ValueError, match=r"--graph .*far.txt.* GiB.*--max-elements"):
        run_neurons_simulate(parse(["neurons", "simulate", "--graph", str(edges)]))
    for flags in (["--num-nodes", "100000000"], ["--copies", "1000000000"]):
        with pytest.raises(ValueError, match=r"--num-nodes/--copies: .* GiB.*--max-elements"):
            run_neurons_simulate(parse(["neurons", "simulate", *flags, "--no-progress"]))
    with pytest.raises(ValueError, match="--copies must be >= 0"):
        run_neurons_simulate(parse(["neurons", "simulate", "--copies", "-1", "--no-progress"]))


def test_long_runs_stream_the_log_and_keep_a_bounded_window(tmp_path, monkeypatch, capsys):
    from cortexgnn.train import neurons_cli

    monkeypatch.setattr(neurons_cli, "CHUNK", 4)  # many chunks in a short test
    drawn = {}
    monkeypatch.setattr(
        "cortexgnn.train.neuron_plots.raster", lambda actions, *_: drawn.update(raster=actions)
    )
    monkeypatch.setattr("cortexgnn.train.neuron_plots.traces", lambda *_: None)
    log = tmp_path / "log.tsv"
    args = parse(["neurons", "simulate", "--article", "--steps", "41", "--window", "6",
                  "--log", str(log), "--readout", "0", "--plots", str(tmp_path),
                  "--no-progress"])  # fmt: skip
    assert run_neurons_simulate(args) == 0
    assert drawn["raster"].shape == (6, 2)  # only the last 6 sweeps were kept
    sweeps = [int(line.split("\t")[0]) for line in log.read_text().splitlines()]
    assert sweeps[0] == 1 and sweeps[-1] == 41 and sorted(set(sweeps)) == list(range(1, 42))
    out = capsys.readouterr().out
    assert "(the last 6 kept)" in out
    released = out.split("released at sweeps ")[1].split(" (")[0]
    assert all(36 <= t <= 41 for t in ast.literal_eval(released))
