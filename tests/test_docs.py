"""README and docs are tested: every Python block runs, every table matches its results file.

Python blocks run as written, in order, one namespace per file, in a fresh working
directory (a block that needs a file writes it itself, visibly). Every table between
``<!-- name:start -->`` markers is compared with what its renderer makes of the committed
results, so a number that drifts from its source fails here (the Cora tables are checked in
``test_cora_benchmark.py``, the neuron benchmark's in ``test_neurons_docs.py``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cortexgnn.cli import get_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def between(path: Path, start: str, end: str) -> str:
    text = path.read_text()
    assert start in text and end in text, f"{path.name} lacks {start}"
    return text.split(start, 1)[1].split(end, 1)[0].strip()


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run_as_written(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for number, block in enumerate(python_blocks(path)):
        exec(compile(block, f"{path.name} block {number}", "exec"), namespace)


def test_readme_blocks_produce_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write brain.pth: never into the checkout
    namespace: dict = {}
    blocks = python_blocks(ROOT / "README.md")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["conv"].num_nodes == 1000 and namespace["edge_index"].shape[0] == 2
    assert namespace["logits"].shape == (100, 5)
    assert namespace["model"].config.graph_seed == 0


def test_layer_page_block_produces_what_it_says():
    namespace: dict = {}
    for block in python_blocks(ROOT / "docs" / "layer.md"):
        exec(compile(block, "docs/layer.md", "exec"), namespace)
    assert namespace["logits"].shape == (100, 5)
    assert namespace["same_or_not"].shape == (8, 2)  # topographic columns
    assert namespace["lattice"]["diameter"] == 6


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick_start = re.search(r"## Quick start\n+```bash\n(.*?)```", readme, flags=re.S).group(1)
    lines = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert len(lines) == 3, "the quick start is the CPU build, then two commands"
    # a CPU machine never pulls the CUDA build: the CPU wheel comes first
    assert (
        lines[0] == "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    )
    test_command = lines[2].split("&&")[-1].strip()
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_script
    assert any(line.startswith(f"{test_command} -m slow") for line in ci_script)


def test_training_results_table_matches_the_committed_runs():
    from benchmarks import runs_report

    table = runs_report.render(ROOT / "docs" / "results")
    assert between(ROOT / "README.md", runs_report.START, runs_report.END) == table
    full = runs_report.render_full_run(ROOT / "docs" / "results")
    page = ROOT / "docs" / "results.md"
    assert between(page, runs_report.FULL_START, runs_report.FULL_END) == full


def test_science_page_and_readme_match_the_ablation_results():
    from benchmarks import ablation_report

    results = json.loads((ROOT / "benchmarks" / "results" / "ablation.json").read_text())
    science = ROOT / "docs" / "science.md"
    assert between(science, ablation_report.DOC_START, ablation_report.DOC_END) == (
        ablation_report.render(results)
    )
    assert between(
        ROOT / "README.md", ablation_report.README_START, ablation_report.README_END
    ) == (ablation_report.headline(results))


def readme_neuron_commands() -> list[list[str]]:
    """The README's neuron command lines, as argument lists after ``cortexgnn``."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The neuron network\n.*?```bash\n(.*?)```", readme, flags=re.S)
    lines = [shlex.split(line.split("  #")[0]) for line in block.group(1).strip().splitlines()]
    assert all(line[0] == "cortexgnn" for line in lines)
    return [line[1:] for line in lines]


def test_readme_neuron_commands_make_their_inputs_first():
    commands = readme_neuron_commands()
    parser = get_parser()
    made: set[str] = set()
    for argv in commands:
        args = parser.parse_args(argv)  # every flag exists as written
        if args.graph is not None:  # a file read here was written by a line above
            assert args.graph in made, f"{args.graph} is read before a command makes it"
        made |= {path for path in (args.save, args.log) if path}


@pytest.mark.slow  # draws a GIF: about 25 s
def test_readme_neuron_commands_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in readme_neuron_commands():
        assert main(argv) == 0, argv
    assert (tmp_path / "events.tsv").is_file() and (tmp_path / "net.pt").is_file()
    assert (tmp_path / "out" / "net.gif").is_file()


def test_every_test_the_robustness_page_names_exists():
    page = (ROOT / "docs" / "robustness.md").read_text()
    named = set(re.findall(r"(?<![\w.])(test_\w+)(?=[`,\]])", page))
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    for file_name in re.findall(r"`(test_\w+\.py)::", page):
        assert (ROOT / "tests" / file_name).is_file(), file_name
    assert len(named) > 40 and named <= defined, sorted(named - defined)


def test_science_page_part_2_and_readme_match_the_study_results():
    from benchmarks import study, study_graphs, study_report

    results = study.load(study.RESULTS)
    hops = json.loads(study_graphs.HOPS.read_text())
    reach = json.loads(study_graphs.REACH.read_text())
    science = ROOT / "docs" / "science.md"
    assert between(science, study_report.DOC_START, study_report.DOC_END) == (
        study_report.render(results, hops, reach)
    )
    assert between(ROOT / "README.md", study_report.README_START, study_report.README_END) == (
        study_report.headline(results, hops)
    )
