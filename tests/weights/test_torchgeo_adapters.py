"""rsfuse ↔ TorchGeo: rsfuse datamodules feeding TorchGeo trainers, TorchGeo datasets feeding
rsfuse tasks. The TorchGeo tests run when the ``[bench]`` extra (torchgeo) is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rsfuse import bands
from rsfuse.errors import DataError
from rsfuse.weights.torchgeo_adapters import (
    TORCHGEO_BIGEARTHNET_ORDER,
    stack_image,
    torchgeo_channels,
)

L2A = bands.S2_L2A_ORDER


def test_stacked_image_follows_torchgeo_order() -> None:
    s1 = torch.stack([torch.full((2, 4, 4), 1.0), torch.full((2, 4, 4), 2.0)], 1)  # VV=1, VH=2
    s2 = torch.arange(12.0).view(1, 12, 1, 1).expand(2, 12, 4, 4) + 10
    batch = {"s1": s1, "s2": s2}
    chans = torchgeo_channels(["s1", "s2"], L2A)
    assert chans == TORCHGEO_BIGEARTHNET_ORDER
    img = stack_image(batch, chans, L2A)
    assert img[0, :, 0, 0].tolist() == [2.0, 1.0, *[10.0 + i for i in range(12)]]
    rs = stack_image(batch, torchgeo_channels(["s1", "s2"], L2A, "rsfuse"), L2A)
    assert rs[0, :, 0, 0].tolist() == [*[10.0 + i for i in range(12)], 1.0, 2.0]
    with pytest.raises(DataError, match="B10"):
        stack_image(batch, ["B10"], L2A)


@pytest.fixture(scope="module")
def tg_ben_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic BigEarthNet v1 with TorchGeo's split file names beside rsfuse's."""
    from rsfuse.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("tg_ben_v1")
    synthesize("bigearthnet-v1", root, n=24, seed=11, workers=1, progress=False)
    for split in ("train", "val", "test"):
        shutil.copy(root / f"{split}.csv", root / f"bigearthnet-{split}.csv")
    return root


def _torchgeo():
    return pytest.importorskip("torchgeo.datasets", reason="TorchGeo is the optional [bench] extra")


def test_torchgeo_bigearthnet_becomes_rsfuse_samples(tg_ben_v1: Path) -> None:
    """TorchGeo's stack (VH, VV, S2) → ``s1`` = VV, VH and ``s2`` in registry order, labels
    in rsfuse's class order: equal to rsfuse's own reader on the same patch (S1 and the
    10 m S2 bands, which neither reader resamples). TorchGeo reads every band with
    ``out_dtype='int32'``, so its S1 is the dB value rounded to an integer (GDAL: half away
    from zero)."""
    tgd = _torchgeo()
    from rsfuse.data.bigearthnet import BigEarthNetV1
    from rsfuse.weights.torchgeo_adapters import FromTorchGeo

    tg = tgd.BigEarthNet(root=str(tg_ben_v1), split="train", bands="all", num_classes=19)
    ours = FromTorchGeo(tg)
    ref = BigEarthNetV1(tg_ben_v1, split="train", include_snow=True, include_cloudy=True)
    by_id = {ref[i]["meta"]["id"]: i for i in range(len(ref))}
    ten_m = [L2A.index(b) for b in ("B02", "B03", "B04", "B08")]
    for i in range(len(ours)):
        s = ours[i]
        r = ref[by_id[Path(tg.folders[i]["s2"]).name]]
        rounded = torch.sign(r["s1"]) * torch.floor(r["s1"].abs() + 0.5)
        assert torch.equal(s["s1"], rounded)
        assert not torch.equal(s["s1"][0], s["s1"][1])  # VV and VH do differ
        assert torch.equal(s["s2"][ten_m], r["s2"][ten_m])
        assert torch.equal(s["label"], r["label"])
        assert s["present"] == {"s1": True, "s2": True}


def test_rsfuse_datamodule_trains_a_torchgeo_trainer(tg_ben_v1: Path, tmp_path: Path) -> None:
    _torchgeo()
    from lightning import Trainer
    from torchgeo.trainers import MultiLabelClassificationTask

    from rsfuse.data.datamodules import BigEarthNetDataModule
    from rsfuse.weights.torchgeo_adapters import TorchGeoDataModule

    dm = BigEarthNetDataModule(
        str(tg_ben_v1), version="v1", batch_size=4, include_snow=True, include_cloudy=True
    )
    adapter = TorchGeoDataModule(dm)
    assert adapter.channels == TORCHGEO_BIGEARTHNET_ORDER
    adapter.setup("fit")
    raw = next(iter(adapter.train_dataloader()))
    batch = adapter.on_after_batch_transfer(raw, 0)
    normed = dm.normalize(raw)
    assert torch.equal(batch["image"][:, 0], normed["s1"][:, 1])  # VH first
    assert torch.equal(batch["image"][:, 2:], normed["s2"])
    assert batch["label"].dtype == torch.long and batch["label"].shape[1] == 19
    task = MultiLabelClassificationTask(
        model="resnet18", in_channels=14, num_classes=19, loss="bce"
    )
    trainer = Trainer(
        fast_dev_run=True, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, datamodule=adapter)


def test_torchgeo_dataset_trains_an_rsfuse_task(tg_ben_v1: Path, tmp_path: Path) -> None:
    tgd = _torchgeo()
    from lightning import Trainer

    from rsfuse.tasks.classification import MultiLabelClassificationTask
    from rsfuse.weights.torchgeo_adapters import FromTorchGeo, FromTorchGeoDataModule

    train = FromTorchGeo(tgd.BigEarthNet(root=str(tg_ben_v1), split="train", bands="all"))
    val = FromTorchGeo(tgd.BigEarthNet(root=str(tg_ben_v1), split="val", bands="all"))
    dm = FromTorchGeoDataModule(train, val, stats="bigearthnet-v1", batch_size=4)
    assert dm.modalities == ("s1", "s2") and dm.s2_band_names == L2A
    task = MultiLabelClassificationTask(
        modalities=["s1", "s2"], backbone="resnet18", fusion="concat", lr=1e-3
    )
    trainer = Trainer(
        fast_dev_run=True, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)


def test_torchgeo_ssl4eo_s1_keeps_vv_vh(tmp_path: Path) -> None:
    """TorchGeo's SSL4EOS12 gives S1 as VV, VH (its band list): unchanged, and equal to one
    of rsfuse's four seasons of the same location."""
    tgd = _torchgeo()
    from rsfuse.data.ssl4eo import SSL4EOS12
    from rsfuse.data.synthetic import synthesize
    from rsfuse.weights.torchgeo_adapters import FromTorchGeo

    synthesize("ssl4eo-s12", tmp_path, n=2, seed=5, workers=1, progress=False)
    ours = FromTorchGeo(tgd.SSL4EOS12(root=str(tmp_path), split="s1", seasons=1))
    s = ours[0]
    assert set(s) == {"s1", "present", "meta"} and s["s1"].shape == (2, 264, 264)
    ref = SSL4EOS12(tmp_path, modalities=["s1"], season="all")[0]["s1"]  # [4, 2, H, W]
    assert any(torch.equal(s["s1"], ref[k]) for k in range(4))
    assert not torch.equal(s["s1"][0], s["s1"][1])
