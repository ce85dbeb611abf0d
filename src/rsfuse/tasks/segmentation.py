"""Land-cover semantic segmentation: the downstream task of CromSS (§IV-A).

One LightningModule for every segmentation network of the project, built on
segmentation-models-pytorch (smp):

* ``architecture`` ``unet`` / ``pspnet`` / ``deeplabv3plus`` / ``fpn`` / ``upernet`` with any
  smp encoder (``resnet50`` as in the paper, ``resnet18``, or a timm one as ``tu-<name>``);
  the paper nests ResNet-50 in PSPNet for DFC2020, DeepLabV3+ for SSL4EO-S12@DW and FPN for
  SSL4EO-S12@OSM;
* ``architecture="upernet"`` with a ViT encoder (``gated_vit`` =
  :class:`~rsfuse.models.vit.GatedViT`, or a timm ViT name such as a DINO-MM
  ``vit_small_patch16_224``): :class:`~rsfuse.models.upernet.ViTUPerNet`, 4 blocks → BEiT
  pyramid → UPerNet decoder (the paper's "UperNets for ViT backbones").

The input is the early-fused stack of the requested sensors (S2 bands first, then VV, VH;
:func:`~rsfuse.models.fusion.early_fusion_input`), so ``in_channels`` follows the band
subset. Inputs are padded (reflect) to the network's stride and the logits cropped back, so
any patch size works (120, 256, 264 px …).

Encoder weights come from an rsfuse checkpoint or an exported safetensors file
(``encoder_checkpoint`` + ``checkpoint_prefix``), loaded with key and shape checks
(:func:`~rsfuse.models.checkpoints.load_encoder`). ``freeze_encoder=True`` is the paper's
"Frozen" setting (efix: encoder weights and BatchNorm statistics fixed, encoder kept in eval
mode); ``False`` is "Fine-tuned" (etr).

Loss: ``ce_weight · CE + dice_weight · Dice`` (smp ``DiceLoss``, multiclass), both skipping
``ignore_index`` pixels (unlabelled areas of DW / OSM masks, ignored DFC2020 classes).
Metrics: OA, AA, mIoU, mF1 (and per-class IoU, the confusion matrix) from one confusion
matrix accumulated over the whole split (:mod:`rsfuse.metrics.segmentation`). At test time
a confusion-matrix PNG and a PNG grid of S2 true colour, S1 false colour, reference and
prediction are written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec
from rsfuse.metrics.segmentation import metrics_from_confusion
from rsfuse.models.checkpoints import load_encoder
from rsfuse.models.fusion import drop_modalities, early_fusion_input
from rsfuse.models.segmentation import build_segmentation_model, pad_to_multiple
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings

Architecture = Literal["unet", "pspnet", "deeplabv3plus", "fpn", "upernet"]


class SegmentationTask(RsfuseModule):
    """Semantic segmentation on Sentinel-1 and/or Sentinel-2 (early fusion).

    Args:
        modalities: sensors the model sees (``["s2"]``, ``["s1"]`` or both, stacked S2
            first).
        s2_bands: S2 band subset name or list (see :func:`rsfuse.bands.s2_bands`); must
            match the datamodule's.
        s2_product: ``L1C`` (13 bands: SSL4EO-S12 / NoLDO-S12 / DFC2020) or ``L2A``.
        num_classes: K (DW 9, OSM 13, DFC2020 8 used classes).
        class_names: K names for tables and figures (default ``class_0`` …).
        ignore_index: mask value of unlabelled pixels (skipped by loss and metrics).
        architecture: ``unet``, ``pspnet``, ``deeplabv3plus``, ``fpn`` or ``upernet``.
        encoder: smp encoder name (``resnet50``), ``tu-<timm name>``, or for ``upernet``
            ``gated_vit`` / a timm ViT name.
        encoder_kwargs: encoder constructor arguments (ViT sizes; smp ``tu-`` extras).
        decoder_kwargs: architecture arguments (smp: ``encoder_depth``,
            ``decoder_channels`` …; ViT UPerNet: ``out_indices``, ``decoder_channels``).
        encoder_weights: smp weights name; None (default) = random init (no downloads).
        encoder_checkpoint: encoder weight file (``.safetensors``, torch state dict or
            Lightning checkpoint) loaded with key checks; None = random init.
        checkpoint_prefix: key prefix of the encoder in that file (``encoder.`` for an smp
            U-Net state dict, ``model.encoder.`` for a checkpoint of this task).
        freeze_encoder: the paper's "Frozen" columns: encoder weights get no gradient and
            the encoder stays in eval mode (BatchNorm statistics fixed).
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice term.
        optimizer: ``adam`` (CromSS code, default), ``adamw`` or ``sgd``.
        lr: peak learning rate (CromSS: 5e-4).
        weight_decay: weight decay (CromSS code: 1e-8; weights only).
        schedule: ``cosine_to_floor`` (CromSS code, default): cosine from ``lr`` to
            ``final_lr`` over ``cosine_epochs`` epochs, then flat, stepped per epoch
            (timm's CosineLRScheduler; see :mod:`rsfuse.training.optim`);
            ``warmup_cosine``: per-step linear warm-up over ``warmup_epochs`` then cosine
            to ``min_lr_ratio · lr``.
        cosine_epochs: T of ``cosine_to_floor`` (CromSS: 40 of 50 epochs; None: the
            trainer's ``max_epochs``).
        final_lr: floor of ``cosine_to_floor`` (CromSS: 1e-5).
        warmup_epochs: linear warm-up in epochs (``warmup_cosine``; fractional allowed).
        min_lr_ratio: final lr as a fraction of ``lr`` (``warmup_cosine``).
        absent_classes: 0/0 convention of the metrics for classes absent from a split
            (:func:`~rsfuse.metrics.segmentation.metrics_from_confusion`): ``one`` (CromSS
            code, default) or ``exclude``.
        test_drop: modalities to mark absent at test time (e.g. ``["s2"]``: S1 only).
        plot_dir: folder for the test-time PNGs (default: the trainer's log dir).
        plot_samples: number of test samples in the PNG grid (0: no figures).
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s2",),
        s2_bands: str | list[str] = "all",
        s2_product: str = "L1C",
        num_classes: int = 9,
        class_names: list[str] | None = None,
        ignore_index: int = 255,
        architecture: Architecture = "unet",
        encoder: str = "resnet50",
        encoder_kwargs: dict[str, Any] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        encoder_weights: str | None = None,
        encoder_checkpoint: str | None = None,
        checkpoint_prefix: str = "",
        freeze_encoder: bool = False,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        optimizer: Literal["adam", "adamw", "sgd"] = "adam",
        lr: float = 5e-4,
        weight_decay: float = 1e-8,
        schedule: Literal["cosine_to_floor", "warmup_cosine"] = "cosine_to_floor",
        cosine_epochs: int | None = 40,
        final_lr: float = 1e-5,
        warmup_epochs: float = 0.0,
        min_lr_ratio: float = 0.0,
        absent_classes: Literal["one", "exclude"] = "one",
        test_drop: list[str] | None = None,
        plot_dir: str | None = None,
        plot_samples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.set_input_spec(InputSpec.create(modalities, s2_bands, s2_product))
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}", key="num_classes")
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(
                f"{len(class_names)} class names for {num_classes} classes", key="class_names"
            )
        if 0 <= ignore_index < num_classes:
            raise ConfigError(
                f"ignore_index {ignore_index} is a class index (num_classes {num_classes})",
                key="ignore_index",
            )
        self.class_names = list(class_names or [f"class_{i}" for i in range(num_classes)])
        self.ignore_index = ignore_index
        self.test_drop = list(test_drop or [])
        self.model = build_segmentation_model(
            architecture,
            encoder,
            len(self.channels),
            num_classes,
            encoder_kwargs,
            decoder_kwargs,
            encoder_weights,
        )
        if encoder_checkpoint:
            load_encoder(self.model.encoder, encoder_checkpoint, checkpoint_prefix)
            print(f"[rsfuse] loaded the encoder from {encoder_checkpoint}")
        if freeze_encoder:
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
            self.model.encoder.eval()
        self.dice = smp.losses.DiceLoss("multiclass", from_logits=True, ignore_index=ignore_index)
        self.val_cm = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.test_cm = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.last_val_metrics: dict[str, Any] | None = None
        self.last_test_metrics: dict[str, Any] | None = None
        self._plot_buffer: list[dict[str, Tensor]] = []

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> SegmentationTask:
        """As ``nn.Module.train``; a frozen encoder stays in eval mode (BN stats fixed)."""
        super().train(mode)
        if self.hparams.freeze_encoder:
            self.model.encoder.eval()
        return self

    def on_train_epoch_start(self) -> None:
        """Lightning restores captured module modes, never calling ``train()``: re-freeze."""
        if self.hparams.freeze_encoder:
            self.model.encoder.eval()

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> Tensor:
        """Logits [B, K, H, W] of a batch (``s1`` [B, 2, H, W], ``s2`` [B, C, H, W])."""
        self.check_batch(batch)
        x = early_fusion_input(batch, self.modalities)  # [B, C_s2 + 2, H, W]
        x, (h, w) = pad_to_multiple(x, self.model.pad_multiple)
        return self.model(x)[..., :h, :w]

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """``ce_weight · CE + dice_weight · Dice`` over labelled pixels of [B, K, H, W] vs
        [B, H, W]; zero (with a graph) when every pixel is unlabelled."""
        hp = self.hparams
        ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index)
        if not torch.isfinite(ce):  # no labelled pixel in the batch: CE is 0/0
            return logits.sum() * 0.0
        return hp.ce_weight * ce + hp.dice_weight * self.dice(logits, target)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        logits = self(batch)
        loss = self.loss(logits, batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch)
        target = batch["mask"]
        loss = self.loss(logits, target)
        self.log("val/loss", loss, prog_bar=True, batch_size=logits.shape[0], sync_dist=True)
        self.val_cm.update(logits.argmax(dim=1), target)

    def _summary(self, cm: MulticlassConfusionMatrix, prefix: str) -> dict[str, Any]:
        m = metrics_from_confusion(cm.compute(), self.class_names, self.hparams.absent_classes)
        cm.reset()
        self.log_dict({f"{prefix}/{k}": float(m[k]) for k in ("OA", "AA", "mIoU", "mF1")})
        return m

    def on_validation_epoch_end(self) -> None:
        self.last_val_metrics = self._summary(self.val_cm, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        if self.test_drop:
            batch = drop_modalities(batch, self.test_drop)
        logits = self(batch)
        target = batch["mask"]
        self.log("test/loss", self.loss(logits, target), batch_size=logits.shape[0])
        pred = logits.argmax(dim=1)
        self.test_cm.update(pred, target)
        self._keep_for_plot(batch, pred)

    def on_test_epoch_start(self) -> None:
        self._plot_buffer = []

    def on_test_epoch_end(self) -> None:
        m = self._summary(self.test_cm, "test")
        for name, v in m["IoU"].items():
            if not math.isnan(v):
                self.log(f"test/IoU/{name}", v)
        self.last_test_metrics = m
        if self.hparams.plot_samples > 0 and self.trainer.is_global_zero:
            self.write_figures(self._figure_dir())
        self._plot_buffer = []

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, Any]:
        pred = self(batch).argmax(dim=1)
        return {"ids": [m.get("id") for m in batch.get("meta", [])], "mask": pred.cpu()}

    # ------------------------------------------------------------------ figures
    def _keep_for_plot(self, batch: dict, pred: Tensor) -> None:
        have = sum(b["mask"].shape[0] for b in self._plot_buffer)
        need = self.hparams.plot_samples - have
        if need <= 0:
            return
        keep = {"mask": batch["mask"][:need].cpu(), "pred": pred[:need].cpu()}
        for m in ("s1", "s2"):
            if m in batch:
                keep[m] = batch[m][:need].detach().float().cpu()
        self._plot_buffer.append(keep)

    def _figure_dir(self) -> Path:
        if self.hparams.plot_dir:
            return Path(self.hparams.plot_dir)
        t = self.trainer
        return Path(t.log_dir or t.default_root_dir)

    def write_figures(self, out: Path) -> list[Path]:
        """Write ``confusion_matrix.png`` and ``samples.png`` of the last test run into
        ``out``; returns the paths written."""
        from rsfuse.plots.segmentation import plot_confusion_matrix, plot_segmentation_samples

        written = []
        if self.last_test_metrics is not None:
            miou = 100 * self.last_test_metrics["mIoU"]
            written.append(
                plot_confusion_matrix(
                    torch.tensor(self.last_test_metrics["confusion"]).numpy(),
                    self.class_names,
                    out / "confusion_matrix.png",
                    title=f"test confusion matrix (mIoU {miou:.1f})",
                )
            )
        if self._plot_buffer:
            cat = {
                k: torch.cat([b[k] for b in self._plot_buffer]).numpy()
                for k in self._plot_buffer[0]
            }
            rgb = None
            if all(b in self.s2_band_names for b in ("B04", "B03", "B02")):
                rgb = [self.s2_band_names.index(b) for b in ("B04", "B03", "B02")]
            written.append(
                plot_segmentation_samples(
                    cat.get("s2"),
                    cat.get("s1"),
                    cat["mask"],
                    cat["pred"],
                    self.class_names,
                    out / "samples.png",
                    rgb_index=rgb,
                    ignore_index=self.ignore_index,
                )
            )
        return written

    # ------------------------------------------------------------------ optim
    def optim_settings(self) -> OptimSettings:
        return OptimSettings.from_hparams(self.hparams)
