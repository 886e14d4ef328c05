r"""The transmitter neuron network as tensors: every neuron, every copy, one sweep per ``step``.

Nodes first: counters are ``[N, *]`` and transmitter pairs ``[N, *, 2]`` (``[excitatory,
inhibitory]``), where ``*`` is ``batch_shape``, empty for one network or ``(B,)`` for ``B``
independent copies on the same links. One sweep of the article's loop, for neuron ``i``
with parameters threshold :math:`\theta`, returnability :math:`\rho`, speed, recovery and
reproductivity :math:`\mathbf{r}`:

.. math::
    \mathbf{a}_i &\leftarrow \mathbf{a}_i + \mathbf{r}_i \\
    \text{branch}_i &= \begin{cases}
        \text{recover}    & str_i > 0 \\
        \text{release}    & sta_i = 1 \\
        \text{transmit}   & sta_i > 0 \\
        \text{activate}   & \ell_{i,0} + \ell_{i,1} > \theta_i \\
        \text{accumulate} & \text{otherwise}
    \end{cases}

(first match wins), then recover: ``str -= 1``; release: :math:`\mathbf{s}_i \mathrel{+}=
\mathbf{a}_i`, :math:`\mathbf{a}_i \leftarrow \rho_i \mathbf{a}_i`, ``sta = 0``,
``str = recovery``; transmit: ``sta -= 1``; activate: :math:`\mathbf{c}_i \leftarrow 0`,
``sta = speed``; accumulate: :math:`\mathbf{c}_i \mathrel{+}= \mathbf{d}_i`,
:math:`\mathbf{d}_i \leftarrow 0`. Then the neuron sends: :math:`\mathbf{s}_i \leftarrow
0.1\,\mathbf{s}_i` and each of its :math:`k_i` receivers gets :math:`\mathbf{s}_i / k_i`
(the scaled synapse, the article's ``tm`` quirk). At the end ``last_state = current_state``.

Why one vectorised pass is exact: a neuron's branch reads only its own counters and
``last_state`` (its ``current_state`` at the start of the sweep), and what it sends reads
only its own synapse and stores. Receipts change only the dendrite, and the dendrite
matters only to an accumulating neuron, which folds in everything received *before its
turn*. So every branch and every message of a sweep are known up front, and the article's
in-sweep order reduces to splitting the links: a link ``j -> i`` with ``j < i`` delivers
before ``i`` steps (it reaches ``current_state`` this sweep), a link with ``j >= i`` (self
links included) delivers after (it waits in the dendrite for the next sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from cortexgnn.neurons.actions import Action
from cortexgnn.neurons.delivery import TransmitterDelivery, deliver_into, delivery_adjacency
from cortexgnn.neurons.graphs import out_degree, toggle_links

PARAMETERS = ("threshold", "returnability", "speed", "recovery", "reproductivity")
STATE = ("sta", "str", "dendrite", "synapse", "accumulated", "current_state", "last_state")
PAIRS = ("reproductivity", "dendrite", "synapse", "accumulated", "current_state", "last_state")
COUNTERS = ("speed", "recovery", "sta", "str")
COUNTER_DTYPE = torch.int32  # sweeps counted; half the traffic of int64
DEFAULTS = {
    "threshold": 10.0,
    "returnability": 0.1,
    "speed": 5,
    "recovery": 5,
    "reproductivity": (0.5, -0.1),
    "sta": 5,
    "str": 0,
    "dendrite": (0.0, 0.0),
    "synapse": (0.0, 0.0),
    "accumulated": (0.0, 0.0),
    "current_state": (0.0, 0.0),
}
SYNAPSE_DECAY = 0.1  # the article's ``synapse * 0.1`` in the main loop
# above this share of a part's links held by releasing senders, the full sparse product
# replaces the release-only delivery: on CPU the full product was already slightly faster
# with an eleventh of the senders releasing (the benchmark's busy regime, N = 10^3 .. 10^5);
# the release-only path pays when releases are rare, as in the article's defaults
RELEASE_PATH_SHARE = 1 / 32

Stimulus = Tensor | Callable[[int], Tensor | None] | None


def _any(mask: Tensor) -> bool:
    """``bool(mask.any())``; a byte max is one vectorised pass, ``any`` is not (torch 2.x CPU)."""
    return mask.numel() > 0 and bool(mask.view(torch.uint8).max())


def _bytes(mask: Tensor) -> Tensor:
    """A bool mask as 0/1 ``int8`` (a view, no copy) for exact mixed-type arithmetic."""
    return mask.view(torch.int8)


def _all(mask: Tensor) -> bool:
    """``bool(mask.all())`` through a byte min, as :func:`_any`."""
    return mask.numel() == 0 or bool(mask.view(torch.uint8).min())


class Sweep(NamedTuple):
    """What one sweep did, per neuron and copy.

    Attributes:
        actions: ``[N, *]`` :class:`Action` codes (int8).
        releases: ``[N, *, 2]`` transmitters moved from ``accumulated`` into the synapse
            (zero unless the neuron released).
        sent: ``[N, *, 2]`` what the neuron handed out over all its links this sweep (zero
            for a neuron without links). Without ``copy_synapse`` and when every neuron has
            a link this is the live ``synapse`` tensor: clone it to keep it past the next
            sweep (``run`` does).
    """

    actions: Tensor
    releases: Tensor
    sent: Tensor


def per_neuron(
    value: object,
    name: str,
    num_nodes: int,
    batch_shape: tuple[int, ...],
    *,
    pair: bool,
    dtype: torch.dtype,
    device: torch.device | None,
) -> Tensor:
    """``value`` broadcast to ``[N, *]`` (``[N, *, 2]`` for a pair), or a ``ValueError``.

    Accepted: one value for all (``()`` or ``[2]``), one per neuron shared by the copies
    (``[N]`` or ``[N, 2]``), or one per neuron and copy (``[N, *]`` or ``[N, *, 2]``).
    """
    if isinstance(value, Tensor):
        tensor = value.to(device)
    else:  # Python numbers are doubles: read them as such before any rounding to dtype
        tensor = torch.as_tensor(value, dtype=torch.float64, device=device)
    if not dtype.is_floating_point:
        if tensor.is_floating_point() and not bool((tensor == tensor.round()).all()):
            raise ValueError(f"{name} must hold whole numbers (it counts sweeps)")
        if bool((tensor < 0).any()):
            raise ValueError(f"{name} must not be negative, got minimum {tensor.min().item()}")
    tensor = tensor.to(dtype)
    tail = (2,) if pair else ()
    full = (num_nodes, *batch_shape, *tail)
    if tuple(tensor.shape) == full:
        return tensor
    if tuple(tensor.shape) == tail:
        return tensor.expand(full)
    if tuple(tensor.shape) == (num_nodes, *tail):
        ones = (1,) * len(batch_shape)
        return tensor.reshape(num_nodes, *ones, *tail).expand(full)
    shapes = " or ".join(str(s) for s in dict.fromkeys([tail, (num_nodes, *tail), full]))
    raise ValueError(f"{name} must have shape {shapes}, got {tuple(tensor.shape)}")


class NeuronNetwork:
    """The article's neuron network, all neurons and ``B`` copies advanced by one ``step``.

    Faithful by default, quirks included (see the module docstring and docs/neurons.md);
    each fix is a flag.

    Args:
        edge_index: ``[2, E]`` the article's ``link(j, i)`` calls in order (a pair linked
            twice is unlinked, as ``link`` toggles); self links are allowed.
        num_nodes: number of neurons ``N``, in the article's insertion order ``0 .. N-1``.
        batch_shape: shape ``*`` of the independent copies, ``()`` or ``(B,)``.
        threshold: activation threshold, ``()``, ``[N]`` or ``[N, *]``.
        returnability: share of ``accumulated`` kept after a release, same shapes.
        speed: sweeps from activation to release (whole, >= 0), same shapes.
        recovery: sweeps of recovery after a release (whole, >= 0), same shapes.
        reproductivity: transmitters made per sweep, ``[2]``, ``[N, 2]`` or ``[N, *, 2]``.
        sta: initial steps to activation (whole, >= 0), ``()``, ``[N]`` or ``[N, *]``.
        str: initial steps to recovery (whole, >= 0), same shapes.
        dendrite: initial received transmitters, ``[2]``, ``[N, 2]`` or ``[N, *, 2]``.
        synapse: initial synapse, same shapes.
        accumulated: initial stores, same shapes.
        current_state: initial state, same shapes.
        last_state: initial state read by the threshold test (default ``current_state``).
        synchronous_delivery: fix: every neuron steps on what it held at the start of the
            sweep and all deliveries land after the sweep, so the result no longer depends
            on the neurons' order (default: the article's in-order delivery).
        copy_synapse: fix: receivers get the synapse as it was before the 0.1 scaling
            (``synapse / k`` each, the sender still keeps ``0.1 * synapse``), as if ``tm``
            were a copy (default: the article's ``0.1 * synapse / k``).
        names: neuron names for event logs (default ``"0"``, ``"1"``, ...).
        dtype: floating type of the transmitter pairs (float64 matches Python floats).
        device: where every tensor lives.

    Shapes:
        - counters ``sta``, ``str``: ``[N, *]`` int32.
        - pairs ``dendrite``, ``synapse``, ``accumulated``, ``current_state``,
          ``last_state``: ``[N, *, 2]``.
        - parameters: ``threshold``, ``returnability`` ``[N, *]``; ``speed``, ``recovery``
          ``[N, *]`` int32; ``reproductivity`` ``[N, *, 2]`` (broadcast views).
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        *,
        batch_shape: Sequence[int] = (),
        threshold: object = DEFAULTS["threshold"],
        returnability: object = DEFAULTS["returnability"],
        speed: object = DEFAULTS["speed"],
        recovery: object = DEFAULTS["recovery"],
        reproductivity: object = DEFAULTS["reproductivity"],
        sta: object = DEFAULTS["sta"],
        str: object = DEFAULTS["str"],  # the article's attribute name
        dendrite: object = DEFAULTS["dendrite"],
        synapse: object = DEFAULTS["synapse"],
        accumulated: object = DEFAULTS["accumulated"],
        current_state: object = DEFAULTS["current_state"],
        last_state: object | None = None,
        synchronous_delivery: bool = False,
        copy_synapse: bool = False,
        names: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"num_nodes must be a positive int, got {num_nodes!r}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating type, got {dtype}")
        if names is not None and len(names) != num_nodes:
            raise ValueError(f"names has {len(names)} entries for {num_nodes} neurons")
        self.num_nodes = num_nodes
        self.batch_shape = tuple(int(b) for b in batch_shape)
        self.synchronous_delivery = bool(synchronous_delivery)
        self.copy_synapse = bool(copy_synapse)
        self.names = list(names) if names is not None else [f"{i}" for i in range(num_nodes)]
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.edge_index = toggle_links(torch.as_tensor(edge_index), num_nodes).to(self.device)

        values = {
            "threshold": threshold,
            "returnability": returnability,
            "speed": speed,
            "recovery": recovery,
            "reproductivity": reproductivity,
            "sta": sta,
            "str": str,
            "dendrite": dendrite,
            "synapse": synapse,
            "accumulated": accumulated,
            "current_state": current_state,
            "last_state": current_state if last_state is None else last_state,
        }
        for name, value in values.items():
            tensor = per_neuron(
                value,
                name,
                num_nodes,
                self.batch_shape,
                pair=name in PAIRS,
                dtype=COUNTER_DTYPE if name in COUNTERS else dtype,
                device=self.device,
            )
            if name in STATE:  # state is owned and contiguous; parameters may stay views
                tensor = tensor.clone(memory_format=torch.contiguous_format)
            setattr(self, name, tensor)
        if last_state is None:
            self.last_state = self.current_state  # one tensor, like the article's lists
        self._build_delivery()

    def _build_delivery(self) -> None:
        """Edge weights ``1 / k_j`` and the before/after-turn parts of the links."""
        j, i = self.edge_index
        degree = out_degree(self.edge_index, self.num_nodes)  # [N]
        self.edge_weight = degree.to(self.dtype).reciprocal()[j]  # [E] the article's 1/amount
        ones = (1,) * (len(self.batch_shape) + 1)
        self._all_linked = bool((degree > 0).all())
        self._has_links = (degree > 0).to(self.dtype).reshape(-1, *ones)  # [N, *1, 1]
        self.delivery = TransmitterDelivery()
        if self.synchronous_delivery:
            early = torch.zeros_like(j, dtype=torch.bool)  # [E] nothing lands before a turn
        else:
            early = j < i  # [E] senders earlier in the order reach i before i steps
        self._parts: dict[str, dict[str, Tensor]] = {}
        for part, mask in (("early", early), ("late", ~early)):
            if not bool(mask.any()):
                continue
            edge_index, edge_weight = self.edge_index[:, mask], self.edge_weight[mask]
            ptr = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
            torch.cumsum(out_degree(edge_index, self.num_nodes), 0, out=ptr[1:])
            self._parts[part] = {
                "adj_t": delivery_adjacency(edge_index, edge_weight, self.num_nodes),
                "edge_index": edge_index,  # [2, E_part] sorted by sender (link order)
                "edge_weight": edge_weight,  # [E_part]
                "ptr": ptr,  # [N + 1] each sender's slice of the part's links
            }
        self._delivered: dict[str, tuple[Tensor, float]] | None = None  # last sweep's delivery
        self._synapse_seen: tuple[Tensor, int] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_reference(
        cls,
        network: object,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        synchronous_delivery: bool = False,
        copy_synapse: bool = False,
    ) -> NeuronNetwork:
        """Read a loop :class:`~cortexgnn.neurons.loop.Network` (neurons in insertion order).

        Raises:
            ValueError: a neuron links to a neuron that is not in ``network.neurons``.
        """
        neurons = list(network.neurons)
        if not neurons:
            raise ValueError("the network has no neurons; add some with Network.add first")
        index = {id(n): k for k, n in enumerate(neurons)}
        links = []
        for j, n in enumerate(neurons):
            for target in network.neurons[n]:
                if id(target) not in index:
                    raise ValueError(
                        f"neuron {n.name!r} links to {target.name!r}, which is not in the "
                        "network: add it with Network.add before linking"
                    )
                links.append((j, index[id(target)]))
        edge_index = torch.tensor(links, dtype=torch.long).reshape(-1, 2).t()

        def column(attr: str) -> list:
            return [getattr(n, attr) for n in neurons]

        return cls(
            edge_index,
            len(neurons),
            threshold=column("treshold"),
            returnability=column("returnablity"),
            speed=column("speed"),
            recovery=column("recovery"),
            reproductivity=column("reproductivity"),
            sta=column("sta"),
            str=column("str"),
            dendrite=column("dendrite"),
            synapse=column("synapse"),
            accumulated=column("accumulated"),
            current_state=column("current_state"),
            last_state=column("last_state"),
            names=[f"{n.name}" for n in neurons],
            dtype=dtype,
            device=device,
            synchronous_delivery=synchronous_delivery,
            copy_synapse=copy_synapse,
        )

    @classmethod
    def from_networkx(cls, graph: object, **kwargs: object) -> NeuronNetwork:
        """Build from a networkx graph: nodes in graph order, edges as links.

        Node attributes named like the constructor's parameters and initial state
        (``threshold`` ... ``last_state``; the article's ``treshold`` and ``returnablity``
        too) set that neuron's value; a node without one takes the default. An undirected
        graph links both ways. Keyword arguments go to the constructor (``batch_shape``,
        flags, ``dtype``, ``device``) and may not repeat a node attribute.
        """
        edge_index, columns = _networkx_columns(graph)
        clash = sorted(set(columns) & set(kwargs))
        if clash:
            raise ValueError(f"{clash} given both as node attributes and as arguments")
        return cls(edge_index, len(columns["names"]), **columns, **kwargs)

    def to_reference(self, copy: int | tuple[int, ...] = ()) -> object:
        """The loop :class:`~cortexgnn.neurons.loop.Network` of one copy (same state)."""
        from cortexgnn.neurons.loop import Network, Neuron

        index = (copy,) if isinstance(copy, int) else tuple(copy)
        network = Network()
        neurons = []
        for k in range(self.num_nodes):
            state = self.neuron_state(k, copy)
            n = Neuron(
                self.names[k],
                treshold=float(self.threshold[(k, *index)]),
                returnablity=float(self.returnability[(k, *index)]),
                speed=int(self.speed[(k, *index)]),
                recovery=int(self.recovery[(k, *index)]),
                sta=state["sta"],
                str=state["str"],
                reproductivity=tuple(self.reproductivity[(k, *index)].tolist()),
            )
            for attr in ("dendrite", "synapse", "accumulated", "current_state", "last_state"):
                setattr(n, attr, state[attr])
            network.add(n)
            neurons.append(n)
        for j, i in self.edge_index.t().tolist():
            network.link(neurons[j], neurons[i])
        return network

    # ------------------------------------------------------------------ simulation

    def step(self, stimulus: Tensor | None = None, stimulus_nodes: Tensor | None = None) -> Sweep:
        """Advance every neuron of every copy by one sweep of the article's loop.

        The state tensors are updated in place (``last_state`` is ``current_state`` after
        a sweep, like the article's lists).

        Args:
            stimulus: transmitters added to dendrites before any neuron steps (the
                article's controller): ``[N, *, 2]``, or ``[S, *, 2]`` with
                ``stimulus_nodes``; ``[2]`` and ``[S, 2]`` broadcast.
            stimulus_nodes: ``[S]`` indices of the stimulated neurons (default all).

        Returns:
            The sweep's actions, releases and sent pairs (:class:`Sweep`).
        """
        # State tensors are updated in place: a fresh [N, *, 2] tensor per operation would
        # cost page faults worth more than the arithmetic (see docs/neurons.md, speed).
        seen = self._synapse_seen  # is the cached delivery still that of this synapse?
        cached = (
            self._delivered is not None
            and seen is not None
            and seen[0] is self.synapse
            and seen[1] == self.synapse._version
        )
        accumulated = self.accumulated.add_(self.reproductivity)  # [N, *, 2] a_i += r_i first
        # a counter tensor that is all zero (the common case) needs no comparison
        none = torch.zeros(self.str.shape, dtype=torch.bool, device=self.device)  # [N, *]
        counting_down = int(self.str.max()) > 0 if self.str.numel() else False
        busy = int(self.sta.max()) > 0 if self.sta.numel() else False
        recover = self.str > 0 if counting_down else none  # [N, *]
        release = ~recover & (self.sta == 1) if busy else none  # [N, *]
        transmit = ~recover & ~release & (self.sta > 0) if busy else none  # [N, *]
        waiting = ~(recover | release | transmit)  # [N, *]
        summed = self.last_state[..., 0] + self.last_state[..., 1]  # [N, *] l_0 + l_1
        activate = waiting & (summed > self.threshold)  # [N, *]
        accumulate = waiting & ~activate  # [N, *]
        actions = torch.zeros(recover.shape, dtype=torch.int8, device=self.device)  # [N, *]
        happened = {}
        for action, mask in (
            (Action.RECOVER, recover),
            (Action.RELEASE, release),
            (Action.TRANSMIT, transmit),
            (Action.ACTIVATE, activate),
        ):
            happened[action] = _any(mask)
            if happened[action]:
                # the masks are disjoint, so adding code * mask writes each code once
                # (accumulate stays 0); a byte multiply-add is cheaper than masked_fill_
                actions.add_(_bytes(mask), alpha=int(action))

        # counters never go below 0, so a releasing neuron has str 0 and sta 1, and an
        # activating one sta 0: each branch's assignment is an exact integer increment
        # (a bool mask viewed as 0/1 bytes joins the arithmetic without a converted copy)
        if happened[Action.RECOVER]:
            self.str.sub_(_bytes(recover))  # str -= 1
        if happened[Action.RELEASE]:
            self.str.add_(_bytes(release) * self.recovery)  # str = recovery
        if happened[Action.RELEASE] or happened[Action.TRANSMIT]:
            self.sta.sub_(_bytes(release | transmit))  # sta = 0 / sta -= 1
        if happened[Action.ACTIVATE]:
            self.sta.add_(_bytes(activate) * self.speed)  # sta = speed

        synapse = self.synapse  # [N, *, 2]
        if happened[Action.RELEASE]:
            releases = accumulated * _bytes(release).unsqueeze(-1)  # [N, *, 2] a or 0
            synapse.add_(releases)  # adding zero elsewhere is exact
            kept = torch.where(release, self.returnability, 1.0)  # [N, *] rho or 1 (exact)
            accumulated.mul_(kept.unsqueeze(-1))
        else:
            releases = accumulated.new_zeros(()).expand_as(accumulated)  # [N, *, 2] no memory

        # the loop scales the synapse, then hands the same (scaled) list to the receivers
        if self.copy_synapse:
            handed = synapse.clone()  # [N, *, 2] the fix: tm as a copy before scaling
            synapse.mul_(SYNAPSE_DECAY)
        else:
            handed = synapse.mul_(SYNAPSE_DECAY)  # [N, *, 2] the live synapse, as in the loop
        early, late = self._deliver(
            handed, releases if happened[Action.RELEASE] else None, release, cached
        )
        self._synapse_seen = (synapse, synapse._version)
        sent = handed if self._all_linked else handed * self._has_links  # [N, *, 2]

        dendrite = self.dendrite  # [N, *, 2]
        if stimulus is not None:
            self._add_stimulus(dendrite, stimulus, stimulus_nodes)
        if early is not None:
            dendrite.add_(early[0], alpha=early[1])  # what reached i before its turn
        current = self.current_state  # [N, *, 2]
        if _all(accumulate):  # the common case, without masks
            current.add_(dendrite)
            if late is not None:
                torch.mul(late[0], late[1], out=dendrite)  # what reached i after its turn
            else:
                dendrite.zero_()
        else:
            if _any(accumulate):
                # masks as 0/1 factors: c + 1 * d and c + 0 * d are exact, and a broadcast
                # multiply is several times faster than masked_fill_/where on CPU
                taken = accumulate.to(self.dtype).unsqueeze(-1)  # [N, *, 1]
                current.addcmul_(dendrite, taken)  # c += d where accumulating
                dendrite.mul_(1.0 - taken)  # d = 0 there
            if late is not None:
                dendrite.add_(late[0], alpha=late[1])  # what reached i after its turn
        if happened[Action.ACTIVATE]:
            current.mul_(_bytes(~activate).unsqueeze(-1))  # c = 0 where activating
        self.last_state = current  # the same tensor from now on, as in the article
        return Sweep(actions, releases, sent)

    def _deliver(
        self, handed: Tensor, releases: Tensor | None, release: Tensor, cached: bool
    ) -> tuple[tuple[Tensor, float] | None, tuple[Tensor, float] | None]:
        """What the early and late links deliver this sweep, each ``(tensor, scale)`` or ``None``.

        The delivery is ``tensor * scale`` (``tensor [N, *, 2]``, ``scale`` a float).

        Delivery is linear and the synapse only decays between releases: with ``S_t`` the
        synapse before scaling, ``S_t = 0.1 S_{t-1} + R_t``, so the delivery ``A h_t``
        satisfies ``A h_t = 0.1 A h_{t-1} + c A R_t`` (``c`` 0.1, or 1 with
        ``copy_synapse``). A sweep with few releases therefore costs one scaling plus a
        message-passing step over the releasing senders' links only; the full product
        runs when nothing is cached (first sweep, synapse changed from outside) or when
        many neurons release.
        """
        links_of_releasing: dict[str, Tensor] = {}
        if cached and releases is not None:
            senders = release.reshape(self.num_nodes, -1).any(1).nonzero().flatten()  # [S]
            for part, links in self._parts.items():
                ptr = links["ptr"]
                counts = ptr[senders + 1] - ptr[senders]  # [S]
                total = int(counts.sum())
                if total > RELEASE_PATH_SHARE * links["edge_weight"].numel():
                    cached = False  # many releases: the full product is cheaper
                    break
                start = ptr[senders] - (torch.cumsum(counts, 0) - counts)  # [S]
                links_of_releasing[part] = torch.repeat_interleave(start, counts) + torch.arange(
                    total, device=self.device
                )  # [E_S] positions of the releasing senders' links in this part
        delivered: dict[str, tuple[Tensor, float]] = {}
        for part, links in self._parts.items():
            if not cached:
                x = handed.reshape(self.num_nodes, -1)  # [N, F] F = prod(*) * 2
                value = self.delivery(x, links["adj_t"]).reshape(handed.shape)  # [N, *, 2]
                delivered[part] = (value, 1.0)
                continue
            # the cache is (tensor, scale): the delivery is tensor * scale, and a sweep
            # without releases only multiplies the scale by 0.1 (no pass over the tensor)
            value, scale = self._delivered[part]
            scale *= SYNAPSE_DECAY
            edges = links_of_releasing.get(part)
            if edges is not None and edges.numel() > 0:
                factor = 1.0 if self.copy_synapse else SYNAPSE_DECAY
                value.mul_(scale)  # [N, *, 2] private cache, updated in place
                deliver_into(
                    value.view(self.num_nodes, -1),
                    releases.reshape(self.num_nodes, -1),
                    links["edge_index"].index_select(1, edges),
                    links["edge_weight"].index_select(0, edges),
                    factor,
                )  # only the releasing senders' links
                scale = 1.0
            delivered[part] = (value, scale)
        self._delivered = delivered
        return delivered.get("early"), delivered.get("late")

    def _add_stimulus(
        self, dendrite: Tensor, stimulus: Tensor, stimulus_nodes: Tensor | None
    ) -> Tensor:
        if stimulus_nodes is None:
            values = per_neuron(
                stimulus, "stimulus", self.num_nodes, self.batch_shape,
                pair=True, dtype=self.dtype, device=self.device,
            )  # fmt: skip
            return dendrite.add_(values)
        nodes = torch.as_tensor(stimulus_nodes, device=self.device).long().reshape(-1)
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= self.num_nodes):
            raise ValueError(f"stimulus_nodes must lie in [0, {self.num_nodes})")
        values = per_neuron(
            stimulus, "stimulus", nodes.numel(), self.batch_shape,
            pair=True, dtype=self.dtype, device=self.device,
        )  # fmt: skip
        return dendrite.index_add_(0, nodes, values)

    def run(
        self,
        steps: int,
        *,
        stimulus: Stimulus = None,
        stimulus_nodes: Tensor | None = None,
        record: Sequence[str] = ("actions",),
        nodes: Tensor | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Tensor]:
        """Run ``steps`` sweeps and return what ``record`` asks for, stacked over time.

        Args:
            steps: number of sweeps.
            stimulus: per-sweep input to the dendrites: ``[T, S, *, 2]`` (sweep ``t`` uses
                row ``t``), one ``[S, *, 2]`` for every sweep, or a callable ``t -> [S, *, 2]``
                (or ``None`` for no input that sweep); ``S`` is ``N`` or
                ``len(stimulus_nodes)``.
            stimulus_nodes: ``[S]`` neurons the stimulus goes to (default all).
            record: any of ``"actions"``, ``"releases"``, ``"sent"`` (see :class:`Sweep`)
                and the state names (``"sta"`` ... ``"last_state"``, after each sweep).
            nodes: ``[M]`` neurons to record (default all), e.g. the motor neurons.
            progress: called with the number of finished sweeps after each sweep.

        Returns:
            name -> ``[T, M, *]`` (``[T, M, *, 2]`` for pairs).
        """
        unknown = sorted(set(record) - {"actions", "releases", "sent", *STATE})
        if unknown:
            raise ValueError(
                f"cannot record {unknown}: choose from actions, releases, sent, {', '.join(STATE)}"
            )
        if nodes is not None:
            nodes = torch.as_tensor(nodes, device=self.device).long().reshape(-1)
        rows: dict[str, list[Tensor]] = {name: [] for name in record}
        for t in range(steps):
            if callable(stimulus):
                stim = stimulus(t)
            elif isinstance(stimulus, Tensor) and stimulus.dim() == len(self.batch_shape) + 3:
                stim = stimulus[t]
            else:
                stim = stimulus
            sweep = self.step(stim, stimulus_nodes)
            for name in record:
                value = getattr(sweep, name) if name in Sweep._fields else getattr(self, name)
                if nodes is not None:
                    value = value[nodes]  # a copy
                elif name in STATE or name == "sent":
                    value = value.clone()  # the live state changes in place next sweep
                rows[name].append(value)
            if progress is not None:
                progress(t + 1)
        return {
            name: torch.stack(values) if values else torch.empty(0) for name, values in rows.items()
        }

    # ------------------------------------------------------------------ inspection

    def neuron_state(self, i: int, copy: int | tuple[int, ...] = ()) -> dict[str, object]:
        """Neuron ``i``'s state (of one copy) with the article's attribute names.

        Returns:
            ``{"sta": int, "str": int, "dendrite": [a, b], "synapse": ..., "accumulated":
            ..., "current_state": ..., "last_state": ...}``.
        """
        index = (i, *((copy,) if isinstance(copy, int) else tuple(copy)))
        if len(index) != 1 + len(self.batch_shape):
            raise ValueError(f"copy must index batch_shape {self.batch_shape}, got {copy!r}")
        state: dict[str, object] = {"sta": int(self.sta[index]), "str": int(self.str[index])}
        for name in STATE[2:]:
            state[name] = getattr(self, name)[index].tolist()
        return state

    def to(self, device: torch.device | str) -> NeuronNetwork:
        """Move every tensor to ``device`` (in place; returns ``self``)."""
        self.device = torch.device(device)
        self.edge_index = self.edge_index.to(self.device)
        aliased = self.last_state is self.current_state
        for name in PARAMETERS + STATE:
            setattr(self, name, getattr(self, name).to(self.device))
        if aliased:
            self.last_state = self.current_state
        self._build_delivery()
        return self

    def __repr__(self) -> str:
        flags = [
            f"{flag}=True"
            for flag in ("synchronous_delivery", "copy_synapse")
            if getattr(self, flag)
        ]
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, "
            f"num_edges={self.edge_index.size(1)}, batch_shape={self.batch_shape}"
            + "".join(f", {f}" for f in flags)
            + ")"
        )


#: the article's misspellings, accepted as node attributes
_ALIASES = {"treshold": "threshold", "returnablity": "returnability"}  # the article's spellings


def _networkx_columns(graph: object) -> tuple[Tensor, dict[str, list]]:
    """Links and per-neuron columns of a networkx graph, in its node and edge order.

    Returns:
        ``edge_index [2, E]`` (both ways for an undirected graph) and the constructor's
        keyword arguments: ``names`` and one list per node attribute that any node sets
        (defaults fill the nodes that do not).
    """
    nodes = list(graph.nodes)
    index = {node: k for k, node in enumerate(nodes)}
    links = []
    for u, v in graph.edges():
        links.append((index[u], index[v]))
        if not graph.is_directed() and u != v:
            links.append((index[v], index[u]))
    edge_index = torch.tensor(links, dtype=torch.long).reshape(-1, 2).t()
    known = set(PARAMETERS + STATE) | set(_ALIASES)
    columns: dict[str, list] = {"names": [f"{node}" for node in nodes]}
    spellings: dict[str, list[str]] = {}  # canonical name -> the keys that set it
    for key in known:
        spellings.setdefault(_ALIASES.get(key, key), []).append(key)
    nodes_data = [data for _, data in graph.nodes(data=True)]
    for name, keys in sorted(spellings.items()):
        if not any(key in data for data in nodes_data for key in keys):
            continue
        fallback = DEFAULTS.get(name, DEFAULTS["current_state"])
        column = []
        for node, data in zip(nodes, nodes_data, strict=True):
            given = [key for key in keys if key in data]
            if len(given) > 1:
                raise ValueError(f"node {node!r} sets {name!r} twice (as {given})")
            column.append(data[given[0]] if given else fallback)
        columns[name] = column
    return edge_index, columns
