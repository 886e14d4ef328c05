"""Every renderer in one place: committed results -> the docs' tables, README and figures.

Each entry reads ``benchmarks/results/`` (or ``docs/results/`` for training runs) and
rewrites the regions between its markers and its figures; ``python -m benchmarks render``
runs them all, ``render NAME...`` some. Nothing in a doc is typed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"


def _report() -> list[Path]:
    from benchmarks import report

    out = report.main(["--results", str(RESULTS), "--readme", str(ROOT / "README.md")])
    return [Path(out["doc"]), *map(Path, out["images"]), ROOT / "README.md"]


def _cora() -> list[Path]:
    from benchmarks import cora_report

    path = RESULTS / "cora.json"
    if not path.is_file():
        return []
    result = json.loads(path.read_text())
    docs = [DOCS / "layer.md", ROOT / "README.md"]
    for doc in docs:
        cora_report.update_doc(doc, result)
    figure = cora_report.plot(result, DOCS / "img" / "cora.png")
    return docs + ([figure] if figure else [])


def _neurons() -> list[Path]:
    from benchmarks import neurons

    path = RESULTS / "neurons-cpu.json"
    if not path.is_file():
        return []
    neurons.update_doc(json.loads(path.read_text()))
    return [neurons.DOC]


def _ablation() -> list[Path]:
    from benchmarks import ablation_report

    path = RESULTS / "ablation.json"
    if not path.is_file():
        return []
    docs = [DOCS / "science.md", ROOT / "README.md"]
    figure = DOCS / "img" / "ablation.png"
    ablation_report.main(["--results", str(path), "--update-doc", *map(str, docs),
                          "--plot", str(figure)])  # fmt: skip
    return [*docs, figure]


def _study() -> list[Path]:
    from benchmarks import study_report

    path = RESULTS / "study.json"
    if not path.is_file():
        return []
    docs = [DOCS / "science.md", ROOT / "README.md"]
    figures = [DOCS / "img" / f"study_{name}.png" for name in ("iterations", "hops", "reach")]
    study_report.main(["--results", str(path), "--update-doc", *map(str, docs),
                       "--plot", str(figures[0]), "--hops-plot", str(figures[1]),
                       "--reach-plot", str(figures[2])])  # fmt: skip
    return [*docs, *figures]


def _runs() -> list[Path]:
    from benchmarks import runs_report

    runs_report.main(["--update-doc", str(ROOT / "README.md"),
                      "--update-results-page", str(DOCS / "results.md")])  # fmt: skip
    return [ROOT / "README.md", DOCS / "results.md"]


#: name -> renderer (returns the files it wrote)
RENDERERS: dict[str, Callable[[], list[Path]]] = {
    "benchmarks": _report,
    "cora": _cora,
    "neurons": _neurons,
    "ablation": _ablation,
    "study": _study,
    "runs": _runs,
}


def render(names: list[str] | None = None) -> dict[str, list[Path]]:
    """Run the named renderers (all by default); returns name -> files written."""
    unknown = set(names or ()) - set(RENDERERS)
    if unknown:
        raise SystemExit(f"no renderer {sorted(unknown)}; choose from {', '.join(RENDERERS)}")
    return {name: RENDERERS[name]() for name in names or RENDERERS}
