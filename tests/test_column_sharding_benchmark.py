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
