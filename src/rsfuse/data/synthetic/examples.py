"""The six real BigEarthNet v1 S1 + S2 patch pairs that ship with ``bigearthnet-common``.

The PyPI package ``bigearthnet-common`` (2.8.0; the ``test`` extra of rsfuse installs it)
carries two small archives inside its wheel, ``BigEarthNet-S1-Example.tar.bz2`` and
``BigEarthNet-S2-Example.tar.bz2``: six real patch pairs of BigEarthNet v1.0 (Austria,
Ireland x 2, Finland x 2, Portugal; June 2017 – February 2018, one of them snow-covered),
in the published file format (per-band GeoTIFFs, ``*_labels_metadata.json``). rsfuse uses
them to test its BigEarthNet v1 reader on real files and to calibrate the synthetic world
(:mod:`rsfuse.data.synthetic.realism`). They are extracted at test / benchmark time into a
temporary folder and never committed.

>>> from rsfuse.data.synthetic.examples import extract_examples
>>> root = extract_examples("/tmp/ben-examples")  # doctest: +SKIP
>>> BigEarthNetV1(root, split="train")  # doctest: +SKIP

:func:`extract_examples` lays the archives out as a BigEarthNet v1 root
(:mod:`rsfuse.data.bigearthnet_layout`): the archives' top folders
``BigEarthNet-S2-Example`` / ``BigEarthNet-S1-Example`` become ``BigEarthNet-v1.0`` /
``BigEarthNet-S1-v1.0`` (the names the full dataset's archives extract to), and a split file
``train.csv`` lists the six ``s2_name,s1_name`` pairs, read from each S1 patch's
``corresponding_s2_patch``. Every file inside the patch folders is kept byte for byte.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from importlib import metadata
from pathlib import Path

from rsfuse.data import bigearthnet_layout as layout
from rsfuse.errors import DataError
from rsfuse.io.atomic import write_atomic

#: Distribution that ships the archives, and the version rsfuse pins.
DISTRIBUTION = "bigearthnet-common"
VERSION = "2.8.0"
#: Archive name inside the wheel → (top folder in the archive, folder in a v1 root).
ARCHIVES: dict[str, tuple[str, str]] = {
    "BigEarthNet-S2-Example.tar.bz2": ("BigEarthNet-S2-Example", layout.V1_S2_DIR),
    "BigEarthNet-S1-Example.tar.bz2": ("BigEarthNet-S1-Example", layout.V1_S1_DIR),
}
#: Number of patch pairs in the archives.
NUM_EXAMPLES = 6
_INSTALL_HINT = f"pip install {DISTRIBUTION}=={VERSION} (or rsfuse's 'test' extra)"


def archive_paths() -> dict[str, Path]:
    """Where the two archives of the installed ``bigearthnet-common`` lie.

    Found through the distribution's file list (``importlib.metadata``), without importing
    the package.

    Returns:
        ``{archive name: path}`` for the names of :data:`ARCHIVES`.

    Raises:
        DataError: the distribution is not installed or lacks an archive.
    """
    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError as e:
        raise DataError(
            f"the real example patches come with the package {DISTRIBUTION!r}, which is not "
            f"installed; {_INSTALL_HINT}"
        ) from e
    found = {f.name: Path(str(f.locate())) for f in files if f.name in ARCHIVES}
    for name in ARCHIVES:
        if name not in found or not found[name].is_file():
            raise DataError(
                f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)} lacks {name}; {_INSTALL_HINT}",
                path=found.get(name),
            )
    return found


def _extract(archive: Path, top: str, dest: Path) -> None:
    """Extract the members of ``archive`` below ``top/`` into ``dest`` (without ``top``)."""
    try:
        with tarfile.open(archive, "r:bz2") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if not parts or parts[0] != top:
                    raise DataError(f"unexpected member {m.name!r} outside {top}/", path=archive)
                if len(parts) == 1:
                    continue
                m.name = str(Path(*parts[1:]))
                members.append(m)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"cannot extract archive: {e}", path=archive) from e


def pairs(root: str | Path) -> list[tuple[str, str]]:
    """``(s2_name, s1_name)`` of the S1 patches under ``root/BigEarthNet-S1-v1.0``, sorted.

    Raises:
        DataError: an S1 metadata file is missing, unreadable or names no S2 patch.
    """
    out = []
    for folder in sorted((Path(root) / layout.V1_S1_DIR).iterdir()):
        meta = layout.v1_s1_metadata(Path(root), folder.name)
        try:
            s2 = json.loads(meta.read_text())["corresponding_s2_patch"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"cannot read corresponding_s2_patch: {e}", path=meta) from e
        out.append((str(s2), folder.name))
    return sorted(out)


def extract_examples(dest: str | Path) -> Path:
    """Extract the six real patch pairs into ``dest`` as a BigEarthNet v1 root.

    ``dest`` must not exist or be empty. The layout is built in ``dest/.tmp-examples`` and
    moved into place at the end, so an interrupted call leaves no half-built root.

    Returns:
        ``dest``, holding ``BigEarthNet-v1.0/``, ``BigEarthNet-S1-v1.0/`` and ``train.csv``.

    Raises:
        DataError: ``bigearthnet-common`` missing, a broken archive, ``dest`` not empty, or
            not :data:`NUM_EXAMPLES` pairs.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError("destination folder is not empty", path=dest)
    archives = archive_paths()
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / ".tmp-examples"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, (top, folder) in ARCHIVES.items():
            _extract(archives[name], top, tmp / folder)
        found = pairs(tmp)
        if len(found) != NUM_EXAMPLES:
            raise DataError(
                f"expected {NUM_EXAMPLES} S1 patches, found {len(found)}",
                path=archives["BigEarthNet-S1-Example.tar.bz2"],
            )
        for s2, _ in found:
            if not (tmp / layout.V1_S2_DIR / s2).is_dir():
                raise DataError(f"S2 patch {s2} missing from the S2 archive", path=tmp)
        write_atomic(tmp / "train.csv", "".join(f"{s2},{s1}\n" for s2, s1 in found))
        for _, folder in ARCHIVES.values():
            (tmp / folder).rename(dest / folder)
        (tmp / "train.csv").rename(dest / "train.csv")  # last: a root with it is complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


__all__ = ["ARCHIVES", "NUM_EXAMPLES", "archive_paths", "extract_examples", "pairs"]
