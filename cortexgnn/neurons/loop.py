"""The second article's neuron network as a Python loop: one object per neuron.

A faithful port of the article's ``Neuron`` and ``Network``: the attribute names (including
the article's spellings ``treshold`` and ``returnablity``), the branch order of
:meth:`Neuron.step`, and the body of the article's main loop as :meth:`Network.sweep`,
quirks included:

* neurons step in insertion order, and what a neuron sends lands in its receivers'
  dendrites at once, so later neurons read it in the same sweep and earlier ones only in
  the next;
* the transmitters handed to the receivers are the synapse list itself, read *after* it was
  scaled by 0.1: each of the ``k`` receivers gets ``0.1 * synapse / k`` and the sender keeps
  ``0.1 * synapse`` (the other 80 % vanish);
* at the end of a sweep ``last_state`` becomes the very list object ``current_state``;
* :meth:`Network.link` toggles, a neuron without links sends nothing, self links are
  allowed.

This module is the oracle the batched :class:`~cortexgnn.neurons.network.NeuronNetwork` is
tested against, and the speed baseline of ``benchmarks/neurons.py``. The article printed
every action with a nanosecond clock and ran the loop on a thread with a 10 ms sleep;
here printing is off by default, :meth:`Network.sweep` runs one pass without sleeping, and
:meth:`Network.maincycle` keeps the article's threaded loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The article's console words for each action, printed when ``print_actions`` is on.
ARTICLE_WORDS = {
    "recover": "ВОССТАНАВЛИВАЮСЬ",
    "release": "ВЫБРАСЫВАЮ",
    "transmit": "ПЕРЕДАЮ",
    "activate": "АКТИВИРУЮСЬ",
    "accumulate": "НАКАПЛИВАЮ",
    "receive": "ПРИНИМАЮ",
}

Say = Callable[[str, str], None]  # (neuron name, action) -> None


class Neuron:
    """One neuron of the article: counters and two-component transmitter stores.

    Every pair is ``[excitatory, inhibitory]``. The defaults are the article's; the keyword
    arguments only let a caller start from other values (the article's GUI edited them).

    Args:
        name: printed with every action.
        treshold: activation threshold on ``last_state[0] + last_state[1]`` (article's
            spelling).
        returnablity: share of ``accumulated`` kept after a release (article's spelling).
        speed: ``sta`` is set to this on activation; a release follows ``speed`` sweeps later
            (a neuron with ``speed`` 0 never releases).
        recovery: ``str`` is set to this on a release.
        sta: steps to activation (release); the article starts at 5 to autostart.
        str: steps to recovery (named after the article's attribute).
        reproductivity: transmitters added to ``accumulated`` at every step.
    """

    def __init__(
        self,
        name: str,
        *,
        treshold: float = 10,
        returnablity: float = 0.1,
        speed: int = 5,
        recovery: int = 5,
        sta: int = 5,
        str: int = 0,  # the article's attribute name (shadows the builtin here only)
        reproductivity: tuple[float, float] = (0.5, -0.1),
    ) -> None:
        self.name = name
        self.treshold = treshold
        self.returnablity = returnablity
        self.speed = speed
        self.recovery = recovery
        self.sta = sta
        self.str = str
        self.dendrite = [0, 0]  # received from other neurons' synapses
        self.synapse = [0, 0]  # what this neuron sends along its links every sweep
        self.reproductivity = list(reproductivity)
        self.accumulated = [0, 0]
        self.current_state = [0, 0]  # written during a sweep
        self.last_state = [0, 0]  # read by the threshold test

    def step(self, say: Say | None = None) -> str:
        """One step of this neuron; returns the action taken (``'recover'`` ... ``'accumulate'``).

        The accumulated stores grow by ``reproductivity`` first, in every branch; then the
        first matching branch of recover, release, transmit, activate, accumulate runs.
        """
        self.accumulated[0] += self.reproductivity[0]
        self.accumulated[1] += self.reproductivity[1]
        if self.str > 0:
            action = "recover"
            self.str -= 1
        elif self.sta == 1:
            action = "release"
            self.sta = 0
            self.synapse[0] += self.accumulated[0]
            self.synapse[1] += self.accumulated[1]
            self.accumulated[0] = self.accumulated[0] * self.returnablity
            self.accumulated[1] = self.accumulated[1] * self.returnablity
            self.str = self.recovery
        elif self.sta > 0:
            action = "transmit"
            self.sta -= 1
        elif self.last_state[0] + self.last_state[1] > self.treshold:
            action = "activate"
            self.current_state = [0, 0]  # a new list: last_state keeps the old one
            self.sta = self.speed
        else:
            action = "accumulate"
            self.current_state[0] += self.dendrite[0]
            self.current_state[1] += self.dendrite[1]
            self.dendrite[0] = 0
            self.dendrite[1] = 0
        if say is not None:
            say(self.name, action)
        return action

    def dendrites(self, tm: tuple[float, float], say: Say | None = None) -> None:
        """Receive a pair of transmitters from another neuron's synapse."""
        if say is not None:
            say(self.name, "receive")
        self.dendrite[0] += tm[0]
        self.dendrite[1] += tm[1]

    def __repr__(self) -> str:
        return f"Neuron({self.name!r})"


class Network:
    """The article's network: a dict from each neuron to the list of neurons it sends to.

    Args:
        print_actions: print every action as the article did (nanosecond clock, name, word).
        on_event: called with ``(name, action)`` for every action and every receipt, in the
            order they happen (the event log the tests compare).
    """

    def __init__(self, *, print_actions: bool = False, on_event: Say | None = None) -> None:
        self.neurons: dict[Neuron, list[Neuron]] = {}
        self.run = False
        self.print_actions = print_actions
        self.on_event = on_event

    def link(self, n1: Neuron, n2: Neuron) -> None:
        """Link ``n1 -> n2``; linking an already linked pair removes the link (a toggle)."""
        if n2 in self.neurons[n1]:
            self.neurons[n1].remove(n2)
        else:
            self.neurons[n1].append(n2)

    def add(self, n: Neuron) -> None:
        """Add ``n`` with no links (adding it again drops its links, as in the article)."""
        self.neurons[n] = []

    def _say(self, name: str, action: str) -> None:
        if self.print_actions:
            print(time.perf_counter_ns(), name, ARTICLE_WORDS[action])
        if self.on_event is not None:
            self.on_event(name, action)

    def sweep(self, stimulus: dict[Neuron, tuple[float, float]] | None = None) -> None:
        """One pass of the article's main loop body.

        Args:
            stimulus: optional transmitters added to chosen neurons' dendrites before any
                neuron steps (the article's controller driving the network; not in its loop).
        """
        say = self._say if (self.print_actions or self.on_event is not None) else None
        for neuron, pair in (stimulus or {}).items():
            neuron.dendrite[0] += pair[0]
            neuron.dendrite[1] += pair[1]
        for neuron, targets in self.neurons.items():
            neuron.step(say)
            tm = neuron.synapse  # the same list: the scaling below is what the receivers read
            neuron.synapse[0] = neuron.synapse[0] * 0.1
            neuron.synapse[1] = neuron.synapse[1] * 0.1
            amount = len(targets)
            for target in targets:
                target.dendrites((tm[0] / amount, tm[1] / amount), say)
        for neuron in self.neurons:
            neuron.last_state = neuron.current_state  # the same list from now on

    def maincycle(self, sleep_s: float = 0.01) -> None:
        """The article's loop: sweep until ``run`` is cleared, sleeping between sweeps."""
        while self.run:
            self.sweep()
            time.sleep(sleep_s)
