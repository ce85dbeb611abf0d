"""Check an LMDB data file before it is memory-mapped.

LMDB reads its data file through ``mmap``: a page beyond the end of a truncated file is
not an error it can report but a ``SIGBUS`` that kills the process without a message.
:func:`check_lmdb_file` reads the two meta pages at the start of ``data.mdb`` (plain file
reads, no mapping), takes the newer one, and checks that the file holds every page the
meta page says was written (``(last_pg + 1) * page_size`` bytes). LMDB itself refuses to
follow a page number above ``last_pg``, so a file that passes cannot fault on a valid
page. Every problem is a :class:`~rsfuse.errors.DataError` naming the file.

Meta page layout (``mdb.c``, 64-bit builds, little-endian)::

    page header   16 bytes   pgno (8), pad (2), flags (2), lower (2), upper (2)
    MDB_meta      at 16      magic u32 = 0xBEEFC0DE, version u32, address u64,
                             mapsize u64, dbs[2] (48 bytes each: pad u32 = page size in
                             dbs[0], flags u16, depth u16, 5 x u64), last_pg u64, txnid u64
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from rsfuse.errors import DataError

MAGIC = 0xBEEFC0DE
#: Offsets inside a meta page (64-bit LMDB).
_HEADER = 16
_META = struct.Struct("<IIQQ")  # magic, version, address, mapsize
_DB = struct.Struct("<IHHQQQQQ")  # pad (page size in FREE_DBI), flags, depth, 5 x u64
_TAIL = struct.Struct("<QQ")  # last_pg, txnid
_META_SIZE = _META.size + 2 * _DB.size + _TAIL.size
_PAGE_SIZES = tuple(1 << k for k in range(9, 17))  # 512 B … 64 KiB


@dataclass(frozen=True)
class LMDBMeta:
    """What the newer meta page of an LMDB data file says."""

    page_size: int
    last_page: int
    txnid: int
    map_size: int

    @property
    def required_bytes(self) -> int:
        """Bytes the data file must hold: every page up to ``last_page``."""
        return (self.last_page + 1) * self.page_size


def _parse(raw: bytes) -> tuple[int, int, int, int] | None:
    """(page size, last page, txnid, mapsize) of one meta page, or None if it is not one."""
    if len(raw) < _HEADER + _META_SIZE:
        return None
    magic, _version, _address, mapsize = _META.unpack_from(raw, _HEADER)
    if magic != MAGIC:
        return None
    page_size = _DB.unpack_from(raw, _HEADER + _META.size)[0]
    last_pg, txnid = _TAIL.unpack_from(raw, _HEADER + _META.size + 2 * _DB.size)
    return page_size, last_pg, txnid, mapsize


def data_file(path: str | Path) -> Path:
    """The data file of an LMDB environment: ``path/data.mdb`` for a folder, else ``path``."""
    p = Path(path)
    return p / "data.mdb" if p.is_dir() else p


def check_lmdb_file(path: str | Path) -> LMDBMeta:
    """Check that an LMDB data file is complete, without mapping it.

    Args:
        path: the environment folder (holding ``data.mdb``) or the data file itself.

    Returns:
        The newer meta page's page size, last page, transaction id and map size.

    Raises:
        DataError: the file is missing, unreadable, has no valid meta page, or is shorter
            than the pages its meta page records (truncated).
    """
    f = data_file(path)
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            first = fh.read(_HEADER + _META_SIZE)
            p0 = _parse(first)
            if p0 is None or p0[0] not in _PAGE_SIZES:
                raise DataError(f"not an LMDB data file (no valid meta page; {size} bytes)", path=f)
            fh.seek(p0[0])
            p1 = _parse(fh.read(_HEADER + _META_SIZE))
    except OSError as e:
        raise DataError(f"cannot read LMDB data file: {e}", path=f) from e
    metas = [m for m in (p0, p1) if m is not None and m[0] == p0[0]]
    page_size, last_pg, txnid, mapsize = max(metas, key=lambda m: m[2])
    meta = LMDBMeta(page_size, last_pg, txnid, mapsize)
    if last_pg < 1 or size < meta.required_bytes:
        raise DataError(
            f"LMDB data file is truncated: its meta page records {last_pg + 1} pages of "
            f"{page_size} bytes ({meta.required_bytes} bytes) but the file has {size} bytes",
            path=f,
        )
    return meta


__all__ = ["LMDBMeta", "check_lmdb_file", "data_file"]
