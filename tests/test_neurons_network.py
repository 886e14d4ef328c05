"""NeuronNetwork against the loop port, sweep by sweep; the quirks and each fix flag."""

from __future__ import annotations

import random

import pytest
import torch

from cortexgnn.neurons import Action, NeuronNetwork, event_log
from cortexgnn.neurons.loop import Network, Neuron

PARAMETERS = ("threshold", "returnability", "speed", "recovery", "reproductivity")
FIELDS = ("sta", "str", "dendrite", "synapse", "accumulated", "current_state", "last_state")


def random_reference(seed: int, num_nodes: int, num_links: int, with_self: bool = True):
    """A loop Network with random per-neuron parameters, state and (toggled) links."""
    rng = random.Random(seed)
    net = Network()
    neurons = [
        Neuron(
            f"n{k}",
            treshold=rng.uniform(-0.5, 1.5),
            returnablity=rng.random(),
            speed=rng.randint(0, 4),
            recovery=rng.randint(0, 3),
            sta=rng.randint(0, 3),
            str=rng.randint(0, 2),
            reproductivity=(rng.uniform(0.0, 1.0), rng.uniform(-0.4, 0.1)),
        )
        for k in range(num_nodes)
    ]
    for n in neurons:
        n.dendrite = [rng.uniform(0, 2), rng.uniform(-1, 0)]
        n.current_state = [rng.uniform(0, 2), rng.uniform(-1, 0)]
        n.last_state = list(n.current_state)
        net.add(n)
    for _ in range(num_links):
        j, i = rng.choice(neurons), rng.choice(neurons)
        if j is not i or with_self:
            net.link(j, i)
    return net


def assert_same_state(ref: Network, vec: NeuronNetwork, copy=()) -> None:
    for k, n in enumerate(ref.neurons):
        state = vec.neuron_state(k, copy)
        for name in FIELDS:
            want, got = getattr(n, name), state[name]
            if isinstance(got, int):
                assert got == want, (k, name)
            else:
                assert got == pytest.approx(want, abs=1e-9, rel=0), (k, name)


@pytest.mark.parametrize("seed", range(4))
def test_equal_to_loop_sweep_by_sweep(seed):
    ref = random_reference(seed, num_nodes=12, num_links=40)
    vec = NeuronNetwork.from_reference(ref)
    seen = set()
    for _ in range(60):
        ref.sweep()
        seen.update(vec.step().actions.tolist())
        assert_same_state(ref, vec)
    assert seen == set(Action)  # every branch was exercised


def test_equal_with_stimulus_of_chosen_neurons():
    ref = random_reference(7, num_nodes=10, num_links=25)
    vec = NeuronNetwork.from_reference(ref)
    neurons = list(ref.neurons)
    nodes = torch.tensor([0, 4, 9])
    for t in range(30):
        pair = torch.tensor([[0.3 * t, -0.1], [1.0, 0.0], [0.2, 0.2]], dtype=torch.float64)
        ref.sweep(
            {neurons[k]: tuple(p.tolist()) for k, p in zip(nodes.tolist(), pair, strict=True)}
        )
        vec.step(pair, stimulus_nodes=nodes)
        assert_same_state(ref, vec)


def test_copies_equal_a_loop_over_copies():
    refs = [random_reference(seed, num_nodes=9, num_links=20) for seed in (11, 12, 13)]
    # the same links for all copies: copy the links of the first network's structure
    links = NeuronNetwork.from_reference(refs[0]).edge_index
    singles = []
    for ref in refs:
        single = NeuronNetwork.from_reference(ref)
        single = NeuronNetwork(
            links,
            9,
            **{name: getattr(single, name) for name in PARAMETERS + FIELDS},
        )
        singles.append(single)

    def stacked(name):
        return torch.stack([getattr(s, name) for s in singles], dim=1)

    batched = NeuronNetwork(
        links, 9, batch_shape=(3,),
        **{name: stacked(name) for name in PARAMETERS + FIELDS},
    )  # fmt: skip
    for _ in range(25):
        sweep = batched.step()
        for b, single in enumerate(singles):
            assert torch.equal(sweep.actions[:, b], single.step().actions)
    for b, single in enumerate(singles):
        for name in FIELDS:
            torch.testing.assert_close(getattr(batched, name)[:, b], getattr(single, name))


def test_article_two_neuron_example_event_log():
    events = []
    ref = Network(on_event=lambda name, action: events.append((name, action)))
    first, second = Neuron("ПЕРВЫЙ"), Neuron("ВТОРОЙ")
    ref.add(first)
    ref.add(second)
    ref.link(first, second)
    vec = NeuronNetwork.from_reference(ref)
    out = vec.run(12, record=("actions", "releases"))
    log = event_log(out["actions"], vec.edge_index, vec.names)
    for sweep in log:
        events.clear()
        ref.sweep()
        assert sweep == events
    first_actions = [entry[0][1] for entry in log]
    assert first_actions[:10] == ["transmit"] * 4 + ["release"] + ["recover"] * 5
    assert all(entry[1] == ("ВТОРОЙ", "receive") for entry in log)
    torch.testing.assert_close(
        out["releases"][4, 0], torch.tensor([2.5, -0.5], dtype=torch.float64)
    )
    assert_same_state(ref, vec)


def test_in_sweep_order_forward_link_arrives_same_sweep_backward_next():
    # 0 -> 1 (forward) and 2 -> 1 (backward): only 0's share reaches 1 before its turn
    ref = Network()
    a, b, c = Neuron("a", sta=1), Neuron("b", sta=0, treshold=100), Neuron("c", sta=1)
    for n in (a, b, c):
        ref.add(n)
    ref.link(a, b)
    ref.link(c, b)
    vec = NeuronNetwork.from_reference(ref)
    ref.sweep()
    vec.step()
    assert b.current_state == pytest.approx([0.05, -0.01])  # a's 0.1 * [0.5, -0.1]
    assert b.dendrite == pytest.approx([0.05, -0.01])  # c's share waits for the next sweep
    assert_same_state(ref, vec)


def test_synchronous_delivery_fix_is_order_free():
    ref = random_reference(3, num_nodes=10, num_links=30)
    base = NeuronNetwork.from_reference(ref)
    params = {name: getattr(base, name) for name in PARAMETERS + FIELDS}
    perm = torch.randperm(10)
    inverse = torch.argsort(perm)
    for synchronous in (False, True):
        one = NeuronNetwork(base.edge_index, 10, synchronous_delivery=synchronous, **params)
        two = NeuronNetwork(
            inverse[base.edge_index], 10, synchronous_delivery=synchronous,
            **{name: value[perm] for name, value in params.items()},
        )  # fmt: skip
        one.run(20)
        two.run(20)
        same = torch.allclose(one.current_state[perm], two.current_state, atol=1e-9)
        assert same is synchronous  # the article's order matters; the fix removes it
    fixed = NeuronNetwork(base.edge_index, 10, synchronous_delivery=True, **params)
    out = fixed.run(1, record=("dendrite",))
    # nothing received during the sweep reached current_state: dendrite holds it all
    assert out["dendrite"].abs().sum() > 0


def test_copy_synapse_fix_hands_out_the_unscaled_synapse():
    ref = Network()
    s, a, b = Neuron("s", sta=1), Neuron("a", sta=0, treshold=99), Neuron("b", sta=0, treshold=99)
    for n in (s, a, b):
        ref.add(n)
    ref.link(s, a)
    ref.link(s, b)
    faithful = NeuronNetwork.from_reference(ref)
    fixed = NeuronNetwork.from_reference(ref, copy_synapse=True)
    faithful.step()
    sweep = fixed.step()
    release = torch.tensor([0.5, -0.1], dtype=torch.float64)
    torch.testing.assert_close(faithful.current_state[1], 0.1 * release / 2)
    torch.testing.assert_close(fixed.current_state[1], release / 2)
    torch.testing.assert_close(fixed.synapse[0], 0.1 * release)  # the sender still keeps 10 %
    torch.testing.assert_close(sweep.sent[0], release)


def test_last_state_aliasing_is_not_observable():
    ref = random_reference(5, num_nodes=8, num_links=20)
    twin = random_reference(5, num_nodes=8, num_links=20)
    for _ in range(30):
        ref.sweep()
        twin.sweep()
        for n in twin.neurons:  # the article's intent: a copy, not the same list
            n.last_state = list(n.current_state)
        for n, m in zip(ref.neurons, twin.neurons, strict=True):
            assert n.last_state is n.current_state
            assert n.current_state == m.current_state and n.sta == m.sta
    vec = NeuronNetwork.from_reference(ref)
    vec.step()
    assert vec.last_state is vec.current_state


def test_neuron_without_links_sends_nothing_and_self_links():
    ref = Network()
    lone, selfish = Neuron("lone", sta=1), Neuron("self", sta=1, treshold=99)
    ref.add(lone)
    ref.add(selfish)
    ref.link(selfish, selfish)
    vec = NeuronNetwork.from_reference(ref)
    for _ in range(8):
        ref.sweep()
        sweep = vec.step()
        assert torch.all(sweep.sent[0] == 0)
        assert_same_state(ref, vec)
    assert selfish.current_state[0] > 0  # its own share came back after its turn


def test_toggle_from_edge_index():
    links = torch.tensor([[0, 0, 1, 0], [1, 1, 2, 2]])
    vec = NeuronNetwork(links, 3)
    assert vec.edge_index.tolist() == [[0, 1], [2, 2]]


def test_run_records_and_readout_nodes():
    vec = NeuronNetwork(torch.tensor([[0, 1], [1, 2]]), 3, batch_shape=(2,))
    out = vec.run(4, record=("actions", "current_state", "sent"), nodes=torch.tensor([2]))
    assert out["actions"].shape == (4, 1, 2) and out["actions"].dtype == torch.int8
    assert out["current_state"].shape == (4, 1, 2, 2)
    with pytest.raises(ValueError, match="cannot record"):
        vec.run(1, record=("spikes",))


def test_callable_and_per_sweep_stimulus_agree():
    stim = torch.rand(5, 1, 2, dtype=torch.float64)
    one = NeuronNetwork(torch.tensor([[0], [1]]), 2)
    two = NeuronNetwork(torch.tensor([[0], [1]]), 2)
    a = one.run(5, stimulus=stim, stimulus_nodes=torch.tensor([0]), record=("dendrite",))
    b = two.run(5, stimulus=lambda t: stim[t], stimulus_nodes=torch.tensor([0]),
                record=("dendrite",))  # fmt: skip
    torch.testing.assert_close(a["dendrite"], b["dendrite"])


def reflex_arc(order: list[int], **flags) -> list[list[int]]:
    """Sensor -> inter -> inter -> motor, stage k stored at index order[k]; release sweeps."""
    links = torch.tensor([order[:-1], order[1:]])
    threshold = torch.full((4,), 0.2, dtype=torch.float64)
    threshold[order[0]] = 0.5
    net = NeuronNetwork(
        links, 4, sta=0, speed=1, recovery=2, threshold=threshold, reproductivity=(1.0, 0.0),
        **flags,
    )  # fmt: skip
    out = net.run(
        14, stimulus=torch.tensor([[1.0, 0.0]]), stimulus_nodes=torch.tensor([order[0]]),
        record=("actions",),
    )  # fmt: skip
    released = out["actions"] == Action.RELEASE  # [T, N]
    return [(released[:, order[k]].nonzero().flatten() + 1).tolist() for k in range(4)]


def test_reflex_arc_motor_answers_after_expected_sweeps():
    # the sensor accumulates (1), activates (2), releases at 2 + speed = 3; each later stage
    # receives in that same sweep (forward link), activates one sweep later and releases
    # speed sweeps after that: + (1 + speed) per stage, motor at 3 + 3 * 2 = 9
    assert reflex_arc([0, 1, 2, 3]) == [[3, 8, 13], [5, 10], [7, 12], [9, 14]]
    # numbered backwards every link is a backward one: one sweep more per stage
    assert reflex_arc([3, 2, 1, 0])[3] == [12]
    assert reflex_arc([0, 1, 2, 3], synchronous_delivery=True)[3] == [12]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sta=-1), "sta must not be negative"),
        (dict(speed=1.5), "whole numbers"),
        (dict(threshold=torch.ones(5)), "threshold must have shape"),
        (dict(reproductivity=torch.ones(3, 3)), "reproductivity must have shape"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuronNetwork(torch.tensor([[0], [1]]), 3, **kwargs)


def test_links_to_unknown_neurons():
    with pytest.raises(ValueError, match="target nodes 5..5, but the graph has 3"):
        NeuronNetwork(torch.tensor([[0], [5]]), 3)
    ref = Network()
    a, b = Neuron("a"), Neuron("b")
    ref.add(a)
    ref.neurons[a].append(b)  # linked but never added
    with pytest.raises(ValueError, match="not in the network"):
        NeuronNetwork.from_reference(ref)


def test_repr():
    net = NeuronNetwork(torch.tensor([[0], [1]]), 2, copy_synapse=True)
    assert repr(net) == "NeuronNetwork(num_nodes=2, num_edges=1, batch_shape=(), copy_synapse=True)"


def test_cached_delivery_follows_a_synapse_changed_from_outside():
    ref = random_reference(21, num_nodes=10, num_links=30)
    vec = NeuronNetwork.from_reference(ref)
    neurons = list(ref.neurons)
    for t in range(20):
        if t == 8:  # edit a synapse in place, on both sides
            neurons[3].synapse[0] += 5.0
            vec.synapse[3, 0] += 5.0
        if t == 12:  # replace the tensor
            neurons[5].synapse = [1.0, -1.0]
            synapse = vec.synapse.clone()
            synapse[5] = torch.tensor([1.0, -1.0], dtype=torch.float64)
            vec.synapse = synapse
        ref.sweep()
        vec.step()
        assert_same_state(ref, vec)


def test_many_releases_take_the_full_product_few_take_the_release_links():
    # all neurons release together at sweep 5 (full product), one alone later (its links)
    links = torch.tensor([[0, 1, 2, 3, 3, 1], [1, 2, 3, 0, 1, 3]])
    sta = torch.tensor([5, 5, 5, 5])
    ref_twin = NeuronNetwork(links, 4, sta=sta, threshold=0.05, speed=2, recovery=1)
    ref = ref_twin.to_reference()
    vec = NeuronNetwork.from_reference(ref)
    releases = 0
    for _ in range(40):
        ref.sweep()
        releases += int((vec.step().actions == Action.RELEASE).sum())
        assert_same_state(ref, vec)
    assert releases > 4


def test_delivery_paths_equal_a_dense_product():
    from cortexgnn.neurons.delivery import TransmitterDelivery, deliver_into, delivery_adjacency

    links = torch.tensor([[0, 0, 1, 2, 2, 3], [1, 3, 2, 0, 2, 1]])
    weight = torch.rand(6, dtype=torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    dense = torch.zeros(4, 4, dtype=torch.float64)
    dense[links[1], links[0]] = weight  # row receiver i, column sender j
    conv = TransmitterDelivery()
    torch.testing.assert_close(conv(x, delivery_adjacency(links, weight, 4)), dense @ x)
    torch.testing.assert_close(conv(x, links, weight), dense @ x)  # PyG's edge-wise path
    out = torch.ones(4, 5, dtype=torch.float64)
    deliver_into(out, x, links[:, :3], weight[:3], 0.5)
    part = torch.zeros_like(dense)
    part[links[1, :3], links[0, :3]] = weight[:3]
    torch.testing.assert_close(out, 1 + 0.5 * part @ x)
    assert repr(conv) == "TransmitterDelivery()"


@pytest.mark.parametrize("share", [1.0, 0.0])
def test_release_only_and_full_delivery_both_equal_the_loop(monkeypatch, share):
    import cortexgnn.neurons.network as network_module

    calls = []
    original = network_module.deliver_into

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(network_module, "RELEASE_PATH_SHARE", share)
    monkeypatch.setattr(network_module, "deliver_into", counting)
    ref = random_reference(31, num_nodes=14, num_links=45)
    vec = NeuronNetwork.from_reference(ref)
    for _ in range(50):
        ref.sweep()
        vec.step()
        assert_same_state(ref, vec)
    assert bool(calls) is (share == 1.0)  # share 1: every release goes the release-only way
