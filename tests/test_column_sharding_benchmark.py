"""The scaling benchmark's halo arithmetic equals the halo plans it stands in for."""

from __future__ import annotations

import pytest

from benchmarks.column_sharding import halo_cut
from cortexgnn import small_world_graph
from cortexgnn.parallel.plan import halo_plan


@pytest.mark.parametrize("world_size", [2, 3, 8])
def test_halo_cut_counts_what_the_plans_send(world_size):
    graph = small_world_graph(200, 8, 0.15, seed=3)
    plans = [halo_plan(graph, 200, world_size, r) for r in range(world_size)]
    cut = halo_cut(200, world_size, edge_index=graph)
    sent = [sum(plan.send_counts) for plan in plans]
    assert cut["rows_sent_total"] == sum(sent) == sum(plan.num_halo for plan in plans)
    assert cut["rows_sent_max_per_process"] == max(sent)
    crossing = sum(
        int((plan.edge_index[0] >= plan.num_local).sum()) for plan in plans
    )  # local edges whose source is a halo row
    assert cut["cross_edge_share"] == pytest.approx(crossing / graph.size(1))


def test_the_scaling_page_shows_the_committed_results():
    import json

    from benchmarks import column_sharding

    result = json.loads((column_sharding.harness.RESULTS_DIR / "column_sharding.json").read_text())
    page = column_sharding.DOC.read_text()
    start = page.index(column_sharding.START) + len(column_sharding.START)
    assert (
        page[start : page.index(column_sharding.END)]
        == "\n" + column_sharding.render(result) + "\n"
    )
    for row in result["strong"] + result["weak"]:  # the plan predicts the bytes exactly
        assert row["halo_bytes_agree"]
        assert row["halo_bytes_per_iteration_measured"] == row["halo_bytes_per_iteration_predicted"]


def test_the_shared_sharding_table_is_the_committed_result_rendered():
    import json

    from benchmarks import shared_sharding

    path = shared_sharding.harness.RESULTS_DIR / "shared_sharding.json"
    result = json.loads(path.read_text())
    page = shared_sharding.DOC.read_text()
    start = page.index(shared_sharding.START) + len(shared_sharding.START)
    block = page[start : page.index(shared_sharding.END)]
    assert block == "\n" + shared_sharding.render(result) + "\n"
    rows = {(r["num_columns"], r["processes"]): r for r in result["rows"]}
    assert rows.keys() >= {(200_000, 1), (200_000, 2)}
    one, two = (max(rows[200_000, p]["peak_rss_bytes_per_process"]) for p in (1, 2))
    assert two < one  # what sharding is for
