"""Links (toggle, generators, checks), networkx input and the save/load file format."""

from __future__ import annotations

import json

import networkx as nx
import pytest
import torch

from cortexgnn.neurons import NeuronNetwork, load_network, random_links, save_network, toggle_links
from cortexgnn.neurons.reference import Network, Neuron

STATE = ("sta", "str", "dendrite", "synapse", "accumulated", "current_state", "last_state")


def test_toggle_links_matches_the_article_link_calls():
    calls = [(0, 1), (0, 2), (0, 1), (2, 0), (0, 1), (1, 1), (2, 0), (2, 0)]
    loop = Network()
    neurons = [Neuron(f"{k}") for k in range(3)]
    for n in neurons:
        loop.add(n)
    for j, i in calls:
        loop.link(neurons[j], neurons[i])
    expected = [(j, neurons.index(t)) for j, n in enumerate(neurons) for t in loop.neurons[n]]
    got = toggle_links(torch.tensor(calls).t(), 3).t().tolist()
    assert [tuple(e) for e in got] == expected  # order inside each sender's list kept


def test_random_links_distinct_and_without_self_links():
    links = random_links(50, 7, generator=torch.Generator().manual_seed(3))
    assert links.shape == (2, 350)
    assert not bool((links[0] == links[1]).any())
    assert torch.unique(links[0] * 50 + links[1]).numel() == 350
    assert torch.bincount(links[0], minlength=50).eq(7).all()
    with pytest.raises(ValueError, match="out_degree"):
        random_links(5, 5)


def test_from_networkx_node_attributes_and_undirected():
    graph = nx.DiGraph()
    graph.add_node("skin", threshold=0.5, sta=0)
    graph.add_node("inter", treshold=2.0, speed=1)  # the article's spelling works too
    graph.add_node("muscle")
    graph.add_edges_from([("skin", "inter"), ("inter", "muscle")])
    net = NeuronNetwork.from_networkx(graph)
    assert net.names == ["skin", "inter", "muscle"]
    assert net.threshold.tolist() == [0.5, 2.0, 10.0]
    assert net.speed.tolist() == [5, 1, 5] and net.sta.tolist() == [0, 5, 5]
    assert net.edge_index.tolist() == [[0, 1], [1, 2]]
    undirected = NeuronNetwork.from_networkx(nx.path_graph(3))
    assert sorted(map(tuple, undirected.edge_index.t().tolist())) == [
        (0, 1),
        (1, 0),
        (1, 2),
        (2, 1),
    ]
    with pytest.raises(ValueError, match="both as node attributes"):
        NeuronNetwork.from_networkx(graph, threshold=1.0)


def test_save_load_round_trip_mid_run(tmp_path):
    links = torch.tensor([[2, 0, 1, 1], [0, 1, 2, 1]])
    net = NeuronNetwork(
        links, 3, batch_shape=(2,), threshold=torch.tensor([1.0, 2.0, 3.0]), speed=[1, 2, 3],
        copy_synapse=True, names=["a", "b", "c"],
    )  # fmt: skip
    net.run(7)
    path = save_network(net, tmp_path / "net.pt")
    back = load_network(path)
    assert back.edge_index.tolist() == net.edge_index.tolist()  # links in order
    assert back.names == ["a", "b", "c"] and back.copy_synapse and back.batch_shape == (2,)
    for name in STATE + ("threshold", "returnability", "speed", "recovery", "reproductivity"):
        assert torch.equal(getattr(back, name), getattr(net, name)), name
    assert back.last_state is back.current_state
    a, b = net.run(5, record=STATE), back.run(5, record=STATE)
    for name in STATE:  # the loaded copy recomputes the delivery the original keeps cached
        torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-12)


def test_load_refuses_other_formats(tmp_path):
    text = tmp_path / "net.json"
    text.write_text(json.dumps({"neurons": []}))
    with pytest.raises(ValueError, match="not a cortexgnn neuron network"):
        load_network(text)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="format tag"):
        load_network(other)
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "missing.pt")


def test_load_never_unpickles_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cortexgnn.neurons", "payload": Neuron("x")}, path)
    with pytest.raises(ValueError, match="not a cortexgnn neuron network"):
        load_network(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    links = random_links(40, 4, generator=torch.Generator().manual_seed(0))
    cpu = NeuronNetwork(links, 40, batch_shape=(3,), sta=torch.randint(0, 6, (40, 3)))
    gpu = NeuronNetwork(links, 40, batch_shape=(3,), sta=cpu.sta, device="cuda")
    a = cpu.run(30, record=("actions", "current_state"))
    b = gpu.run(30, record=("actions", "current_state"))
    assert torch.equal(a["actions"], b["actions"].cpu())
    torch.testing.assert_close(a["current_state"], b["current_state"].cpu())


def test_sizes_in_a_neuron_file_are_bounded_and_a_missing_entry_is_a_value_error(tmp_path):
    path = save_network(NeuronNetwork(torch.tensor([[0], [1]]), 2), tmp_path / "net.pt")
    payload = torch.load(path, weights_only=True)
    for key, value, match in [
        ("batch_shape", [10**5, 10**5], r"copies \(100000, 100000\) .* GiB.*max_elements"),
        ("num_nodes", 10**9, r"1,000,000,000 neurons .* GiB.*max_elements"),
        ("num_nodes", 2.5, "num_nodes must be a positive int"),
        ("batch_shape", [-1], "batch_shape must be a list of positive ints"),
    ]:
        torch.save({**payload, key: value}, tmp_path / "edited.pt")
        with pytest.raises(ValueError, match=match):
            load_network(tmp_path / "edited.pt")
    torch.save({k: v for k, v in payload.items() if k != "edge_index"}, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match=r"lacks \['edge_index'\]"):
        load_network(tmp_path / "cut.pt")
    torch.save({**payload, "batch_shape": [50]}, tmp_path / "copies.pt")
    with pytest.raises(ValueError, match="above the limit"):
        load_network(tmp_path / "copies.pt", max_elements=100)
    assert load_network(tmp_path / "copies.pt").batch_shape == (50,)  # the default allows it
