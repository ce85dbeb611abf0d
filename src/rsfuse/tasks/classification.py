"""Multi-label scene classification (BigEarthNet-MM, 19 classes).

One LightningModule: a timm backbone on early-fused S1+S2 channels (or one sensor), trained
with ``MultiLabelSoftMarginLoss`` and scored with torchmetrics micro/macro average precision
and micro/macro F1 accumulated over the whole split (never averaged per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from rsfuse import bands
from rsfuse.data.classes import BEN19
from rsfuse.errors import ConfigError
from rsfuse.models.backbones import build_backbone
from rsfuse.models.fusion import early_fusion_input
from rsfuse.optim import build_optimizer, warmup_cosine_scheduler


def multilabel_metrics(num_classes: int, prefix: str, threshold: float = 0.5) -> MetricCollection:
    """Micro/macro mAP and F1 over a whole split, as a torchmetrics collection."""
    return MetricCollection(
        {
            "mAP_micro": MultilabelAveragePrecision(num_classes, average="micro"),
            "mAP_macro": MultilabelAveragePrecision(num_classes, average="macro"),
            "F1_micro": MultilabelF1Score(num_classes, threshold=threshold, average="micro"),
            "F1_macro": MultilabelF1Score(num_classes, threshold=threshold, average="macro"),
        },
        prefix=prefix,
    )


class MultiLabelClassificationTask(LightningModule):
    """Multi-label classifier on early-fused Sentinel-1 + Sentinel-2 input.

    Args:
        modalities: sensors the model sees (``["s1"]``, ``["s2"]`` or both). The datamodule
            may provide more; the rest is ignored.
        s2_bands: S2 band subset name or list (see :func:`rsfuse.bands.s2_bands`); must match
            what the datamodule reads.
        s2_product: ``L2A`` (BigEarthNet) or ``L1C``.
        num_classes: number of labels.
        class_names: label names for reports (default: BigEarthNet 19 classes).
        backbone: timm model name.
        backbone_kwargs: timm constructor arguments (``img_size``, ``patch_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ``global_pool`` …).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay (not applied to norms, biases, tokens).
        warmup_epochs: linear warm-up length in epochs (fractional allowed).
        min_lr_ratio: final lr as a fraction of ``lr`` at the end of the cosine.
        threshold: score threshold for F1.
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | list[str] = "all",
        s2_product: str = "L2A",
        num_classes: int = 19,
        class_names: list[str] | None = None,
        backbone: str = "vit_small_patch16_224",
        backbone_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.modalities = bands.check_modalities(modalities)
        self.s2_band_names = bands.s2_bands(s2_bands, s2_product) if "s2" in self.modalities else ()
        self.channels = bands.early_fusion_channels(self.modalities, self.s2_band_names)
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(
                f"{len(class_names)} class names for {num_classes} classes", key="class_names"
            )
        self.class_names = list(
            class_names
            or (BEN19 if num_classes == 19 else [f"class_{i}" for i in range(num_classes)])
        )
        self.model = build_backbone(backbone, len(self.channels), num_classes, backbone_kwargs)
        self.loss_fn = nn.MultiLabelSoftMarginLoss()
        self.val_metrics = multilabel_metrics(num_classes, "val/", threshold)
        self.test_metrics = multilabel_metrics(num_classes, "test/", threshold)
        self.test_per_class_ap = MultilabelAveragePrecision(num_classes, average=None)
        self.last_test_per_class_ap: list[float] | None = None

    # ------------------------------------------------------------------ forward
    def inputs(self, batch: dict) -> Tensor:
        """Early-fused input [B, C, H, W] for this model's modalities."""
        x = early_fusion_input(batch, self.modalities)
        if x.shape[1] != len(self.channels):
            raise ConfigError(
                f"the model expects {len(self.channels)} channels {list(self.channels)} but the "
                f"data gives {x.shape[1]}; set model s2_bands to the datamodule's s2_bands",
                key="model.s2_bands",
            )
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, K] for an early-fused input [B, C, H, W]."""
        return self.model(x)

    def _shared_step(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(self.inputs(batch))
        target = batch["label"]
        return self.loss_fn(logits, target), logits, target

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, _, _ = self._shared_step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["label"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, logits, target = self._shared_step(batch)
        bs = target.shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.val_metrics.update(logits.sigmoid(), target.long())

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True, sync_dist=False)
        self.val_metrics.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        loss, logits, target = self._shared_step(batch)
        self.log("test/loss", loss, batch_size=target.shape[0], sync_dist=True)
        scores = logits.sigmoid()
        self.test_metrics.update(scores, target.long())
        self.test_per_class_ap.update(scores, target.long())

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()
        per_class = self.test_per_class_ap.compute()
        self.last_test_per_class_ap = [float(v) for v in per_class]
        self.test_per_class_ap.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, Any]:
        scores = self(self.inputs(batch)).sigmoid()
        return {"ids": [m.get("id") for m in batch.get("meta", [])], "scores": scores.cpu()}

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        opt = build_optimizer(self, lr=hp.lr, weight_decay=hp.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = round(total * hp.warmup_epochs / epochs) if total > 0 else 0
        sched = warmup_cosine_scheduler(opt, warmup, max(total, 1), hp.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def per_class_table(self) -> list[tuple[str, float]]:
        """(class name, AP) pairs of the last test run."""
        if self.last_test_per_class_ap is None:
            return []
        return list(zip(self.class_names, self.last_test_per_class_ap))
