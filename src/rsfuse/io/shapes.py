"""Array shapes read from files (LMDB values, zarr metadata), checked before any allocation.

A shape in a file is data like any other: dimensions may be negative, not integers, or so
large that their product overflows int64 (numpy then raises ``ValueError`` or
``OverflowError``, or silently wraps). :func:`checked_numel` turns each case into a
:class:`~rsfuse.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsfuse.errors import DataError

#: Largest element count accepted (2**48: 256 TiB of uint8, far above any patch or shard).
MAX_NUMEL = 1 << 48
#: Most dimensions accepted.
MAX_NDIM = 16


def checked_numel(
    shape: Sequence[Any], *, path: str | Path | None = None, what: str = "array"
) -> int:
    """Number of elements of ``shape``, computed without overflow.

    Args:
        shape: the dimensions as read from a file.
        path: the file, named in the error.
        what: what the shape belongs to (``key '12'``, ``array 's2'`` …).

    Returns:
        The product of the dimensions (1 for ``()``).

    Raises:
        DataError: a dimension that is not a non-negative int, more than
            :data:`MAX_NDIM` dimensions, or a product above :data:`MAX_NUMEL`.
    """
    if not isinstance(shape, tuple | list) or len(shape) > MAX_NDIM:
        raise DataError(f"{what}: shape {_short(shape)} is not a tuple of <= {MAX_NDIM} ints", path)
    n = 1
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise DataError(f"{what}: shape {_short(shape)} has a dimension {_dim(d)}", path=path)
        n *= d
        if n > MAX_NUMEL:
            raise DataError(
                f"{what}: shape {_short(shape)} has more than {MAX_NUMEL} elements (corrupt?)",
                path=path,
            )
    return n


def _short(x: Any) -> str:
    """A bounded rendering of a shape (no repr of huge ints or nested values)."""
    if not isinstance(x, tuple | list) or len(x) > MAX_NDIM:
        return f"<{type(x).__name__}>"
    return "(" + ", ".join(_dim(d) for d in x) + ")"


def _dim(d: Any) -> str:
    if isinstance(d, int) and not isinstance(d, bool):
        return str(d) if d.bit_length() <= 64 else f"<int of {d.bit_length()} bits>"
    return f"<{type(d).__name__}>"


__all__ = ["MAX_NDIM", "MAX_NUMEL", "checked_numel"]
