r"""The CSR attention kernel (C++/OpenMP, ``csrc/csr_attention.cpp``), compiled on first use.

The kernel computes, for every destination node ``i`` (rows of a CSR sorted by target),
batch entry ``b`` and head ``h``

.. math::
    s_e = \tau\, \tilde q_{i} \cdot x_{j},\quad
    \alpha_e = \frac{e^{s_e}}{\sum_{e' \in \mathrm{in}(i)} e^{s_{e'}}},\quad
    o_i = \sum_{e \in \mathrm{in}(i)} w_e\, m_e\, \alpha_e\, x_j

node by node: the scores of its in-edges, their softmax, then the weighted sum of the
sources, whose rows are still in cache, accumulated in one scratch row (no ``[E, B, F]``
temporary). Wide heads go head by head (the row stays in registers); many narrow heads
(``project_first`` with 8 channels, say) go edge by edge, all heads of a source at once.
The value row :math:`x_j` is shared by the heads (``x [N, B, 1, F]``) or one per head
(``x [N, B, H, F]``, keys equal to values, as with ``project_first``); :math:`w_e` are
optional edge weights and :math:`m_e` an optional attention-dropout multiplier per
coefficient (``[E, B, H]``). It keeps :math:`\alpha` (``[E, B, H]``: ``k H / F`` of the
node tensor, 1/16 at the article's sizes) for the backward, which is two passes: one over
destinations (gradients of queries and edge weights, per-edge :math:`w m \alpha` and
:math:`\partial L / \partial s` kept as ``[E, B, H]`` scratch) and one over sources
through the transposed CSR (gradient of ``x``, a gather: no atomics). Inputs must be
contiguous float32 on the CPU. ``CORTEXGNN_NO_KERNEL=1`` in the environment switches
the kernel off (the PyTorch paths run instead).

Only :mod:`cortexgnn.fused_attention` imports this module.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import warnings
from pathlib import Path

__all__ = ["load_kernel"]

_SOURCE = Path(__file__).resolve().parent / "csrc" / "csr_attention.cpp"


@functools.lru_cache(maxsize=1)
def load_kernel():
    """Compile (first call, about a minute) or load the cached extension module.

    Returns:
        The extension module with ``forward`` and ``backward``, or ``None`` when it cannot
        be built here (no compiler or ninja) or the environment sets
        ``CORTEXGNN_NO_KERNEL=1``; callers then use the PyTorch paths.
    """
    if os.environ.get("CORTEXGNN_NO_KERNEL") == "1":  # read once: the result is cached
        return None
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)  # its import warns that CUDA is absent: irrelevant here
    try:
        with warnings.catch_warnings():  # torch's loader warns about torch.jit deprecation
            warnings.simplefilter("ignore", FutureWarning)
            from torch.utils.cpp_extension import load

            build_dir = os.path.join(tempfile.gettempdir(), "cortexgnn_kernels")
            os.makedirs(build_dir, exist_ok=True)
            return load(
                name="cortexgnn_csr_attention_v10",
                sources=[str(_SOURCE)],
                extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast"],
                extra_ldflags=["-fopenmp"],
                build_directory=build_dir,
                verbose=False,
            )
    except Exception:  # noqa: BLE001 - any build failure means "use the fallback"
        return None
    finally:
        cpp_logger.setLevel(level)
