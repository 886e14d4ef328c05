"""Which attention calls of ``ColumnAttentionConv`` took the fused kernel."""

from __future__ import annotations

from collections.abc import Callable


def count_fused_calls(patch: Callable) -> list[tuple[int, int]]:
    """Wrap the layer's fused attention so that every call is recorded, then still runs.

    Args:
        patch: ``setattr``, or ``monkeypatch.setattr`` to undo it after the test.

    Returns:
        The record, filled as calls happen: ``(N_dst, N_src)`` (targets, sources) per call.
    """
    import cortexgnn.nn.conv as conv_module

    fused, calls = conv_module.folded_attention, []

    def counted(query, x, *args, **kwargs):
        calls.append((query.size(0), x.size(0)))
        return fused(query, x, *args, **kwargs)

    patch(conv_module, "folded_attention", counted)
    return calls
