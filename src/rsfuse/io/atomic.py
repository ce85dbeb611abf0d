"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` through ``.<name>.tmp-<pid>`` and :func:`os.replace`.

    Args:
        path: destination; its folder is created if needed.
        data: text (UTF-8) or bytes.
        fsync: flush the file to disk before the rename (stores' completion markers).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    raw = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
