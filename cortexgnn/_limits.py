"""Bounds on sizes read from files and flags, checked before anything is built from them.

A checkpoint, a neuron file or an edge list of a few bytes can name a size (columns,
features, neurons, copies) that would take all memory or hours to build. Readers compare
the number of elements a size implies with a limit before allocating or looping over it;
the limit is an argument (and a command-line flag), so a user who means it can raise it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_ELEMENTS", "DEFAULT_MAX_MESSAGE_ITERS", "SizeLimitError", "check_elements"]

#: 2^28 elements: 1 GiB of float32, ten times the article's model.
DEFAULT_MAX_ELEMENTS = 2**28
#: Message-passing iterations a loaded model may run per forward (the article runs 4).
DEFAULT_MAX_MESSAGE_ITERS = 10_000


class SizeLimitError(ValueError):
    """A size read from a file or a flag would need more memory than the limit allows."""


def check_elements(what: str, elements: int, limit: int, *, bytes_each: int, fix: str) -> None:
    """Raise :class:`SizeLimitError` when ``elements`` exceeds ``limit``.

    Args:
        what: the thing and where its size came from (``"ckpt.pt: a model of 10^9 columns"``).
        elements: number of elements it would allocate (an estimate from above).
        limit: the most elements allowed.
        bytes_each: bytes per element, for the message.
        fix: how to raise the limit deliberately (the argument or flag).
    """
    if elements > limit:
        raise SizeLimitError(
            f"{what} would need about {elements:,} elements ({_human(elements * bytes_each)}), "
            f"above the limit of {limit:,} ({_human(limit * bytes_each)}): check the file, or "
            f"{fix} if you mean it"
        )


def _human(num_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if num_bytes < 1024 or unit == "PiB":
            return f"{num_bytes:,.0f} {unit}" if unit == "B" else f"{num_bytes:,.1f} {unit}"
        num_bytes /= 1024
    return ""
