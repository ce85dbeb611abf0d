"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted run never leaves a half-written file under the final name. Temporary files
sit beside their target as ``.<name>.<tag>-<pid>[<suffix>]`` (never in ``$TMPDIR``, where
nothing would ever clean them); one left behind by a killed process (its pid no longer
runs) is removed by the next write of the same target (:func:`clean_stale_temps`). Files
are created with the user's umask (``0666 & ~umask``), also by writers that would create
them ``0600`` (safetensors, :func:`tempfile.mkstemp`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

#: Tags of the temporary files rsfuse writes beside a target.
TEMP_TAGS: tuple[str, ...] = ("tmp", "rows", "cog")


def temp_path(path: str | Path, tag: str = "tmp", suffix: str = "") -> Path:
    """The temporary name of ``path`` for this process: ``.<name>.<tag>-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}{suffix}")


def current_umask() -> int:
    """This process's umask (read from ``/proc`` where possible: no race with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def apply_umask(path: str | Path) -> None:
    """Give ``path`` the mode a plain ``open(path, "w")`` would: ``0666 & ~umask`` (left as
    it is on a file system that does not support modes)."""
    with suppress(NotImplementedError, PermissionError):
        os.chmod(path, 0o666 & ~current_umask())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or not a pid at all: leave the file alone)
    return True


def clean_stale_temps(path: str | Path, tags: tuple[str, ...] = TEMP_TAGS) -> list[Path]:
    """Delete the temporary files of ``path`` left by processes that no longer run.

    Matches ``.<name>.<tag>-<pid>`` with any suffix in the target's folder; a file whose
    pid is alive (this process, another run writing the same target) is kept.

    Returns:
        The files removed.
    """
    path = Path(path)
    return _clean(path.parent, re.escape(path.name), tags)


def clean_stale_folder(folder: str | Path, tags: tuple[str, ...] = TEMP_TAGS) -> list[Path]:
    """Delete every temporary file in ``folder`` (any target) whose process no longer runs.

    Returns:
        The files removed.
    """
    return _clean(Path(folder), r".+?", tags)


def _clean(folder: Path, name: str, tags: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^\.{name}\.(?:{'|'.join(map(re.escape, tags))})-(\d+)(?:\..*)?$")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        m = pattern.match(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                (folder / name).unlink()
                removed.append(folder / name)
            except OSError:
                pass
    return removed


@contextmanager
def atomic_output(
    path: str | Path, fsync: bool = False, suffix: str = "", clean: bool = True
) -> Iterator[Path]:
    """Write a file under a temporary name beside ``path``, then rename it into place.

    Yields the temporary path; when the block ends without an exception the file gets the
    user's umask, is flushed to disk (``fsync``) and renamed to ``path``. On an exception
    the temporary file is deleted and ``path`` is left as it was. Stale temporary files of
    ``path`` (killed runs) are removed first.

    Args:
        path: destination; its folder is created if needed.
        fsync: flush the file to disk before the rename (completion markers).
        suffix: ending of the temporary name (e.g. ``.tif`` for writers that need one).
        clean: remove stale temporary files of ``path`` first (one folder listing; writers
            of many small files in one folder clean it once with
            :func:`clean_stale_folder` instead).

    Example::

        with atomic_output("model.safetensors") as tmp:
            save_file(weights, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        clean_stale_temps(path)
    tmp = temp_path(path, "tmp", suffix)
    try:
        yield tmp
        apply_umask(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(
    path: str | Path, data: str | bytes, fsync: bool = False, clean: bool = True
) -> Path:
    """Write ``data`` to ``path`` through ``.<name>.tmp-<pid>`` and :func:`os.replace`.

    Args:
        path: destination; its folder is created if needed.
        data: text (UTF-8) or bytes.
        fsync: flush the file to disk before the rename (stores' completion markers).
        clean: remove stale temporary files of ``path`` first (see :func:`atomic_output`).

    Returns:
        ``path``.
    """
    raw = data.encode() if isinstance(data, str) else data
    with atomic_output(path, fsync=fsync, clean=clean) as tmp, open(tmp, "wb") as f:
        f.write(raw)
    return Path(path)


__all__ = [
    "TEMP_TAGS",
    "apply_umask",
    "atomic_output",
    "clean_stale_folder",
    "clean_stale_temps",
    "current_umask",
    "temp_path",
    "write_atomic",
]
