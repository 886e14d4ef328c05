"""The README's code runs, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from cortexgnn import CortexNet, save_article_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


def test_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = CortexNet(num_columns=8, in_dim=12, col_out=8, graph_k=4, graph_seed=0)
    save_article_checkpoint(tmp_path / "brain.pth", small)  # for the loading snippet
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["out"].shape == (1000, 8, 64)
    assert isinstance(namespace["model"], torch.nn.Module)


def test_ci_runs_the_readme_test_command():
    quick_start = re.search(r"## Quick start\n+```bash\n(.*?)```", README, flags=re.S).group(1)
    lines = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert len(lines) == 2, "the quick start is exactly two commands"
    test_command = lines[1].split("&&")[-1].strip()
    ci_script = (REPO_ROOT / ".ci" / "run").read_text()
    assert test_command in ci_script.splitlines()
