"""Output paths that never touch a command's own inputs.

Every command that writes (``rsfuse convert``, ``export``, ``predict``, ``synth``) checks its
outputs here before any work: an output equal to an input file, inside an input folder, or
holding an input (an output folder that would be replaced with the input in it) is
refused with a :class:`~rsfuse.errors.ConfigError` naming both paths. Paths are compared
after resolving symbolic links and ``..``; existing files are also compared by identity
(hard links).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rsfuse.errors import ConfigError


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_input(
    outputs: Iterable[str | Path],
    inputs: Iterable[str | Path | None],
    *,
    key: str = "out",
    replaces: bool = False,
) -> None:
    """Refuse outputs that would write onto or inside an input.

    Args:
        outputs: files or folders the command writes.
        inputs: files or folders it reads (None entries are ignored).
        key: the option named in the error (``out``, ``root`` …).
        replaces: the outputs are folders the command may delete and recreate
            (``--overwrite``): an output that *contains* an input is refused too.

    Raises:
        ConfigError: an output equals an input, lies inside an input folder, or (with
            ``replaces``) holds an input; the message names both paths.
    """
    ins = [(Path(p), _resolved(p)) for p in inputs if p is not None]
    for out in outputs:
        o = _resolved(out)
        for given, i in ins:
            if o == i or _same_file(o, i):
                raise ConfigError(
                    f"{out} is an input of this command ({given}); refusing to overwrite it: "
                    "choose another output",
                    key=key,
                )
            if _inside(o, i):
                raise ConfigError(
                    f"{out} lies inside the input {given}; refusing to write into an input: "
                    "choose an output outside it",
                    key=key,
                )
            if replaces and _inside(i, o):
                raise ConfigError(
                    f"{out} holds the input {given}; writing (or --overwrite) there could "
                    "delete it: choose an output outside it",
                    key=key,
                )


def check_output_folder(path: str | Path, *, key: str = "out") -> Path:
    """Check that ``path`` can be a folder this command creates or writes into.

    Raises:
        ConfigError: ``path`` or one of its parents exists and is not a folder.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{p} exists and is a file, not a folder", key=key)
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{parent} (a parent of {p}) is a file, not a folder", key=key)
            break
    return p


def check_output_file(path: str | Path, *, key: str = "out") -> Path:
    """Check that ``path`` can be a file this command writes.

    Raises:
        ConfigError: ``path`` is an existing folder, or one of its parents is a file.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p} is a folder, not a file", key=key)
    check_output_folder(p.parent, key=key)
    return p


__all__ = ["check_not_input", "check_output_file", "check_output_folder"]
