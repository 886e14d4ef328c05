"""docs/neurons.md: its benchmark table is the committed JSON rendered (its Python runs in
test_docs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

DOC = REPO_ROOT / "docs" / "neurons.md"
RESULT = REPO_ROOT / "benchmarks" / "results" / "neurons-cpu.json"


def test_benchmark_table_is_rendered_from_the_json():
    from benchmarks.neurons import DOC_END, DOC_START, render

    text = DOC.read_text()
    table = text.split(DOC_START, 1)[1].split(DOC_END, 1)[0].strip()
    assert table == render(json.loads(RESULT.read_text())).strip()


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    from benchmarks.neurons import main

    result = main([
        "--num-nodes", "60", "--copies", "2", "--big-nodes", "300", "--big-steps", "3",
        "--sizes", "50,100,200", "--rounds", "1", "--min-run-time", "0.01", "--threads", "1",
        "--out-dir", str(tmp_path),
    ])  # fmt: skip
    assert (tmp_path / "neurons-cpu.json").is_file()
    assert result["quiet"]["compare"]["speedup_per_sweep"] > 0
