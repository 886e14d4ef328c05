"""Action codes of a neuron's step and the article's event log rebuilt from them.

:class:`Action` numbers the five branches of a step (accumulate 0 ... recover 4); these are
the codes ``NeuronNetwork.run`` records per neuron and sweep. :func:`event_log` turns
recorded codes back into the sequence the article's loop printed: each neuron's action in
insertion order, each followed by one ``receive`` per link of that neuron (the loop calls
``dendrites`` on every receiver in every sweep, whatever the amount).
"""

from __future__ import annotations

from enum import IntEnum

import torch
from torch import Tensor


class Action(IntEnum):
    """What a neuron did in a sweep; the names are the article's branches."""

    ACCUMULATE = 0
    ACTIVATE = 1
    TRANSMIT = 2
    RELEASE = 3
    RECOVER = 4

    @property
    def word(self) -> str:
        """The lower-case name used in event logs (``'release'``)."""
        return self.name.lower()


def event_log(
    actions: Tensor, edge_index: Tensor, names: list[str] | None = None
) -> list[list[tuple[str, str]]]:
    """The article's printed sequence, sweep by sweep, from recorded action codes.

    Args:
        actions: ``[T, N]`` action codes of one copy (:class:`Action` values).
        edge_index: ``[2, E]`` links grouped by source in neuron order, each source's
            targets in link order (the order ``NeuronNetwork.edge_index`` keeps).
        names: neuron names (default ``"0"``, ``"1"``, ...).

    Returns:
        One list per sweep of ``(name, action)`` pairs, ``action`` one of the
        :class:`Action` words or ``'receive'``.
    """
    if actions.dim() != 2:
        raise ValueError(f"actions must be [T, N] for one copy, got {tuple(actions.shape)}")
    num_nodes = actions.size(1)
    names = names if names is not None else [str(i) for i in range(num_nodes)]
    targets: list[list[int]] = [[] for _ in range(num_nodes)]
    for j, i in edge_index.t().tolist():
        targets[j].append(i)
    words = [a.word for a in Action]
    log = []
    for row in actions.to(torch.long).tolist():
        sweep = []
        for j, code in enumerate(row):
            sweep.append((names[j], words[code]))
            sweep.extend((names[i], "receive") for i in targets[j])
        log.append(sweep)
    return log
