"""Smoke test of benchmarks/cora.py: both models train on the real Cora split for two epochs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import cora, cora_report

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_cora_benchmark_runs_and_writes_its_result(cora_dir, tmp_path):
    argv = ["--data-dir", str(cora_dir), "--seeds", "2", "--epochs", "3", "--no-progress"]
    figure = tmp_path / "cora.png"
    result = cora.main([*argv, "--out-dir", str(tmp_path), "--plot", str(figure)])
    assert set(result["models"]) == set(cora.MODELS)
    for summary in result["models"].values():
        assert len(summary["test_acc"]) == 2
        assert all(0.0 <= acc <= 1.0 for acc in summary["test_acc"])
        assert summary["epoch_ms_median"] > 0 and summary["params"] > 0
    layers = result["attention_layers"]
    assert set(layers) == set(cora.MODELS) and all(t["median_ms"] > 0 for t in layers.values())
    assert "Attention layers alone" in cora_report.render(result)
    saved = json.loads((tmp_path / "cora.json").read_text())
    assert saved["models"]["column"]["test_acc"] == result["models"]["column"]["test_acc"]
    assert saved["args"]["seeds"] == 2 and saved["environment"]["torch"]
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_docs_and_readme_tables_are_rendered_from_the_committed_result():
    result = json.loads((REPO_ROOT / "benchmarks" / "results" / "cora.json").read_text())
    for doc in ("docs/layer.md", "README.md"):
        assert cora_report.render(result) in (REPO_ROOT / doc).read_text(), doc


def test_update_doc_replaces_only_the_marked_table(tmp_path):
    result = json.loads((REPO_ROOT / "benchmarks" / "results" / "cora.json").read_text())
    start, end = cora_report.DOC_START, cora_report.DOC_END
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{start}\nold table\n{end}\nafter\n")
    cora_report.update_doc(doc, result)
    assert doc.read_text() == f"before\n{start}\n{cora_report.render(result)}\n{end}\nafter\n"
