"""Interrupted writes (issue 19, case 8): temporary files sit beside their target and a
killed run's are removed by the next write of the same target; outputs get the user's
umask (safetensors would create them 0600).

Add a case with one line in :data:`WRITERS`: ``(id, write(path) -> written file, tags of
the temporary files it uses)``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rsfuse.io.atomic import clean_stale_temps, write_atomic
from rsfuse.io.checkpoint_io import AtomicCheckpointIO
from rsfuse.io.geotiff import write_geotiff

from ..inference.conftest import CRS, TRANSFORM, fake_checkpoint, scene_arrays, write_raster
from .conftest import dead_pid, tiny_task


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def text(path: Path) -> Path:
    return write_atomic(path, "hello\n")


def geotiff(path: Path) -> Path:
    return write_geotiff(path, np.zeros((4, 4), np.uint16), crs=CRS, transform=TRANSFORM)


def checkpoint(path: Path) -> Path:
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, path)
    return path


def encoder(path: Path) -> Path:
    from rsfuse.models.checkpoints import export_encoder

    return export_encoder(torch.nn.Linear(2, 2), path, {"bands": ["VV", "VH"]})


def bundle(path: Path) -> Path:
    from rsfuse.inference import export_bundle

    ckpt = fake_checkpoint(tiny_task(), path.parent / "t.ckpt", 32, "ssl4eo-s12-l1c")
    export_bundle(ckpt, path.parent)
    return path


def prediction(path: Path) -> Path:
    from rsfuse.inference import export_bundle
    from rsfuse.inference.predict import Options, predict_scene

    d = path.parent.parent
    ckpt = fake_checkpoint(tiny_task(), d / "t.ckpt", 32, "ssl4eo-s12-l1c")
    b = export_bundle(ckpt, d / "bundle")
    a = scene_arrays(32, 40)
    from rsfuse import bands

    s2 = write_raster(d / "s2.tif", a["s2"], list(bands.S2_L1C_ORDER))
    s1 = write_raster(d / "s1.tif", a["s1"], ["VV", "VH"])
    predict_scene(b, path, s2=s2, s1=s1, clouds="none", options=Options(progress=False))
    return path


#: (id, writer: path -> the written file, temporary-name tags it uses)
WRITERS: list[tuple[str, Callable[[Path], Path], tuple[str, ...]]] = [
    ("write-atomic", text, ("tmp",)),
    ("geotiff", geotiff, ("tmp",)),
    ("lightning-checkpoint", checkpoint, ("tmp",)),
    ("bundle-weights", bundle, ("tmp",)),
    ("encoder-export", encoder, ("tmp",)),
    ("prediction-map", prediction, ("rows", "cog")),
]


@pytest.mark.parametrize("write, tags", [w[1:] for w in WRITERS], ids=[w[0] for w in WRITERS])
def test_a_killed_runs_temporary_files_are_removed_and_modes_follow_the_umask(
    write, tags: tuple[str, ...], umask: int, tmp_path: Path
) -> None:
    target = {
        "bundle": tmp_path / "b" / "model.safetensors",
        "prediction": tmp_path / "p" / "out" / "map.tif",
        "encoder": tmp_path / "e" / "enc.safetensors",
    }.get(write.__name__, tmp_path / "o" / "out.bin")
    target.parent.mkdir(parents=True)
    dead = dead_pid()
    stale = [target.with_name(f".{target.name}.{t}-{dead}{'.tif' * (t != 'tmp')}") for t in tags]
    alive = target.with_name(f".{target.name}.tmp-{os.getpid()}-other")  # not a temp name
    for p in [*stale, alive]:
        p.write_bytes(b"half-written")
    out = write(target)
    assert out.is_file()
    assert not [p for p in stale if p.exists()], "a killed run's temporary file was left"
    assert alive.exists()
    assert mode(out) == 0o666 & ~umask
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".") and p != alive]
    assert not leftovers


def test_a_live_process_temporary_file_is_kept(tmp_path: Path) -> None:
    """Another run writing the same target right now (its pid runs) keeps its file."""
    target = tmp_path / "x.json"
    mine = target.with_name(f".x.json.tmp-{os.getpid()}")
    mine.write_text("{}")
    assert clean_stale_temps(target) == []
    assert mine.exists()


def test_checkpoints_are_written_beside_their_target_not_in_tmpdir(
    tmp_path: Path, monkeypatch
) -> None:
    """Lightning's default writes through ``tempfile.mkstemp`` in ``$TMPDIR``; a kill leaves
    the file there. The rsfuse plugin never touches ``$TMPDIR``."""
    import tempfile

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    seen: list[Path] = []
    real_save = torch.save

    def spy(obj, f, *a, **k):
        seen.append(Path(f))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", spy)
    target = tmp_path / "ckpts" / "last.ckpt"
    checkpoint(target)
    assert seen and all(p.parent == target.parent for p in seen)
    assert not list(tmpdir.iterdir())
    assert torch.load(target, weights_only=True)["state_dict"]["w"].shape == (2,)


def test_a_trainer_with_the_plugin_saves_loadable_checkpoints(tmp_path: Path) -> None:
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.w(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 2)))
    trainer = L.Trainer(
        max_epochs=1, plugins=[AtomicCheckpointIO()], default_root_dir=tmp_path, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Tiny(), data)
    ckpts = sorted(tmp_path.rglob("*.ckpt"))
    assert ckpts and all(torch.load(c, weights_only=True)["state_dict"] for c in ckpts)
    assert not [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name]
