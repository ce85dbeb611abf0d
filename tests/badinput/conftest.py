"""Shared pieces of the bad-input suites: small synthetic datasets (written once per session
by the synthetic writers) copied per case, and helpers that damage one file of a copy.

Each suite is a table: one row per case, ``case(id, ..., error, match)``. A case's
``mutate`` callable damages a fresh copy and returns the path (or key) the error must name.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

#: Synthetic datasets the suites start from: layout → synthesize() arguments.
BASES: dict[str, dict[str, Any]] = {
    "bigearthnet-v1": {"n": 6},
    "bigearthnet-v2": {"n": 6},
    "ssl4eo-s12": {"n": 2, "patch_size": 24},
    "ssl4eo-s12-v1.1": {"n": 2, "patch_size": 24, "samples_per_file": 1},
    "noldo-s12": {"n": 2, "patch_size": 24, "n_downstream": 2, "geotiff": True},
    "dfc2020": {"n": 4, "patch_size": 16},
}


@dataclass
class Case:
    """One bad input: how to damage a fresh copy, what to run, what must be raised.

    Attributes:
        id: test id.
        layout: the synthetic base dataset (a key of :data:`BASES`).
        mutate: ``mutate(root) -> named``: damage the copy under ``root``; return what the
            error message must name (a path or key; ``None``: nothing to check).
        run: ``run(root)``: what a user does (read every sample, convert …).
        error: the exception type expected.
        match: a regular expression the message must match.
        kwargs: extra fields a suite may use.
    """

    id: str
    layout: str
    mutate: Callable[[Path], Any]
    run: Callable[[Path], Any]
    error: type[BaseException]
    match: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``bases(layout)``: the synthetic base dataset of ``layout`` (written on first use)."""
    from rsfuse.data.synthetic import synthesize

    made: dict[str, Path] = {}

    def get(layout: str) -> Path:
        if layout not in made:
            root = tmp_path_factory.mktemp(layout)
            kw = dict(BASES[layout])
            real = layout.removesuffix("-half")
            synthesize(real, root, seed=11, workers=1, progress=False, **kw)
            made[layout] = root
        return made[layout]

    return get


@pytest.fixture
def fresh(bases: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """``fresh(layout)``: a private copy of the base dataset, free to damage."""

    count = iter(range(1 << 30))

    def copy(layout: str) -> Path:
        dst = tmp_path / f"{layout}-{next(count)}"
        shutil.copytree(bases(layout), dst)
        return dst

    return copy


def check_case(
    case: Case, root: Path, damaged: Callable[[Path], Any] | None = None
) -> BaseException:
    """Damage ``root``, run the case and check the error type, message and named file
    (``damaged(root)`` is called between the damage and the run)."""
    named = case.mutate(root)
    if damaged is not None:
        damaged(root)
    with pytest.raises(case.error, match=case.match) as info:
        case.run(root)
    if named is not None:
        text = str(info.value)
        want = str(named)
        assert want in text or Path(want).name in text, f"{want} not named in: {text}"
    return info.value


# ---------------------------------------------------------------------------- files
def first(root: Path, pattern: str) -> Path:
    """The first file (sorted) under ``root`` matching the glob ``pattern``."""
    found = sorted(root.glob(pattern))
    assert found, f"no {pattern} under {root}"
    return found[0]


def rewrite_tif(
    path: Path,
    *,
    dtype: str | None = None,
    bands: int | None = None,
    crs: str | bool | None = False,
    values: Callable[[np.ndarray], np.ndarray] | None = None,
    driver: str = "GTiff",
) -> Path:
    """Rewrite a GeoTIFF in place with another dtype, band count, CRS, values or format.

    ``bands=2`` stacks the band twice; ``crs=None`` drops the CRS (``False`` keeps it);
    ``driver="PNG"`` writes a PNG under the same ``.tif`` name.
    """
    with rasterio.open(path) as src:
        data = src.read()
        profile = src.profile.copy()
    if values is not None:
        data = values(data)
    if bands is not None:
        data = np.concatenate([data] * bands)[:bands]
    if dtype is not None:
        data = data.astype(dtype)
    profile.update(count=data.shape[0], dtype=data.dtype.name)
    if crs is not False:
        profile["crs"] = crs
    if driver != "GTiff":
        profile = {
            "driver": driver, "width": data.shape[2], "height": data.shape[1],
            "count": data.shape[0], "dtype": data.dtype.name,
        }  # fmt: skip
        data = data.astype("uint8")
        profile["dtype"] = "uint8"
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def tiny_task(modalities: tuple[str, ...] = ("s1", "s2")) -> Any:
    """A small S1+S2 segmentation U-Net (MobileNetV2 encoder, 5 classes, 13 L1C bands)."""
    import torch

    from rsfuse.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    return SegmentationTask(
        modalities=list(modalities), s2_bands="all", num_classes=5, architecture="unet",
        encoder="mobilenet_v2", decoder_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
        class_names=["water", "trees", "crops", "built", "bare"],
    ).eval()  # fmt: skip


def truncate(pattern: str, fraction: float = 0.5) -> Callable[[Path], Path]:
    def mutate(root: Path) -> Path:
        path = first(root, pattern)
        with open(path, "r+b") as f:
            f.truncate(int(path.stat().st_size * fraction))
        return path

    return mutate


def isolated(run: Callable[[Path], None]) -> Callable[[Path], None]:
    """Run in a forked child: a reader killed by a signal (SIGBUS) fails the test instead
    of the whole session. The child's exception is re-raised here (type and message)."""

    def wrapped(root: Path) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            try:
                run(root)
                result: tuple[type[BaseException] | None, str] = (None, "")
            except BaseException as e:  # reported to the parent
                result = (type(e), str(e))
            with os.fdopen(w, "wb") as f:
                pickle.dump(result, f)
            os._exit(0)
        os.close(w)
        try:
            with os.fdopen(r, "rb") as f:
                data = f.read()
        except BaseException:  # the deadline passed: end the child, then fail
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            raise AssertionError(f"the reader was killed by signal {os.WTERMSIG(status)}")
        cls, message = pickle.loads(data)
        if cls is not None:
            err = cls.__new__(cls)
            Exception.__init__(err, message)
            raise err

    return wrapped


def dead_pid() -> int:
    """The pid of a process that has exited (for temporary files of a "killed" run)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def fail(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
