"""The sample contract shared by every reader, the collate function and the transforms.

A *sample* is a dict:

========== ====================== ==========================================================
key        type                   content
========== ====================== ==========================================================
``s1``     float32 [2, H, W]      Sentinel-1 VV, VH backscatter in dB, in that order
``s2``     float32 [C, H, W]      Sentinel-2 raw values (reflectance x 10000) in the band
                                  order of :mod:`rsfuse.bands`; float32, or uint16 raw
                                  digital numbers when a store is read with
                                  ``s2_dtype='uint16'``; Normalize casts on the device
``label``  float32 [K]            multi-hot scene labels (classification datasets)
``mask``   int64 [H, W]           per-pixel classes, 255 = unlabelled (segmentation datasets)
``present`` dict[str, bool]       per-modality presence flags ``{"s1": ..., "s2": ...}``;
                                  ``present["s2"]`` is False when S2 is unusable (more
                                  than the cloud threshold of it invalid, or a patch the
                                  dataset flags as cloudy: :mod:`rsfuse.data.clouds`)
``valid``  bool [H, W]            optional S2 validity per pixel (False under cloud or
                                  shadow); the fusion modules zero S2 there and the
                                  segmentation task takes those pixels from its S1-only path
``season`` int64 scalar           optional acquisition season index (0–3)
``meta``   dict                   ``id``, source ids, ``crs`` (WKT or EPSG string),
                                  ``transform`` (6 affine coefficients)
========== ====================== ==========================================================

A modality that was not read is absent from the dict and its presence flag is ``False``.
After :func:`collate` every tensor gains a leading batch dimension, ``present`` holds bool
tensors [B] and ``meta`` is a list of per-sample dicts.

A dataset may also assemble a whole batch itself (``__getitems__``, which the DataLoader
calls with a batch's indices): it returns a :class:`CollatedBatch`, which :func:`collate`
passes through unchanged and which any other collate function sees as the sequence of its
samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import torch
from torch import Tensor

from rsfuse.bands import MODALITIES
from rsfuse.errors import DataError

Sample = dict[str, Any]
Batch = dict[str, Any]

IGNORE_INDEX = 255
#: dtypes ``s2`` may have in a sample (uint16: raw digital numbers, cast on the device).
_S2_DTYPES = (torch.float32, torch.uint16)


def check_sample(sample: Sample, source: str | None = None, check_finite: bool = True) -> Sample:
    """Check a sample against the contract and raise on violations.

    Checks dtypes and ranks, finite pixel values, matching spatial size across modalities
    and mask, and S1 having exactly two channels. ``s1`` must be float32; ``s2`` may be
    float32 or uint16 (raw digital numbers from a store read with ``s2_dtype='uint16'``).

    Args:
        sample: the sample to check.
        source: file or id named in the error message.
        check_finite: also reject NaN/inf pixel values.

    Returns:
        The same sample, for chaining.

    Raises:
        DataError: a violation, naming ``source`` and the key.
    """
    sid = source or str(sample.get("meta", {}).get("id", "?"))
    sizes = {}
    for key in MODALITIES:
        if key not in sample:
            continue
        x = sample[key]
        dtypes = _S2_DTYPES if key == "s2" else (torch.float32,)
        if not isinstance(x, Tensor) or x.dtype not in dtypes or x.ndim != 3:
            kind = "float32 or uint16" if key == "s2" else "float32"
            raise DataError(
                f"{key} must be a {kind} tensor [C, H, W], got "
                f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}",
                sample=sid,
            )
        if key == "s1" and x.shape[0] != 2:
            raise DataError(f"s1 must have 2 channels (VV, VH), got {x.shape[0]}", sample=sid)
        if check_finite and x.is_floating_point() and not torch.isfinite(x).all():
            n = int((~torch.isfinite(x)).sum())
            raise DataError(f"{key} has {n} NaN/inf pixel values", sample=sid)
        sizes[key] = tuple(x.shape[-2:])
    if "mask" in sample:
        m = sample["mask"]
        if m.dtype != torch.int64 or m.ndim != 2:
            raise DataError(
                f"mask must be int64 [H, W], got {m.dtype} {tuple(m.shape)}", sample=sid
            )
        sizes["mask"] = tuple(m.shape)
    if len(set(sizes.values())) > 1:
        raise DataError(f"spatial sizes differ between keys: {sizes}", sample=sid)
    if "valid" in sample:
        v = sample["valid"]
        if not isinstance(v, Tensor) or v.dtype != torch.bool or v.ndim != 2:
            raise DataError(
                f"valid must be bool [H, W], got {getattr(v, 'dtype', type(v))} "
                f"{tuple(getattr(v, 'shape', ()))}",
                sample=sid,
            )
        sizes["valid"] = tuple(v.shape)
        if len(set(sizes.values())) > 1:
            raise DataError(f"spatial sizes differ between keys: {sizes}", sample=sid)
    if "label" in sample:
        lab = sample["label"]
        if lab.dtype != torch.float32 or lab.ndim != 1:
            raise DataError(
                f"label must be float32 [K], got {lab.dtype} {tuple(lab.shape)}", sample=sid
            )
    return sample


def check_same_crs(
    files: Iterable[tuple[str | Path, str | None]], sample: str | None = None
) -> str | None:
    """Check that every file read for one sample has the same CRS.

    S1 and S2 (and label) files of a sample are co-registered in every published layout;
    a file in another CRS (or without one) means the files do not belong together.

    Args:
        files: ``(path, crs)`` of each file read (crs as a string, None if it has none).
        sample: the sample id, named in the error.

    Returns:
        The common CRS (None when there are no files or none has a CRS).

    Raises:
        DataError: two files with different CRS, naming both.
    """
    first: tuple[str | Path, str | None] | None = None
    for path, crs in files:
        if first is None:
            first = (path, crs)
        elif crs != first[1]:
            raise DataError(
                f"CRS mismatch: {path} is {crs or 'without a CRS'} but {first[0]} is "
                f"{first[1] or 'without a CRS'}; the files of one sample must be co-registered",
                path=path,
                sample=sample,
            )
    return None if first is None else first[1]


def check_unique_ids(ids: Sequence[str], path: str | Path | None, what: str = "sample id") -> None:
    """Refuse an index that lists one sample twice (it would be read, and weigh, twice).

    Raises:
        DataError: a duplicate id, naming it, how often it occurs and the index file.
    """
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            n = sum(1 for j in ids if j == i)
            raise DataError(f"{what} {i!r} is listed {n} times", path=path)
        seen.add(i)


class CollatedBatch(Sequence[Sample]):
    """A batch a dataset assembled itself (``__getitems__``), exactly as :func:`collate` would.

    :func:`collate` returns :attr:`batch` as is (no copy); any other collate function sees a
    sequence of per-sample dicts (views into the batch tensors), so a DataLoader with a
    different ``collate_fn`` still gets ordinary samples.

    Args:
        batch: the collated batch (the layout :func:`collate` produces).
    """

    __slots__ = ("batch",)

    def __init__(self, batch: Batch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return batch_size_of(self.batch)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a batch of {n}")
        sample: Sample = {}
        for key, value in self.batch.items():
            if key == "meta":
                sample[key] = value[index]
            elif key == "present":
                sample[key] = {m: bool(v[index]) for m, v in value.items()}
            else:
                sample[key] = value[index]
        return sample

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack a list of samples into a batch.

    Tensors are stacked along a new first dimension, ``present`` flags become bool tensors
    [B], ``meta`` stays a list of dicts. Every sample must have the same keys. A
    :class:`CollatedBatch` (a batch a dataset already assembled) is returned as is.

    Raises:
        DataError: samples with different keys or shapes.
    """
    if isinstance(samples, CollatedBatch):
        return samples.batch
    if not samples:
        raise DataError("cannot collate an empty list of samples")
    keys = set(samples[0])
    for s in samples[1:]:
        if set(s) != keys:
            raise DataError(
                f"samples in one batch have different keys: {sorted(keys)} vs {sorted(set(s))}",
                sample=str(s.get("meta", {}).get("id")),
            )
    batch: Batch = {}
    for key in keys:
        values = [s[key] for s in samples]
        if key == "meta":
            batch[key] = list(values)
        elif key == "present":
            batch[key] = {m: torch.tensor([bool(v[m]) for v in values]) for m in values[0]}
        elif isinstance(values[0], Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise DataError(f"{key} has different shapes within a batch: {sorted(shapes)}")
            batch[key] = torch.stack(values)
        else:
            batch[key] = torch.as_tensor(values)
    return batch


def batch_size_of(batch: Batch) -> int:
    """Number of samples in a collated batch."""
    for key in ("s2", "s1", "label", "mask"):
        if key in batch:
            return int(batch[key].shape[0])
    raise DataError(f"batch has no image or label key: {sorted(batch)}")
