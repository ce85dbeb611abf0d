"""Converted fast store: a sharded zarr v3 group written once, read per sample at random.

Why this format (measurements in ``docs/store.md``): one S1+S2 BigEarthNet sample read from
GeoTIFFs costs 14 file opens; here it costs two ranged reads of one shard file per modality
(the shard index is cached per process) and one Blosc-LZ4 decode. The layout is plain
zarr v3 with the sharding codec, so any zarr v3 implementation can open it
(``zarr.open_group(path)``); rsfuse reads it through a small fast path that follows the
sharding spec directly, because zarr-python's per-call overhead (async machinery, index
re-reads) is several times the decode cost of one 120x120 sample.

Layout of a store folder ``STORE``::

    STORE/zarr.json                 zarr v3 group
    STORE/s2/zarr.json, s2/c/K/0/0/0  uint16 [N, 12, 120, 120]  (L2A bands, rsfuse order)
    STORE/s1/zarr.json, s1/c/K/0/0/0  float32 [N, 2, 120, 120]  (VV, VH in dB)
    STORE/label/...                 uint8 [N, 19]   multi-hot
    STORE/index.parquet             per sample: id, s1_id, s2_id, split, snow, cloud, crs,
                                    transform (6 floats)
    STORE/plan.json                 what is being converted (written first)
    STORE/.done/<k>                 completion marker of shard k (written after its flush)
    STORE/rsfuse_store.json         the manifest: written last, so a store is complete
                                    only when it exists

Every chunk holds one sample of one array: ``bytes`` (little endian) → ``blosc`` (LZ4,
byte shuffle) → ``crc32c``; a shard holds ``shard_size`` consecutive samples. The values
are exactly what the GeoTIFF reader returns: S2 after resampling to the 10 m grid is
integral in [0, 65535] (GDAL resamples in the file's uint16 type), so it is stored as uint16
and checked to be lossless at conversion; S1 stays float32. By default reading casts S2
back to float32, so ``torch.equal(store[i]["s2"], reader[i]["s2"])`` holds (``--verify``
checks it). With ``s2_dtype="uint16"`` S2 leaves the dataset in its stored dtype (half the
bytes through the DataLoader's shared memory) and is cast to float32 on the device by
:class:`~rsfuse.data.transforms.Normalize`; ``BigEarthNetDataModule`` reads stores this way.

A DataLoader reads whole batches (:meth:`StoreDataset.__getitems__`): every sample is
decoded straight into the batch tensors, which a worker keeps in a pool of shared-memory
buffers reused once the main process has freed them (``docs/store.md``, "Batches").

The dataset (:class:`StoreDataset`) opens files lazily in each process, so it works with
DataLoader workers (fork or spawn) and under DDP (Lightning's distributed sampler gives
each rank a disjoint part of the indices). The store may be a local path or any fsspec URL
(``file://``, ``memory://``, ``s3://`` with s3fs installed …).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import struct
import threading
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import google_crc32c
import numcodecs.blosc
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from rsfuse.bands import S1_ORDER, check_modalities
from rsfuse.bands import s2_bands as resolve_s2_bands
from rsfuse.data.classes import BEN19
from rsfuse.data.sample import Batch, CollatedBatch, Sample
from rsfuse.data.sample_ids import SampleIdArray
from rsfuse.errors import ConfigError, DataError
from rsfuse.io.atomic import atomic_output, write_atomic
from rsfuse.io.shapes import checked_numel

#: Version of the rsfuse store layout written by this module.
STORE_VERSION = 1
MANIFEST = "rsfuse_store.json"
PLAN = "plan.json"
INDEX = "index.parquet"
DONE_DIR = ".done"
#: Default samples per shard file (~100 MB of S2 per shard before compression).
DEFAULT_SHARD_SIZE = 256
#: Full S2 band order stored (rsfuse L2A order).
S2_STORED: tuple[str, ...] = resolve_s2_bands("all", "L2A")
_EMPTY = np.uint64(2**64 - 1)
#: ``StoreDataset(s2_dtype=...)`` choices: the dtype S2 leaves the dataset in.
S2_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "uint16": torch.uint16}


@dataclass(frozen=True)
class ArraySpec:
    """One stored array: per-sample shape and dtype."""

    name: str
    sample_shape: tuple[int, ...]
    dtype: str


def bigearthnet_specs(size: int = 120, num_classes: int = len(BEN19)) -> list[ArraySpec]:
    """Arrays of a BigEarthNet S1+S2 store."""
    return [
        ArraySpec("s2", (len(S2_STORED), size, size), "uint16"),
        ArraySpec("s1", (len(S1_ORDER), size, size), "float32"),
        ArraySpec("label", (num_classes,), "uint8"),
    ]


def segmentation_specs(
    size: tuple[int, int],
    num_seasons: int = 1,
    s2_dtype: str = "uint16",
    s1_dtype: str = "float32",
    masks: Sequence[str] = ("mask",),
    prefix: str = "",
    s2_channels: int = 13,
) -> list[ArraySpec]:
    """Arrays of one split of a segmentation store (``rsfuse.data.store_segmentation``).

    Args:
        size: ``(H, W)`` of a patch.
        num_seasons: 1 for single-date sets (per-sample shapes ``[C, H, W]`` / ``[H, W]``),
            4 for seasonal ones (a leading season axis: ``[4, C, H, W]`` / ``[4, H, W]``).
        s2_dtype: stored S2 dtype: ``uint16`` (L1C digital numbers) or ``uint8`` (NoLDO-S12's
            scaled LMDB values).
        s1_dtype: stored S1 dtype: ``float32`` (dB) or ``uint8`` (scaled).
        masks: mask arrays (``mask``, optionally ``mask_clean``), uint8 with 255 = unlabelled.
        prefix: array name prefix (the split's group, e.g. ``"train/"``).
        s2_channels: S2 bands stored (13: L1C in registry order).

    Returns:
        The array specs: ``s2``, ``s1`` and the masks.
    """
    lead = (num_seasons,) if num_seasons > 1 else ()
    hw = tuple(int(v) for v in size)
    return [
        ArraySpec(f"{prefix}s2", (*lead, s2_channels, *hw), s2_dtype),
        ArraySpec(f"{prefix}s1", (*lead, len(S1_ORDER), *hw), s1_dtype),
        *(ArraySpec(f"{prefix}{m}", (*lead, *hw), "uint8") for m in masks),
    ]


# --------------------------------------------------------------------------- writing
def _codecs(spec: ArraySpec) -> dict[str, Any]:
    from zarr.codecs import BloscCodec, Crc32cCodec

    if spec.name == "label":  # tiny: one chunk per shard row block, no shuffle needed
        return {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")]}
    return {
        "compressors": [
            BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", blocksize=0),
            Crc32cCodec(),
        ]
    }


def create_arrays(out: Path, n: int, specs: Sequence[ArraySpec], shard_size: int) -> None:
    """Create the (empty) zarr v3 group and its sharded arrays under ``out``."""
    import zarr

    group = zarr.open_group(str(out), mode="a", zarr_format=3)
    for spec in specs:
        if spec.name in group:
            continue
        group.create_array(
            spec.name,
            shape=(n, *spec.sample_shape),
            dtype=spec.dtype,
            chunks=(1, *spec.sample_shape),
            shards=(shard_size, *spec.sample_shape),
            fill_value=0,
            **_codecs(spec),
        )


def write_shard(out: Path, k: int, shard_size: int, arrays: dict[str, np.ndarray]) -> None:
    """Write shard ``k`` of every array, flush, then write its completion marker.

    Args:
        out: store folder (local).
        k: shard number; covers samples ``[k * shard_size, (k + 1) * shard_size)``.
        shard_size: samples per shard.
        arrays: name → array [n_k, ...] of the shard's samples.
    """
    import zarr

    group = zarr.open_group(str(out), mode="r+", zarr_format=3)
    lo = k * shard_size
    for name, block in arrays.items():
        group[name][lo : lo + len(block)] = block
    marker = out / DONE_DIR / str(k)
    marker.parent.mkdir(exist_ok=True)
    _write_synced(marker, json.dumps({"shard": k, "samples": len(next(iter(arrays.values())))}))


def done_shards(out: Path) -> set[int]:
    """Shard numbers whose completion marker exists."""
    d = out / DONE_DIR
    if not d.is_dir():
        return set()
    return {int(p.name) for p in d.iterdir() if p.name.isdigit()}


def _write_synced(path: Path, data: str | bytes) -> None:
    """Atomic write, flushed to disk before the rename (markers must not lie). In the
    ``.done`` folder of many small files, stale temporary files are cleaned once per
    conversion (``rsfuse convert``), not per write."""
    write_atomic(path, data, fsync=True, clean=path.parent.name != DONE_DIR)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically."""
    _write_synced(path, json.dumps(obj, indent=2, sort_keys=True))


def write_index(out: Path, index: pd.DataFrame) -> None:
    """Write the per-sample index parquet atomically."""
    with atomic_output(out / INDEX) as tmp:
        index.to_parquet(tmp, index=False)


# --------------------------------------------------------------------------- reading
class StoreFiles:
    """Per-process file access for a local folder or an fsspec URL (opened lazily)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._pid = -1
        self._fs: Any = None
        self._local: bool = False
        self._fds: dict[str, int] = {}

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._fds = {}  # never share descriptors with a parent process
        fs, path = fsspec.core.url_to_fs(self.root)
        self._fs, self._path = fs, path.rstrip("/")
        self._local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def path(self, rel: str) -> str:
        self._open()
        return f"{self._path}/{rel}"

    def exists(self, rel: str) -> bool:
        self._open()
        return bool(self._fs.exists(self.path(rel)))

    def cat(self, rel: str) -> bytes:
        self._open()
        return bytes(self._fs.cat_file(self.path(rel)))

    def size(self, rel: str) -> int:
        self._open()
        if self._local:
            return os.fstat(self._fd(rel)).st_size
        return int(self._fs.size(self.path(rel)))

    def _fd(self, rel: str) -> int:
        fd = self._fds.get(rel)
        if fd is None:
            if not self._fds:
                _raise_open_file_limit()
            try:
                fd = self._fds[rel] = os.open(self.path(rel), os.O_RDONLY)
            except OSError as e:
                hint = ""
                if e.errno == errno.EMFILE:
                    hint = " (too many open files: raise `ulimit -n`; a reader keeps one "
                    hint += "descriptor per shard file it has read)"
                raise DataError(f"cannot open shard file: {e}{hint}", path=self.path(rel)) from e
        return fd

    def read(self, rel: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` of file ``rel`` (one ranged read)."""
        self._open()
        if self._local:
            return os.pread(self._fd(rel), length, start)
        return bytes(self._fs.cat_file(self.path(rel), start=start, end=start + length))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "_pid": -1, "_fs": None, "_local": False, "_fds": {}}


def _raise_open_file_limit() -> None:
    """Lift this process's soft limit of open files to its hard limit (once): a reader
    keeps one descriptor per shard file (≈ 6,400 for all of BigEarthNet's S1, S2 and
    labels), more than the common soft limit of 1,024."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # not permitted here: keep the limit, errors say why
        pass


class ShardedArray:
    """Random per-sample reads of one array written by :func:`create_arrays`.

    Follows the zarr v3 sharding spec: a shard file is the concatenated encoded chunks
    followed by an index of ``(offset, nbytes)`` uint64 pairs per chunk and its crc32c.
    The index of a shard is read once per process and cached.

    Args:
        files: the store's file access.
        name: array name (folder under the store).
    """

    def __init__(self, files: StoreFiles, name: str) -> None:
        self.files = files
        self.name = name
        meta_rel = f"{name}/zarr.json"
        try:
            meta = json.loads(files.cat(meta_rel))
            self.shape = tuple(meta["shape"])
            self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
            (shard_codec,) = [c for c in meta["codecs"] if c["name"] == "sharding_indexed"]
            self.shard_size = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
            cfg = shard_codec["configuration"]
            inner = tuple(cfg["chunk_shape"])
            names = [c["name"] for c in cfg["codecs"]]
            sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as e:
            raise DataError(f"cannot read array metadata: {e}", path=files.path(meta_rel)) from e
        where = f"array {name!r}"
        checked_numel(self.shape, path=files.path(meta_rel), what=where)
        if inner != (1, *self.shape[1:]) or names[:2] != ["bytes", "blosc"] or sep != "/":
            raise DataError(
                f"unsupported chunk layout {inner} / codecs {names}", path=files.path(meta_rel)
            )
        self.crc = names[2:] == ["crc32c"]
        self.sample_shape = self.shape[1:]
        if not self.shape or self.shard_size < 1:
            raise DataError(
                f"{where}: shape {self.shape} / shard size {self.shard_size} is not a store "
                "array's",
                path=files.path(meta_rel),
            )
        self.nbytes = checked_numel(self.sample_shape, what=where) * self.dtype.itemsize
        self._index: dict[int, np.ndarray] = {}
        self._shards: dict[int, tuple[str, list[tuple[int, int]]]] = {}
        self._index_pid = -1
        self._crc_len = 4 if self.crc else 0
        self._local = threading.local()
        self._min_chunk = _BLOSC_HEADER + self._crc_len
        numcodecs.blosc.use_threads = False  # one sample per call: threads only add overhead

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_index={}, _shards={}, _index_pid=-1, _local=None)  # per process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _shard_rel(self, k: int) -> str:
        return f"{self.name}/c/{k}" + "/0" * len(self.sample_shape)

    def _shard_index(self, k: int) -> np.ndarray:
        if self._index_pid != os.getpid():
            self._index, self._index_pid, self._shards = {}, os.getpid(), {}
        idx = self._index.get(k)
        if idx is not None:
            return idx
        rel = self._shard_rel(k)
        n = self.shard_size
        nbytes = 16 * n + 4
        try:
            size = self.files.size(rel)
            if size < nbytes:
                raise DataError(
                    f"shard file is truncated ({size} bytes)", path=self.files.path(rel)
                )
            raw = self.files.read(rel, size - nbytes, nbytes)
        except FileNotFoundError as e:
            raise DataError("shard file not found", path=self.files.path(rel)) from e
        except OSError as e:
            raise DataError(f"cannot read shard: {e}", path=self.files.path(rel)) from e
        body, crc = raw[:-4], raw[-4:]
        if _crc32c(body) != crc:
            raise DataError("shard index checksum mismatch (corrupt)", path=self.files.path(rel))
        idx = np.frombuffer(body, dtype="<u8").reshape(n, 2)
        ends = idx[:, 0] + idx[:, 1]
        if bool(((idx[:, 0] != _EMPTY) & (ends > size - nbytes)).any()):
            raise DataError("shard index points past the file end", path=self.files.path(rel))
        self._index[k] = idx
        return idx

    def _shard(self, k: int) -> tuple[str, array]:
        """Shard ``k``: (relative path, its checked index as a flat ``array('q')`` of
        offset, nbytes pairs: 16 bytes per chunk, Python ints on access), cached per
        process."""
        if self._index_pid != os.getpid():
            self._index, self._index_pid, self._shards = {}, os.getpid(), {}
        entry = self._shards.get(k)
        if entry is None:
            idx = self._shard_index(k)
            self._index.pop(k, None)  # keep one copy of the index
            entry = self._shards[k] = (self._shard_rel(k), array("q", idx.astype(np.int64).ravel()))
        return entry

    def _read_buffer(self, n: int) -> np.ndarray:
        """A reused read buffer of ``n`` bytes (one per process and thread): reading into it
        avoids a fresh ~200 kB bytes object per chunk, whose new pages are costly on VMs."""
        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None or len(buf) < n:
            buf = local.buf = np.empty(max(n, 1 << 18), dtype=np.uint8)
        return buf[:n]

    def _chunk(self, i: int) -> tuple[str, bytes | np.ndarray]:
        """The encoded chunk of sample ``i`` (checksum verified) and its shard's path.

        Local files are read into a per-thread buffer, valid until this thread's next read.
        """
        k, j = divmod(i, self.shard_size)
        rel, pairs = self._shard(k)
        off, n = pairs[2 * j], pairs[2 * j + 1]
        if off == _EMPTY_INT:
            raise DataError(f"{self.name}: chunk was never written", path=self.files.path(rel))
        files = self.files
        buf: bytes | np.ndarray
        if files._local and _CAN_PREADV:
            buf = self._read_buffer(n)
            got = os.preadv(files._fd(rel), [buf], off)
        else:
            buf = os.pread(files._fd(rel), n, off) if files._local else files.read(rel, off, n)
            got = len(buf)
        if got != n or n < self._min_chunk:
            raise DataError(f"{self.name}: chunk is truncated", path=self.files.path(rel))
        # crc32c over data + its little-endian crc is a constant: no slicing copy needed
        if self.crc and _crc32c_value(buf) != _CRC32C_RESIDUE:
            raise DataError(
                f"{self.name}: chunk checksum mismatch (corrupt)", path=self.files.path(rel)
            )
        return rel, buf

    def read_into(self, i: int, sample_id: str, out: np.ndarray) -> np.ndarray:
        """Decode sample ``i`` into ``out`` (C-contiguous, this array's dtype and shape).

        No intermediate buffers: one ranged read, a checksum over the read bytes and one
        Blosc decode straight into ``out`` (which may be one row of a batch array).

        Raises:
            DataError: a missing, truncated, corrupt or undecodable chunk, naming the
                store file and the sample.
        """
        try:
            rel, buf = self._chunk(i)
            # Blosc header: nbytes (uint32 LE) at 4, cbytes at 12; check before decoding
            nbytes, cbytes = _BLOSC_SIZES(buf)
            if nbytes != self.nbytes or cbytes > len(buf) - self._crc_len:
                raise DataError(
                    f"{self.name}: chunk decodes to {nbytes} bytes, expected {self.nbytes}",
                    path=self.files.path(rel),
                )
            try:
                _blosc_decompress(memoryview(buf)[:-4] if self.crc else buf, out)
            except Exception as e:  # numcodecs raises RuntimeError / ValueError
                raise DataError(
                    f"{self.name}: cannot decode chunk: {e}", path=self.files.path(rel)
                ) from e
        except DataError as e:
            err = DataError(str(e).split("] ", 1)[-1], path=e.path, sample=sample_id)
            raise err from e
        return out

    def read_batch(self, rows: Sequence[int], ids: Sequence[str], out: np.ndarray) -> np.ndarray:
        """Decode samples ``rows`` into the rows of ``out`` ([B, *sample_shape], C-contiguous,
        this array's dtype): ``out[b]`` receives sample ``rows[b]``, exactly as
        :meth:`read_into` (same checks, same :class:`DataError` naming file and sample)."""
        read_into = self.read_into
        for b, i in enumerate(rows):
            read_into(i, ids[b], out[b])
        return out

    def read(self, i: int, sample_id: str) -> np.ndarray:
        """Decode sample ``i`` into a new array (raises :class:`DataError` naming store file
        and sample)."""
        return self.read_into(i, sample_id, np.empty(self.sample_shape, dtype=self.dtype))


_EMPTY_INT = int(_EMPTY)
#: Blosc 1 header size (version, flags, typesize, nbytes, blocksize, cbytes).
_BLOSC_HEADER = 16
#: CRC-32C residue: crc32c(data + crc32c(data) as 4 little-endian bytes) for any data.
_CRC32C_RESIDUE = 0x48674BC7


_crc32c_value = google_crc32c.value
_blosc_decompress = numcodecs.blosc.decompress


def _crc_takes_arrays() -> bool:
    """Whether google-crc32c accepts a numpy array (it refuses buffers that need releasing,
    e.g. bytearray and memoryview), so chunks can be read into a reused array."""
    try:
        return _crc32c_value(np.zeros(4, np.uint8)) == _crc32c_value(bytes(4))
    except TypeError:
        return False


_CRC_TAKES_ARRAYS = _crc_takes_arrays()
#: read chunks into a reused buffer (os.preadv: Linux, macOS 11+)
_CAN_PREADV = _CRC_TAKES_ARRAYS and hasattr(os, "preadv")
#: Blosc header fields: decoded size (uint32 LE at 4) and compressed size (at 12).
_BLOSC_SIZES = struct.Struct("<4xI4xI").unpack_from


def _crc32c(data: bytes) -> bytes:
    return int(google_crc32c.value(data)).to_bytes(4, "little")


def read_manifest(root: str) -> dict[str, Any]:
    """The manifest of a complete store.

    Raises:
        DataError: no manifest (store missing or conversion unfinished) or unreadable.
    """
    files = StoreFiles(str(root))
    if not files.exists(MANIFEST):
        raise DataError(
            "store manifest not found: not an rsfuse store, or its conversion did not finish "
            "(run `rsfuse convert` again to complete it)",
            path=files.path(MANIFEST),
        )
    try:
        manifest = json.loads(files.cat(MANIFEST))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read store manifest: {e}", path=files.path(MANIFEST)) from e
    if manifest.get("format") != "rsfuse-store" or manifest.get("version") != STORE_VERSION:
        raise DataError(
            f"unsupported store format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r} (expected rsfuse-store {STORE_VERSION})",
            path=files.path(MANIFEST),
        )
    return manifest


class StoreDataset(SampleIdArray, Dataset[Sample]):
    """Random-access samples of a converted store, in the GeoTIFF readers' sample contract.

    Args:
        root: store folder or fsspec URL (``file:///…``, ``memory://…``, ``s3://…``).
        split: ``train``, ``val`` or ``test``.
        modalities: non-empty subset of ``("s1", "s2")``.
        s2_bands: S2 band subset name or list of L2A band names (channel order of ``s2``).
        resampling: must equal the resampling the store was converted with, or None to
            accept it.
        include_snow: keep patches flagged with seasonal snow.
        include_cloudy: keep patches flagged with cloud or shadow.
        s2_dtype: ``"float32"`` (the sample contract's default: S2 cast in the dataset) or
            ``"uint16"`` (the stored digital numbers as a ``torch.uint16`` tensor, no cast in
            the worker; :class:`~rsfuse.data.transforms.Normalize` casts on the device).

    Raises:
        DataError: the store is missing, incomplete (no manifest) or unreadable.
        ConfigError: bad split, modalities, bands, ``s2_dtype`` or a resampling the store
            was not converted with.
    """

    classes: ClassVar[tuple[str, ...]] = BEN19
    num_classes: ClassVar[int] = len(BEN19)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        resampling: str | None = None,
        include_snow: bool = False,
        include_cloudy: bool = False,
        s2_dtype: str = "float32",
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {split!r}", key="split")
        if s2_dtype not in S2_DTYPES:
            raise ConfigError(
                f"s2_dtype must be one of {list(S2_DTYPES)}, got {s2_dtype!r}", key="s2_dtype"
            )
        self.s2_dtype = s2_dtype
        self._s2_torch_dtype = S2_DTYPES[s2_dtype]
        if isinstance(modalities, str):
            modalities = (modalities,)
        self.modalities = check_modalities(modalities)
        self.s2_band_names = resolve_s2_bands(s2_bands, "L2A")
        self._s2_sel = [S2_STORED.index(b) for b in self.s2_band_names]
        self._s2_all = self._s2_sel == list(range(len(S2_STORED)))
        self.root = str(root)
        self.split = split
        self.manifest = read_manifest(self.root)
        if self.manifest.get("kind", "bigearthnet") != "bigearthnet":
            raise DataError(
                f"this is a {self.manifest['kind']} store; read it with "
                "rsfuse.data.store_segmentation.SegmentationStoreDataset "
                "(SegmentationDataModule(store=...))",
                path=self.root,
            )
        self.files = StoreFiles(self.root)
        if resampling is not None and resampling != self.manifest["resampling"]:
            raise ConfigError(
                f"store {self.root} was converted with resampling "
                f"{self.manifest['resampling']!r}, not {resampling!r}",
                key="resampling",
            )
        self.resampling = self.manifest["resampling"]
        self.stats_name: str = self.manifest.get("stats_name", "")
        try:
            index = pd.read_parquet(
                self.files.path(INDEX), filesystem=self.files._fs if not self.files._local else None
            )
        except Exception as e:  # pyarrow raises many types
            raise DataError(f"cannot read store index: {e}", path=self.files.path(INDEX)) from e
        keep = index["split"].to_numpy() == split
        if not include_snow:
            keep &= ~index["snow"].to_numpy(dtype=bool)
        if not include_cloudy:
            keep &= ~index["cloud"].to_numpy(dtype=bool)
        self._rows = np.flatnonzero(keep).astype(np.int64)
        sub = index.iloc[self._rows]
        # fork-friendly per-sample arrays (no per-item Python objects)
        self._ids = np.array([s.encode() for s in sub["id"]], dtype=np.bytes_)
        self._s1_ids = np.array([s.encode() for s in sub["s1_id"].fillna("")], dtype=np.bytes_)
        self._s2_ids = np.array([s.encode() for s in sub["s2_id"].fillna("")], dtype=np.bytes_)
        self._crs = np.array([s.encode() for s in sub["crs"].fillna("")], dtype=np.bytes_)
        self._transform = sub[[f"t{k}" for k in range(6)]].to_numpy(dtype=np.float64)
        # the dataset's flags, as the readers' ``meta["cloudy"]`` (clouds="metadata") / ["snow"]
        self._cloudy = sub["cloud"].to_numpy(dtype=bool)
        self._snow = sub["snow"].to_numpy(dtype=bool)
        if len(self._rows) == 0:
            raise DataError(f"split {split!r} has no samples", path=self.files.path(INDEX))
        self._arrays: dict[str, ShardedArray] | None = None
        self._buffers: dict[tuple[str, int], np.ndarray] = {}
        self._memory: _BatchMemory | None = None

    def _open(self) -> dict[str, ShardedArray]:
        if self._arrays is None:
            names = [*self.modalities, "label"]
            self._arrays = {n: ShardedArray(self.files, n) for n in names}
            self._buffers = {}
        return self._arrays

    def _scratch(self, array: ShardedArray) -> np.ndarray:
        """A decode buffer for ``array``, reused across samples (one per process and thread)."""
        key = (array.name, threading.get_ident())
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(array.sample_shape, dtype=array.dtype)
        return buf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = None  # reopened lazily in each worker
        state["_buffers"] = {}
        state["_memory"] = None
        return state

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Sample:
        """Read sample ``index``.

        Raises:
            IndexError: index out of range.
            DataError: a corrupt or truncated chunk, naming the store file and the sample.
        """
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        arrays = self._open()
        row = int(self._rows[index])
        sid = self.sample_id(index)
        sample: Sample = {}
        if "s2" in self.modalities:
            s2 = torch.empty(
                (len(self._s2_sel), *arrays["s2"].sample_shape[1:]), dtype=self._s2_torch_dtype
            )
            if self._s2_all and s2.dtype == torch.uint16:
                arrays["s2"].read_into(row, sid, s2.numpy())  # stored dtype: decode in place
            else:
                # decode into a reused uint16 buffer (stays in cache), then one copy (and
                # cast, for float32) of the selected bands into the tensor
                raw = arrays["s2"].read_into(row, sid, self._scratch(arrays["s2"]))
                np.copyto(s2.numpy(), raw if self._s2_all else raw[self._s2_sel], casting="unsafe")
            sample["s2"] = s2
        if "s1" in self.modalities:
            s1 = torch.empty(arrays["s1"].sample_shape, dtype=torch.float32)  # decoded in place
            arrays["s1"].read_into(row, sid, s1.numpy())
            sample["s1"] = s1
        label = arrays["label"].read_into(row, sid, self._scratch(arrays["label"]))
        sample["label"] = torch.from_numpy(label.astype(np.float32))
        sample["present"] = {m: m in self.modalities for m in ("s1", "s2")}
        crs = self._crs[index].decode()
        sample["meta"] = {
            "id": sid,
            "s1_id": self._s1_ids[index].decode() or None,
            "s2_id": self._s2_ids[index].decode(),
            "crs": crs or None,
            "transform": tuple(float(v) for v in self._transform[index]),
            "cloudy": bool(self._cloudy[index]),
            "snow": bool(self._snow[index]),
        }
        return sample

    def __getitems__(self, indices: Sequence[int]) -> CollatedBatch:
        """Read a whole batch: every sample is decoded straight into preallocated batch
        tensors, in shared memory inside a DataLoader worker (so the batch crosses to the
        main process without another copy).

        The DataLoader calls this with a batch's indices when the dataset defines it.
        :func:`~rsfuse.data.sample.collate` returns the result as is; it equals, bit for
        bit, ``collate([self[i] for i in indices])`` (same keys, dtypes, values and
        ``meta`` list of dicts); other collate functions see the per-sample dicts.

        Raises:
            IndexError: an index out of range.
            DataError: a corrupt or truncated chunk, naming the store file and the sample.
        """
        n = len(self)
        idx = [int(i) for i in indices]
        for b, i in enumerate(idx):
            if i < 0:
                idx[b] = i = i + n
            if not 0 <= i < n:
                raise IndexError(f"index {indices[b]} out of range for {n} samples")
        if not idx:
            raise DataError("cannot read an empty batch")
        arrays = self._open()
        bsz = len(idx)
        rows = self._rows[idx].tolist()
        ids = [v.decode() for v in self._ids[idx].tolist()]
        memory = self._batch_memory()
        batch = _SharedBatch()
        if "s2" in self.modalities:
            a = arrays["s2"]
            shape = (bsz, len(self._s2_sel), *a.sample_shape[1:])
            _allocate(batch, [("s2", None, shape, self._s2_torch_dtype)], memory)
            out = batch["s2"].numpy()
            if self._s2_all and out.dtype == np.uint16:
                a.read_batch(rows, ids, out)  # stored dtype: decode in place
            else:
                # decode into a reused uint16 buffer (stays in cache), then one copy (and
                # cast, for float32) of the selected bands into the batch
                raw = self._scratch(a)
                sel = self._s2_sel
                for b, i in enumerate(rows):
                    a.read_into(i, ids[b], raw)
                    np.copyto(out[b], raw if self._s2_all else raw[sel], casting="unsafe")
        if "s1" in self.modalities:
            a = arrays["s1"]
            _allocate(batch, [("s1", None, (bsz, *a.sample_shape), torch.float32)], memory)
            a.read_batch(rows, ids, batch["s1"].numpy())  # decoded in place
        a = arrays["label"]
        raw_labels = a.read_batch(rows, ids, np.empty((bsz, *a.sample_shape), dtype=a.dtype))
        small: list[_Part] = [("label", None, raw_labels.shape, torch.float32)]
        small += [("present", m, (bsz,), torch.bool) for m in ("s1", "s2")]
        _allocate(batch, small, memory)  # one slot: labels and presence flags
        np.copyto(batch["label"].numpy(), raw_labels, casting="unsafe")
        for m, flags in batch["present"].items():
            flags.fill_(m in self.modalities)
        s1_ids = self._s1_ids[idx].tolist()
        s2_ids = self._s2_ids[idx].tolist()
        crs = self._crs[idx].tolist()
        transform = self._transform[idx].tolist()
        cloudy = self._cloudy[idx].tolist()
        snow = self._snow[idx].tolist()
        batch["meta"] = [
            {
                "id": ids[b],
                "s1_id": s1_ids[b].decode() or None,
                "s2_id": s2_ids[b].decode(),
                "crs": crs[b].decode() or None,
                "transform": tuple(transform[b]),
                "cloudy": cloudy[b],
                "snow": snow[b],
            }
            for b in range(bsz)
        ]
        return CollatedBatch(batch if batch.leases else dict(batch))

    def _batch_memory(self) -> _BatchMemory | None:
        """This worker's pool of shared batch buffers; None in the main process."""
        if get_worker_info() is None:
            return None
        if torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
            # with "file_system" a worker's pooled segments would outlive it in /dev/shm
            return None
        memory = self._memory
        if memory is None or memory.pid != os.getpid():
            memory = self._memory = _BatchMemory()
        return memory


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


#: one tensor of a batch: (key, sub-key or None, shape, dtype)
_Part = tuple[str, str | None, tuple[int, ...], torch.dtype]
#: bytes reserved at the end of a pooled slot for its flag (1 = the main process holds it)
_FLAG_BYTES = 64


def shared_storage(nbytes: int) -> torch.UntypedStorage:
    """A new ``nbytes`` storage in shared memory (sent between processes by descriptor).

    Allocated, then moved into shared memory with the public ``share_memory_`` (one copy of
    fresh memory; the DataLoader's collate uses torch's private ``_new_shared`` instead).
    """
    return torch.UntypedStorage(nbytes).share_memory_()


def _layout(
    parts: Sequence[_Part],
) -> tuple[list[tuple[str, str | None, tuple[int, ...], torch.dtype, int]], int]:
    """Byte offsets (64-byte aligned) of ``parts`` packed into one buffer, and its size."""
    out, off = [], 0
    for key, sub, shape, dtype in parts:
        out.append((key, sub, shape, dtype, off))
        off += -(-_numel(shape) * dtype.itemsize // 64) * 64
    return out, off


class _BatchMemory:
    """Where :meth:`StoreDataset.__getitems__` puts a batch in a DataLoader worker.

    A per-worker pool of shared-memory buffers (*slots*); a batch uses three (S2, S1, and
    one for the small tensors), each reused once the main process has freed every tensor
    in it. Fresh shared memory per batch (what the DataLoader does otherwise) costs as
    much as decoding the batch on a VM: new pages are faulted in and zeroed each time.

    Lifetime, never guessed: the main process rebuilds the tensors of a slot with
    :func:`torch.frombuffer` over one owner array per slot, so the owner dies only when the
    last storage using it is freed (views, ``.numpy()`` arrays and storages included); its
    finalizer then clears the slot's flag (its last bytes, shared with the worker). The
    worker reuses a slot only when that flag is clear and its own tensors of it are gone
    too. A batch that is never sent (read in the worker and dropped) frees its slots when
    its worker tensors are freed; a batch pickled a second time is sent as ordinary tensors
    (copied by torch), never as the slots. With :attr:`MAX_LIVE` slots held at once the
    next tensors get fresh shared memory (correct, just slower); more than
    :attr:`MAX_IDLE` idle slots are given back.
    """

    #: slots per worker (3 per batch: prefetch_factor batches in flight plus those the
    #: main process holds)
    MAX_LIVE = 48
    #: idle slots kept for reuse
    MAX_IDLE = 12

    def __init__(self) -> None:
        self.pid = os.getpid()
        #: slot id → (storage, its flag byte as a 1-element array)
        self.slots: dict[int, tuple[torch.UntypedStorage, np.ndarray]] = {}
        self.local: set[int] = set()  # slots whose worker-side tensors are still alive
        self._next = 0
        self.lock = threading.Lock()  # threads of one worker must not claim one slot

    def _idle(self) -> list[int]:
        return [k for k, (_, f) in self.slots.items() if f[0] == 0 and k not in self.local]

    def acquire(self, nbytes: int) -> tuple[int, torch.UntypedStorage] | None:
        """A free slot with room for ``nbytes`` (marked busy), or None (use fresh memory)."""
        with self.lock:
            return self._acquire(nbytes)

    def evict(self, slot: int) -> None:
        """Forget a slot for good (never reused): its memory lives on only as long as some
        tensor (in either process) still uses it."""
        with self.lock:
            self.slots.pop(slot, None)
            self.local.discard(slot)

    def _acquire(self, nbytes: int) -> tuple[int, torch.UntypedStorage] | None:
        best, best_size = None, 0
        for k, (storage, flag) in self.slots.items():
            size = storage.nbytes() - _FLAG_BYTES
            fits = flag[0] == 0 and k not in self.local and size >= nbytes
            if fits and (best is None or size < best_size):
                best, best_size = k, size
        if best is None:
            if len(self.slots) >= self.MAX_LIVE:  # give back an idle slot that is too small
                idle = self._idle()
                if not idle:
                    return None
                del self.slots[idle[0]]
            best, self._next = self._next, self._next + 1
            storage = shared_storage(nbytes + _FLAG_BYTES)
            flag = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()[-_FLAG_BYTES:][:1]
            self.slots[best] = (storage, flag)
        storage, flag = self.slots[best]
        flag[0] = 1
        self.local.add(best)
        idle = self._idle()
        for k in idle[: max(0, len(idle) - self.MAX_IDLE)]:
            del self.slots[k]  # idle: neither process uses it any more
        return best, storage

    def local_done(self, lease: _Lease) -> None:
        """Worker-side tensors of a slot are gone; free it if it was never sent."""
        self.local.discard(lease.slot)
        if not lease.sent:
            _release_slot(lease.flag, lease.memory.pid)


class _Lease:
    """One batch's claim on a slot (worker side): what to send instead of its tensors."""

    __slots__ = ("__weakref__", "flag", "layout", "memory", "refs", "sent", "slot", "storage")

    def __init__(
        self,
        memory: _BatchMemory,
        slot: int,
        storage: torch.UntypedStorage,
        layout: list[tuple[str, str | None, tuple[int, ...], torch.dtype, int]],
    ) -> None:
        self.memory, self.slot, self.storage, self.layout = memory, slot, storage, layout
        self.flag = memory.slots[slot][1]
        self.sent = False
        #: weak references to the tensors placed in the batch, to tell whether the batch
        #: still holds exactly them when it is sent
        self.refs: list[weakref.ref] = []


def _tensors(
    owner: np.ndarray, layout: Sequence[tuple[Any, ...]], batch: Batch
) -> list[torch.Tensor]:
    """Put the layout's tensors over ``owner`` (uint8) into ``batch``: each keeps ``owner``
    alive until its storage is freed. Returns them."""
    out = []
    for key, sub, shape, dtype, off in layout:
        t = torch.frombuffer(owner, dtype=dtype, count=_numel(shape), offset=off).view(shape)
        _put(batch, key, sub, t)
        out.append(t)
    return out


def _get(batch: Batch, key: str, sub: str | None) -> Any:
    v = batch.get(key)
    if sub is None:
        return v
    return v.get(sub) if isinstance(v, dict) else None


def _lease_intact(lease: _Lease, plain: Batch) -> bool:
    """Whether ``plain`` holds exactly the lease's tensors, each once, and nothing else of
    its slot: only then may the slot be sent as such (a collate function may have replaced,
    sliced, removed or aliased them)."""
    mine = []
    for (key, sub, *_), ref in zip(lease.layout, lease.refs):
        t = ref()
        if t is None or _get(plain, key, sub) is not t:
            return False
        mine.append(t)
    lo = lease.storage.data_ptr()
    hi = lo + lease.storage.nbytes()
    ids = {id(t) for t in mine}
    for value in plain.values():
        for t in value.values() if isinstance(value, dict) else (value,):
            if isinstance(t, torch.Tensor) and id(t) not in ids:
                p = t.untyped_storage().data_ptr()
                if lo <= p < hi:
                    return False  # another tensor over the slot's memory
    return True


def _put(batch: Batch, key: str, sub: str | None, t: torch.Tensor) -> None:
    if sub is None:
        batch[key] = t
    else:
        batch.setdefault(key, {})[sub] = t


def _allocate(batch: _SharedBatch, parts: Sequence[_Part], memory: _BatchMemory | None) -> None:
    """Uninitialised tensors for ``parts``, put into ``batch``: ordinary memory when
    ``memory`` is None (main process), else one pooled shared-memory slot, or fresh shared
    memory when the pool has none free (what the DataLoader would do)."""
    if memory is None:
        for key, sub, shape, dtype in parts:
            _put(batch, key, sub, torch.empty(shape, dtype=dtype))
        return
    layout, nbytes = _layout(parts)
    got = memory.acquire(nbytes)
    if got is None:  # torch's own shared storage: sent by descriptor, no copy
        storage = shared_storage(nbytes)
        for key, sub, shape, dtype, off in layout:
            t = torch.empty(0, dtype=dtype).set_(storage, off // dtype.itemsize, shape)
            _put(batch, key, sub, t)
        return
    slot, storage = got
    lease = _Lease(memory, slot, storage, layout)
    owner = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
    weakref.finalize(owner, memory.local_done, lease)
    lease.refs = [weakref.ref(t) for t in _tensors(owner, layout, batch)]
    batch.leases.append(lease)


class _SharedBatch(dict):  # type: ignore[type-arg]
    """A batch whose tensors sit in pooled slots: pickled (worker → main) as the slots, so
    the main process maps them instead of receiving fresh shared memory."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: list[_Lease] = []

    def __reduce__(self) -> tuple[Any, ...]:
        plain = dict(self)
        pooled = []
        for lease in self.leases:
            if lease.sent or lease.memory.pid != os.getpid():
                continue  # pickled before: ordinary tensors (torch copies them to share)
            lease.sent = True
            if not _lease_intact(lease, self):
                # the batch no longer holds exactly the slot's tensors: torch sends what
                # it holds (possibly views of the slot's shared memory), so the slot can
                # never be known free again; drop it from the pool
                lease.memory.evict(lease.slot)
                continue
            for key, sub, *_ in lease.layout:
                if sub is None:
                    del plain[key]
                else:
                    plain[key] = {m: t for m, t in plain[key].items() if m != sub}
            flag_at = lease.storage.nbytes() - _FLAG_BYTES
            pooled.append((lease.storage, flag_at, lease.layout))
        return (_rebuild_shared_batch, (pooled, plain))


def _rebuild_shared_batch(
    pooled: list[tuple[torch.UntypedStorage, int, list[tuple[Any, ...]]]],
    plain: dict[str, Any],
) -> Batch:
    """Main-process side of :class:`_SharedBatch`: tensors over the worker's slots; a slot
    is given back (its flag cleared) when the last tensor or view using it is freed."""
    batch: Batch = {}
    for storage, flag_at, layout in pooled:
        owner = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
        flag = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()[flag_at : flag_at + 1]
        weakref.finalize(owner, _release_slot, flag, os.getpid())
        _tensors(owner, layout, batch)
    for key, value in plain.items():
        if isinstance(value, dict) and isinstance(batch.get(key), dict):
            batch[key].update(value)
        else:
            batch[key] = value
    return batch


def _release_slot(flag: np.ndarray, pid: int | None = None) -> None:
    """Clear a slot's flag; a finalizer inherited by a forked child (``pid`` differs) does
    nothing, since the parent may still use the slot."""
    if pid is None or pid == os.getpid():
        flag[0] = 0


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "MANIFEST",
    "S2_DTYPES",
    "STORE_VERSION",
    "ArraySpec",
    "ShardedArray",
    "StoreDataset",
    "bigearthnet_specs",
    "create_arrays",
    "done_shards",
    "read_manifest",
    "segmentation_specs",
    "write_shard",
]
