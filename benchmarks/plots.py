"""The benchmarks' figures (matplotlib, optional): the report's plots and the shared save step."""

from __future__ import annotations

from pathlib import Path

LABELS = {
    "article_loop": "article per-column loop",
    "dense_masked": "dense masked (vectorised)",
    "pyg_batch": "PyG standard (Batch + softmax + scatter)",  # a hand-written layer
    "propagate_batch": "ColumnAttentionConv(fused=False) on a PyG Batch",
    "pyg_transformer_conv": "PyG TransformerConv",
    "cortexgnn": "cortexgnn ColumnAttentionConv",
    "cortexgnn_folded": "cortexgnn folded_attention",
}


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (110 dpi, folders made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_label(row: dict, config: dict) -> str:
    """A model-sweep series: the implementation, then its weights and batch once each."""
    if row["mode"] == "per_column":
        return f"{row['impl']}, per-column weights, batch {config['batch_size']}"
    # "CortexNet (shared weights)": the implementation already names its weights
    return f"{row['impl']}, batch {config['shared_batch_size']}"


def _legend_below(fig, ax) -> None:
    """The legend under the axes, never over the data (constrained layout makes room)."""
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2,
               fontsize=8, frameon=False)  # fmt: skip


def plots(results: dict, img_dir: Path) -> list[Path]:
    """Write the PNG plots; returns their paths (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    layer = results.get("layer_sweep")
    if layer:
        for key, fname, ylabel in (
            ("forward_backward", "bench_scaling.png", "forward+backward time per call (s)"),
            ("peak_bytes_forward_backward", "bench_memory.png", "peak extra memory (MiB)"),
        ):
            fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
            for impl in layer["config"]["impls"]:
                ok = sorted((r for r in layer["rows"] if r["impl"] == impl and r["status"] == "ok"),
                            key=lambda r: r["N"])  # fmt: skip
                if key == "forward_backward":
                    ys = [r[key]["median_s"] for r in ok]
                    fit = layer["fits"][impl]["forward_backward_all_sizes"]
                    label = LABELS.get(impl, impl) + (f" (slope {fit:.2f})" if fit else "")
                else:
                    ok = [r for r in ok if r[key]]
                    ys = [r[key] / 2**20 for r in ok]
                    label = LABELS.get(impl, impl)
                if ok:
                    ax.plot([r["N"] for r in ok], ys, marker="o", label=label)
            ax.set(xscale="log", yscale="log", xlabel="columns N", ylabel=ylabel)
            ax.set_title(f"attention layer, B={layer['config']['batch_size']}, "
                         f"D={layer['config']['channels']}, 1 graph")  # fmt: skip
            ax.grid(True, which="both", alpha=0.3)
            _legend_below(fig, ax)
            fig.savefig(img_dir / fname, dpi=110)
            plt.close(fig)
            written.append(img_dir / fname)
    model = results.get("model_sweep")
    if model:
        fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
        series = {}
        for r in model["rows"]:
            if r["status"] == "ok":
                point = (r["N"], r["step"]["median_s"])
                series.setdefault(model_label(r, model["config"]), []).append(point)
        for label, pts in series.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set(xscale="log", yscale="log", xlabel="columns N", ylabel="training step (s)")
        cfg = model["config"]
        ax.set_title(f"whole training step, D={cfg['col_out']}, input {cfg['in_dim']}, "
                     f"{cfg['message_iters']} message iterations")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(fig, ax)
        fig.savefig(img_dir / "bench_model.png", dpi=110)
        plt.close(fig)
        written.append(img_dir / "bench_model.png")
    return written
