"""A restricted unpickler for the pickled arrays in the authors' LMDBs (NoLDO-S12, CromSS).

The CromSS/NoLDO-S12 LMDBs hold, per key, ``pickle.dumps((array.tobytes(), array.shape,
id))``. Loading a pickle with :func:`pickle.loads` can run arbitrary code (any importable
callable can be named by the stream), so rsfuse never does. :func:`safe_loads` reads the
stream with an :class:`pickle.Unpickler` whose :meth:`~RestrictedUnpickler.find_class`
refuses every global, with three exceptions that are replaced by the project's own small
functions (never the named callable):

* ``_codecs.encode(str, "latin1")`` — how protocol 0–2 pickles spell ``bytes``;
* ``numpy.dtype`` and ``numpy.core.multiarray.scalar`` (also ``numpy._core``) — how a
  *numpy integer* id (e.g. ``numpy.int64``, which the authors' label writer stores) is
  pickled; rebuilt here as a plain Python ``int`` from its raw bytes. Any non-integer
  dtype is refused.

The result must be built only from ``bytes``, ``tuple``, ``int`` and ``str`` (``bool`` and
``None`` aside); anything else (a list, dict, float, …) is refused too. Every refusal is a
:class:`~rsfuse.errors.DataError` naming the file and key.

**Bounded work.** A pickle can name one object many times (its memo), so a few kilobytes
can describe a tuple whose *expanded* tree is astronomically large (fan-out 200, depth 8:
200⁸ leaves); any naive walk of it (a type check, ``==``, ``repr``, JSON) would run for
centuries. Before unpickling, the stream's size (:data:`MAX_BYTES`) and its number of
opcodes (:data:`MAX_OPCODES`) are limited; after it, one memoised walk (each distinct
object visited once) checks the types, the depth (:data:`MAX_DEPTH`) and the size of the
expanded tree (:data:`MAX_NODES`), so whatever is returned is small under any later walk.
A legitimate value ``(bytes, shape, id)`` has about ten nodes and a dozen opcodes.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

from rsfuse.errors import DataError

#: Types a safely loaded value may be built from.
ALLOWED_TYPES: tuple[type, ...] = (bytes, tuple, int, str)
#: numpy integer dtype codes accepted for pickled numpy scalars.
_INT_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}
#: Largest pickle stream accepted, in bytes (the largest published array, NoLDO-S12's S2
#: [4, 13, 264, 264] uint8, is 3.6 MB; SSL4EO-S12@DW S2 [13, 512, 512] uint16 6.8 MB).
MAX_BYTES = 1 << 30
#: Most pickle opcodes accepted (a ``(bytes, shape, id)`` value has about a dozen).
MAX_OPCODES = 10_000
#: Most nodes of the expanded value (every reference to a shared object counted).
MAX_NODES = 10_000
#: Deepest nesting of tuples accepted.
MAX_DEPTH = 8


class _IntDType:
    """Stand-in for a pickled ``numpy.dtype`` of an integer type (no numpy involved)."""

    def __init__(self, code: str, align: Any = False, copy: Any = False) -> None:
        if not isinstance(code, str) or code not in _INT_DTYPES:
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not an integer dtype")
        self.code = code
        self.byteorder = "<"

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, align, …)
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("unexpected numpy dtype state")
        self.byteorder = state[1]


def _int_scalar(dtype: Any, data: Any = None) -> int:
    """A pickled numpy integer scalar as a Python ``int`` (replaces numpy's ``scalar``)."""
    if not isinstance(dtype, _IntDType) or not isinstance(data, bytes | str):
        raise pickle.UnpicklingError("only numpy integer scalars can be rebuilt")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if len(raw) != int(dtype.code[1]):
        raise pickle.UnpicklingError("numpy scalar byte length does not match its dtype")
    order = "big" if dtype.byteorder == ">" else "little"
    return int.from_bytes(raw, order, signed=dtype.code[0] == "i")


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``bytes`` as pickled by protocols 0–2 (replaces ``_codecs.encode``)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as pickled by protocols 0–2 for an empty bytes object."""
    if args:
        raise pickle.UnpicklingError("builtins.bytes is only allowed without arguments")
    return b""


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("numpy", "dtype"): _IntDType,
    ("numpy.core.multiarray", "scalar"): _int_scalar,
    ("numpy._core.multiarray", "scalar"): _int_scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild bytes, tuples, ints and strings (see module doc)."""

    def find_class(self, module: str, name: str) -> Any:
        safe = _SAFE_GLOBALS.get((module, name))
        if safe is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only bytes, tuples, ints and "
                "strings may be unpickled)"
            )
        return safe

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id")


#: Width of the length prefix of variable-length opcode arguments (pickletools codes).
_LENGTH_WIDTH = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}
_OPS = {ord(op.code): op for op in pickletools.opcodes}


def _scan(data: bytes) -> None:
    """Count the stream's opcodes without decoding their arguments (a 3.6 MB ``bytes``
    argument is skipped, not copied) and refuse more than :data:`MAX_OPCODES`, an unknown
    opcode or a stream without ``STOP``."""
    pos, n, end = 0, 0, len(data)
    while pos < end:
        op = _OPS.get(data[pos])
        if op is None:
            raise pickle.UnpicklingError(f"invalid pickle opcode {data[pos]:#04x} at byte {pos}")
        n += 1
        if n > MAX_OPCODES:
            raise pickle.UnpicklingError(f"more than {MAX_OPCODES} pickle opcodes")
        pos += 1
        if op.name == "STOP":
            return
        arg = op.arg
        if arg is None:
            continue
        if arg.n >= 0:
            pos += arg.n
        elif arg.n == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if arg is pickletools.stringnl_noescape_pair else 1):
                nl = data.find(b"\n", pos)
                if nl < 0:
                    raise pickle.UnpicklingError("pickle data was truncated")
                pos = nl + 1
        else:
            width = _LENGTH_WIDTH[arg.n]
            signed = arg.n == pickletools.TAKEN_FROM_ARGUMENT4
            length = int.from_bytes(data[pos : pos + width], "little", signed=signed)
            if length < 0:
                raise pickle.UnpicklingError(f"negative argument length at byte {pos}")
            pos += width + length
    raise pickle.UnpicklingError("pickle data was truncated (no STOP opcode)")


def _check(value: Any) -> None:
    """Check types, depth and expanded size of ``value`` in one memoised walk.

    ``seen[id(t)]`` holds the expanded node count and height of tuple ``t``, computed once
    however often ``t`` is referenced; the walk is iterative (no recursion limit).
    """
    seen: dict[int, tuple[int, int]] = {}
    keep: list[tuple] = []  # every visited tuple stays alive, so ids stay unique
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        v, expanded = stack.pop()
        if not isinstance(v, tuple):
            if v is None or isinstance(v, bool):
                continue
            if not isinstance(v, ALLOWED_TYPES) or isinstance(v, _IntDType):
                raise pickle.UnpicklingError(
                    f"unpickled a {type(v).__name__}, not bytes/tuple/int/str"
                )
            continue
        if id(v) in seen:
            continue
        if not expanded:
            keep.append(v)
            stack.append((v, True))
            stack.extend((c, False) for c in v)
            continue
        size, height = 1, 1
        for c in v:
            cs, ch = seen[id(c)] if isinstance(c, tuple) else (1, 0)
            size += cs
            height = max(height, ch + 1)
        if size > MAX_NODES:
            raise pickle.UnpicklingError(
                f"value expands to more than {MAX_NODES} nodes (shared references)"
            )
        if height > MAX_DEPTH:
            raise pickle.UnpicklingError(f"value is nested deeper than {MAX_DEPTH}")
        seen[id(v)] = (size, height)


def safe_loads(data: bytes, path: str | Path | None = None, key: str | bytes | None = None) -> Any:
    """Unpickle ``data`` allowing only bytes, tuples, ints and strings.

    Args:
        data: the pickle stream.
        path: file the stream came from (for the error).
        key: LMDB key of the stream (for the error).

    Returns:
        The unpickled value (a tuple such as ``(bytes, shape, id)``).

    Raises:
        DataError: the stream names any other global, builds another type, is corrupt, or
            exceeds a limit (:data:`MAX_BYTES`, :data:`MAX_OPCODES`, :data:`MAX_DEPTH`,
            :data:`MAX_NODES`); the message names ``path`` and ``key``.
    """
    k = key.decode(errors="replace") if isinstance(key, bytes) else key
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DataError(f"key {k!r}: value is {type(data).__name__}, not bytes", path=path)
    if len(data) > MAX_BYTES:
        raise DataError(
            f"key {k!r}: value of {len(data)} bytes exceeds the {MAX_BYTES}-byte limit",
            path=path,
        )
    try:
        raw = bytes(data)
        _scan(raw)
        value = RestrictedUnpickler(io.BytesIO(raw)).load()
        _check(value)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise DataError(f"key {k!r}: unsafe or corrupt pickle: {e}", path=path) from e
    except Exception as e:
        raise DataError(f"key {k!r}: cannot unpickle: {type(e).__name__}: {e}", path=path) from e
    return value


__all__ = [
    "ALLOWED_TYPES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_OPCODES",
    "RestrictedUnpickler",
    "safe_loads",
]
