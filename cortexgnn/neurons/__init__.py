"""The transmitter neuron network: the article's loop and a batched message-passing simulator.

* :mod:`~cortexgnn.neurons.loop`: the article's ``Neuron`` and ``Network``, ported
  faithfully (the oracle and the speed baseline).
* :class:`NeuronNetwork`: all neurons and ``B`` copies as tensors on an ``edge_index``,
  one sweep per :meth:`~NeuronNetwork.step`, equal to the loop sweep by sweep.
* :mod:`~cortexgnn.neurons.io`: save, load and networkx input;
  :mod:`~cortexgnn.neurons.graphs`: link checks, the article's toggle, generators.
"""

from cortexgnn.neurons.actions import Action, event_log
from cortexgnn.neurons.delivery import TransmitterDelivery
from cortexgnn.neurons.graphs import chain_links, random_links, toggle_links
from cortexgnn.neurons.io import load_network, save_network
from cortexgnn.neurons.loop import Network, Neuron
from cortexgnn.neurons.network import NeuronNetwork, Sweep

__all__ = [
    "Action",
    "Network",
    "Neuron",
    "NeuronNetwork",
    "Sweep",
    "TransmitterDelivery",
    "chain_links",
    "event_log",
    "load_network",
    "random_links",
    "save_network",
    "toggle_links",
]
