"""The ``speed`` switches, the datamodule's loader paths and exact split means."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rsfuse.training.speed import SpeedSettings, compile_targets, is_convnet


def test_auto_switches_follow_the_device() -> None:
    vit = nn.Sequential(nn.Linear(4, 4))
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    s = SpeedSettings()
    gpu = s.resolve(torch.device("cuda", 0), cnn)
    assert (gpu.compile, gpu.channels_last, gpu.pin_memory, gpu.tf32) == (True,) * 4
    assert gpu.transforms_in_workers is False
    assert s.resolve(torch.device("cuda", 0), vit).channels_last is False  # ConvNets only
    cpu = s.resolve(torch.device("cpu"), cnn)
    assert (cpu.compile, cpu.channels_last, cpu.pin_memory, cpu.tf32) == (False,) * 4
    assert cpu.transforms_in_workers is True
    off = SpeedSettings(compile=False, pin_memory=False).resolve(torch.device("cuda", 0), cnn)
    assert off.compile is False and off.pin_memory is False and off.channels_last is True
    assert is_convnet(cnn) and not is_convnet(vit)


def test_compile_targets_are_blocks_or_networks() -> None:
    from rsfuse.tasks.classification import MultiLabelClassificationTask
    from rsfuse.tasks.segmentation import SegmentationTask

    vit = MultiLabelClassificationTask(
        modalities=["s2"], backbone="gated_vit",
        backbone_kwargs={"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2,
                         "num_heads": 2},
    )  # fmt: skip
    targets = compile_targets(vit)
    assert len(targets) == 2 and all(type(t).__name__ == "Block" for t in targets)
    seg = SegmentationTask(
        modalities=["s2"], num_classes=3, architecture="pspnet", encoder="resnet18",
        decoder_kwargs={"encoder_depth": 3},
    )  # fmt: skip
    assert compile_targets(seg) == [seg.model]


def test_unused_encoder_stages_are_frozen() -> None:
    from rsfuse.tasks.segmentation import SegmentationTask

    seg = SegmentationTask(
        modalities=["s2"], num_classes=3, architecture="pspnet", encoder="resnet18",
        decoder_kwargs={"encoder_depth": 3},
    )  # fmt: skip
    batch = {"s2": torch.randn(2, 13, 32, 32), "mask": torch.randint(0, 3, (2, 32, 32))}
    seg.loss(seg(batch), batch["mask"]).backward()
    # every trainable parameter gets a gradient (DDP reduces a bucket only when all do)
    assert all(p.grad is not None for p in seg.parameters() if p.requires_grad)
    assert not any(p.requires_grad for p in seg.model.encoder.layer3.parameters())
    assert "model.encoder.layer4.0.conv1.weight" in seg.state_dict()  # keys kept


def test_split_mean_weights_batches_by_their_samples() -> None:
    from rsfuse.metrics.split_mean import SplitMean

    m = SplitMean()
    m.update(torch.tensor(1.0), 2)
    m.update(torch.tensor(4.0), 1)
    assert float(m.compute()) == pytest.approx(2.0)  # (2·1 + 1·4) / 3


def test_workers_transform_as_the_device_would(ben_v2_root, ben_v2_store) -> None:  # type: ignore[no-untyped-def]
    from rsfuse.data.datamodules import BigEarthNetDataModule

    dm = BigEarthNetDataModule(str(ben_v2_root), store=str(ben_v2_store), batch_size=4,
                               num_workers=1, augmentation=None)  # fmt: skip
    dm.setup("fit")
    device_path = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    dm.transforms_in_workers = True
    loader = dm.val_dataloader()
    in_workers = next(iter(loader))
    assert dm.on_after_batch_transfer(in_workers, 0) is in_workers  # not normalised twice
    for k in ("s1", "s2"):
        torch.testing.assert_close(in_workers[k], device_path[k])
    moved = dm.transfer_batch_to_device(in_workers, torch.device("cpu"), 0)
    assert moved["meta"] is in_workers["meta"] and moved["s2"] is in_workers["s2"]
    del loader


def test_worker_transforms_draw_from_the_batch_and_the_run_seed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Training transforms in loader workers: the same batch of the same run gets the same
    random draws (what a resumed run needs), another batch or another run seed does not."""
    from rsfuse.data.datamodules.base import WorkerTransforms
    from rsfuse.data.transforms import BatchAugmentation, Normalize, RandomClouds, RandomSensorDrop

    bands = ["B02", "B03", "B04", "B08"]

    def samples(tag: str) -> list[dict]:
        g = torch.Generator().manual_seed(0)
        out = []
        for i in range(4):
            s2 = 500 + 3000 * torch.rand(4, 16, 16, generator=g)
            s1 = -12 + torch.randn(2, 16, 16, generator=g)
            present = {"s1": True, "s2": True}
            meta = {"id": f"{tag}{i}"}
            out.append(
                {"s2": s2, "s1": s1, "label": torch.zeros(19), "present": present, "meta": meta}
            )
        return out

    wt = WorkerTransforms(
        Normalize.from_stats("bigearthnet-v2", list(bands)),
        BatchAugmentation(sensor_drop=RandomSensorDrop(p=0.5)),
        RandomClouds(list(bands), p=1.0),
    )
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    a, b = wt(samples("x")), wt(samples("x"))
    torch.manual_seed(123)  # the worker's own random state does not matter
    c = wt(samples("x"))
    for k in ("s1", "s2", "valid"):
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), k
    assert not torch.equal(a["s2"], wt(samples("y"))["s2"])  # other samples: other draws
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")
    assert not torch.equal(a["s2"], wt(samples("x"))["s2"])  # other run seed: other draws
