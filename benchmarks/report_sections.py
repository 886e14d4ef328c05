"""The sections of ``docs/benchmarks.md``, one per benchmark result (``report.py``'s parts).

Each ``*_section(result)`` returns Markdown lines: the conditions the result was measured
under, its tables and the sentences derived from its numbers.
"""

from __future__ import annotations

from benchmarks.plots import LABELS


def _ms(stats: dict) -> str:
    return f"{stats['median_s'] * 1e3:.1f} ± {stats['iqr_s'] * 1e3 / 2:.1f}"


def _mib(num_bytes: int | None) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**20:.0f}"


def _env_line(res: dict) -> str:
    env = res["environment"]
    load = env.get("load_average_at_start")
    load_txt = f", load average {load[0]:.1f} at start" if load else ""
    gpu = f", GPU {env['gpu']}" if env.get("gpu") else ""
    return (
        f"{env['cpu']} ({env['cpu_count']} cores){gpu}, {env['num_threads']} thread(s), "
        f"torch {env['torch']}, PyG {env['torch_geometric']}, commit {env['git_commit']}, "
        f"THP_MEM_ALLOC_ENABLE={env['THP_MEM_ALLOC_ENABLE']}, {env['date_utc']}{load_txt}"
    )


def _article_section(art: dict) -> list[str]:
    out = ["## 1. Article configuration", "", f"Conditions: {_env_line(art)}.", ""]
    cfg = art["config"]
    out.append(
        f"Batch {cfg['batch_size']}, {cfg['num_columns']} columns, D {cfg['col_out']}, input "
        f"{cfg['in_dim']}, {cfg['message_iters']} message iterations; training step = "
        "zero_grad + forward + cross-entropy + backward + Hebbian update (no optimizer "
        f"step); {cfg['rounds']} interleaved rounds, median ± half IQR in ms."
    )
    out += ["", "| | DenseReference | CortexNet | speed-up |", "|---|---|---|---|"]
    for kind, t in art["timing"].items():
        out.append(
            f"| {kind.replace('_', ' ')} | {_ms(t['DenseReference'])} | {_ms(t['CortexNet'])} "
            f"| {art['speedup'][kind]:.1f}x |"
        )
    out += ["", "FLOP floor of the CortexNet step (multiply-add = 2 FLOPs):", ""]
    out += ["| part | GFLOP |", "|---|---|"]
    out += [f"| {k} | {v / 1e9:.2f} |" for k, v in art["flops"].items()]
    out += [
        "",
        f"Square fp32 GEMM ({cfg['gemm_size']}^3) timed in the same interleaved rounds: "
        f"{art['gemm_flops_per_s'] / 1e9:.1f} GFLOP/s, so the floor is "
        f"{art['flop_floor_s'] * 1e3:.1f} ms and the step runs at "
        f"{100 * art['fraction_of_flop_floor']:.0f} % of it.",
    ]
    ref = art.get("flops_reference")
    net_s = art["timing"]["train_step"]["CortexNet"]["median_s"]
    ref_s = art["timing"]["train_step"]["DenseReference"]["median_s"]
    if ref:
        ratio = ref["total"] / art["flops"]["total"]
        out += [
            "",
            f"DenseReference needs {ref['total'] / 1e9:.0f} GFLOP per step "
            f"({ref['attention gates (fwd + bwd)'] / 1e9:.0f} in its gates, which project all "
            f"columns for every column), {ratio:.1f}x the CortexNet count. At equal FLOP rates "
            f"that ratio is the speed-up; the columns' GEMM alone "
            f"({art['flops']['columns (GEMM + weight grad)'] / 1e9:.1f} GFLOP, the same in "
            f"both) caps it at {ref['total'] / art['flops']['columns (GEMM + weight grad)']:.0f}x "
            "even with free message passing. Measured: CortexNet runs its FLOPs at "
            f"{art['flops']['total'] / net_s / 1e9:.0f} GFLOP/s, DenseReference at "
            f"{ref['total'] / ref_s / 1e9:.0f} GFLOP/s, and the speed-up "
            f"({art['speedup']['train_step']:.1f}x) is the FLOP ratio times the ratio of "
            "those rates: a larger one needs DenseReference to run its big GEMMs worse than "
            "it does here.",
        ]
    if art.get("profile"):
        out += ["", "Where the CortexNet step spends its time (torch.profiler, self time):", ""]
        out += ["| op | ms per step | share |", "|---|---|---|"]
        out += [
            f"| `{p['op']}` | {p['self_ms_per_step']:.1f} | {100 * p['share']:.0f} % |"
            for p in art["profile"]
        ]
    return out + [""]


def _layer_section(layer: dict) -> list[str]:
    cfg = layer["config"]
    out = [
        "## 2. Message-passing layer, column-count sweep",
        "",
        f"Conditions: {_env_line(layer)}.",
    ]
    out += [
        "",
        f"Batch {cfg['batch_size']}, D {cfg['channels']}, Watts-Strogatz k {cfg['graph_k']}, "
        f"p {cfg['graph_p']}; shared D x D query/key weights, raw values. Time in ms (median "
        f"± half IQR of {cfg['rounds']} interleaved rounds); forward without autograd; "
        "fwd+bwd = gradients of x and the weights; peak = extra resident memory of one "
        f"fwd+bwd call (MiB). Budget {cfg['budget_s']} s per call, estimated-memory cap "
        f"{cfg['memory_cap_gb']} GB.",
        "",
        "| implementation | N | forward | fwd+bwd | peak MiB |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(layer["rows"], key=lambda r: (r["impl"], r["N"])):
        name = LABELS.get(r["impl"], r["impl"])
        if r["status"] != "ok":
            out.append(f"| {name} | {r['N']:,} | {r['status']} | | |")
            continue
        out.append(
            f"| {name} | {r['N']:,} | {_ms(r['forward'])} | {_ms(r['forward_backward'])} "
            f"| {_mib(r['peak_bytes_forward_backward'])} |"
        )
    lo, hi = cfg["fit_range"]
    out += ["", f"Fitted time exponents (log-log least squares, {lo:,} <= N <= {hi:,}, and "
            "over all measured N):", "", "| implementation | forward | fwd+bwd | fwd+bwd, all N |",
            "|---|---|---|---|"]  # fmt: skip

    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}"

    for impl, fit in layer["fits"].items():
        out.append(
            f"| {LABELS.get(impl, impl)} | {fmt(fit['forward'])} | "
            f"{fmt(fit['forward_backward'])} | {fmt(fit['forward_backward_all_sizes'])} |"
        )
    agree = layer.get("agreement_max_abs_vs_article_loop") or {}
    if agree:
        out += ["", "Same maths, same inputs at the smallest N: largest absolute difference "
                "from the article loop: " + ", ".join(
                    f"{LABELS.get(k, k)} {v:.1e}" for k, v in agree.items() if k != "article_loop"
                ) + "."]  # fmt: skip
    out += [
        "",
        "![layer scaling](img/bench_scaling.png)",
        "",
        "![layer memory](img/bench_memory.png)",
    ]
    return out + [""]


def _model_section(model: dict) -> list[str]:
    cfg = model["config"]
    out = ["## 3. Full model across column counts", "", f"Conditions: {_env_line(model)}.", ""]
    out.append(
        f"Per-column weights (the article's model): batch {cfg['batch_size']}; shared weights "
        f"(one column and one query/key pair for all "
        f"columns plus a per-column bias): batch {cfg['shared_batch_size']}. D {cfg['col_out']}, "
        f"input {cfg['in_dim']}, {cfg['message_iters']} iterations, dropout 0. Per-column "
        f"weights and their gradients take {model['per_column_bytes_at_4096'] / 2**30:.1f} GB "
        "at 4,096 columns (before activations and optimizer state: AdamW adds twice the "
        f"weights), over this run's {cfg['memory_cap_gb']} GB cap (`--memory-cap-gb`): "
        "beyond a few thousand columns only shared (or low-rank) weights fit."
    )
    out += ["", "| weights | implementation | N | step ms | peak MiB |", "|---|---|---|---|---|"]
    for r in model["rows"]:
        if r["status"] != "ok":
            out.append(f"| {r['mode']} | {r.get('impl', '')} | {r['N']:,} | {r['status']} | |")
        else:
            out.append(
                f"| {r['mode']} | {r['impl']} | {r['N']:,} | {_ms(r['step'])} "
                f"| {_mib(r['peak_bytes'])} |"
            )
    return out + ["", "![model sweep](img/bench_model.png)", ""]


def _bandwidth_section(bw: dict) -> list[str]:
    cfg = bw["config"]
    out = ["## 4. Bandwidth of the attention", "", f"Conditions: {_env_line(bw)}.", ""]
    out.append(
        f"Attention alone, given folded queries: batch {cfg['batch_size']}, D "
        f"{cfg['channels']}. Bound: 3*N*B*D*4 bytes forward, 9*N*B*D*4 forward+backward; "
        f"copy bandwidth from a {cfg['copy_mib']} MiB `copy_` timed in the same rounds."
    )
    out += ["", "| N | threads | backend | pass | ms | GB/s | copy GB/s | share of copy |"]
    out += ["|---|---|---|---|---|---|---|---|"]
    for r in bw["rows"]:
        threads = r.get("threads", cfg["threads"])
        out.append(
            f"| {r['N']:,} | {threads} | {r['backend']} | {r['kind'].replace('_', '+')} "
            f"| {_ms(r['time'])} "
            f"| {r['achieved_bytes_per_s'] / 1e9:.2f} | {r['copy_bytes_per_s'] / 1e9:.1f} "
            f"| {100 * r['fraction_of_copy']:.0f} % |"
        )
    return out + [""]


SECTIONS = {
    "article_step": _article_section,
    "layer_sweep": _layer_section,
    "model_sweep": _model_section,
    "bandwidth": _bandwidth_section,
}
