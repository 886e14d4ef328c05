"""The loop port of the seed-001 article: its printed example and its quirks, in the loop."""

from __future__ import annotations

import pytest

from cortexgnn.neurons.loop import ARTICLE_WORDS, Network, Neuron


def two_neurons(**kwargs):
    events: list[tuple[str, str]] = []
    net = Network(on_event=lambda name, action: events.append((name, action)), **kwargs)
    first, second = Neuron("ПЕРВЫЙ"), Neuron("ВТОРОЙ")
    net.add(first)
    net.add(second)
    net.link(first, second)
    return net, first, second, events


def test_article_example_prints_its_sequence(capsys):
    net, first, second, events = two_neurons(print_actions=True)
    sweeps = []
    for _ in range(7):
        events.clear()
        net.sweep()
        sweeps.append(list(events))
    expected = (
        ["transmit"] * 4 + ["release"] + ["recover"] * 2
    )  # the article's console output, sweeps 1..7
    for sweep, action in zip(sweeps, expected, strict=True):
        assert sweep == [("ПЕРВЫЙ", action), ("ВТОРОЙ", "receive"), ("ВТОРОЙ", action)]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 21
    assert lines[0].split()[1:] == ["ПЕРВЫЙ", ARTICLE_WORDS["transmit"]]
    assert lines[12].split()[1:] == ["ПЕРВЫЙ", "ВЫБРАСЫВАЮ"]
    assert all(int(line.split()[0]) > 0 for line in lines)  # the nanosecond clock


def test_printing_is_off_by_default(capsys):
    net, *_ = two_neurons()
    net.sweep()
    assert capsys.readouterr().out == ""


def test_release_moves_stores_and_scaled_synapse_is_what_receivers_get():
    net, first, second, _ = two_neurons()
    for _ in range(5):
        net.sweep()
    # five sweeps of reproduction, released on the fifth: synapse 2.5, -0.5 before scaling
    assert first.accumulated == pytest.approx([0.25, -0.05])
    assert first.synapse == pytest.approx([0.25, -0.05])  # the sender keeps 0.1 * synapse
    assert second.dendrite == pytest.approx([0.25, -0.05])  # k = 1: 0.1 * synapse / 1
    assert first.str == 5 and first.sta == 0


def test_tm_is_the_synapse_list_so_eighty_percent_vanish():
    net = Network()
    sender, a, b = Neuron("s", sta=1), Neuron("a", sta=0), Neuron("b", sta=0)
    for n in (sender, a, b):
        net.add(n)
    net.link(sender, a)
    net.link(sender, b)
    net.sweep()  # the sender releases 0.5, -0.1
    # each of k = 2 receivers gets 0.1 * synapse / 2; a and b accumulated it this sweep
    assert a.current_state == pytest.approx([0.025, -0.005])
    assert b.current_state == pytest.approx([0.025, -0.005])
    assert sender.synapse == pytest.approx([0.05, -0.01])
    total = a.current_state[0] + b.current_state[0] + sender.synapse[0]
    assert total == pytest.approx(0.2 * 0.5)  # 80 % of the release is gone


def test_last_state_becomes_current_state_object():
    net, first, second, _ = two_neurons()
    assert first.last_state is not first.current_state
    net.sweep()
    assert first.last_state is first.current_state
    assert second.last_state is second.current_state


def test_link_toggles_and_self_links():
    net = Network()
    a, b = Neuron("a"), Neuron("b")
    net.add(a)
    net.add(b)
    net.link(a, b)
    net.link(a, b)
    assert net.neurons[a] == []
    net.link(a, a)
    assert net.neurons[a] == [a]


def test_neuron_without_links_still_scales_its_synapse():
    net = Network()
    lone = Neuron("lone", sta=1)
    net.add(lone)
    net.sweep()
    assert lone.synapse == pytest.approx([0.05, -0.01])


def test_branch_order_and_reproduction_in_every_branch():
    cases = [
        (dict(str=2, sta=1), "recover", dict(str=1, sta=1)),
        (dict(sta=1), "release", dict(str=5, sta=0)),
        (dict(sta=3), "transmit", dict(str=0, sta=2)),
        (dict(sta=0), "activate", dict(str=0, sta=5)),
        (dict(sta=0, treshold=100), "accumulate", dict(str=0, sta=0)),
    ]
    for init, action, after in cases:
        n = Neuron("n", **init)
        n.last_state = [8, 4]  # 12 > 10: activates when nothing earlier matches
        n.dendrite = [1.0, 2.0]
        assert n.step() == action
        assert {"str": n.str, "sta": n.sta} == after
        if action != "release":
            assert n.accumulated == pytest.approx([0.5, -0.1])
    n = Neuron("n", sta=0)
    n.current_state = [20, 0]
    n.last_state = n.current_state
    assert n.step() == "activate"
    assert n.current_state == [0, 0] and n.last_state == [20, 0]  # a new list on activation
