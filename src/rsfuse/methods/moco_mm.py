"""MoCo-MM: MoCo v3 on early-fused SAR + optical channels with Random Sensor Drop.

The contrastive counterpart of DINO-MM (the SSL4EO-S12 benchmark compares MoCo and
DINO on the same data): one ViT on the stacked S2 bands and S1 VV, VH, two augmented views
per batch, each of which independently keeps both sensors (50 %), S1 only (25 %) or S2 only
(25 %)::

    x1, x2 = Aug(x), Aug(x)                   # crops + intensity ops + RandomSensorDrop
    loss = ctr(q1, k2) + ctr(q2, k1)          # rsfuse.models.moco.MoCoV3 (InfoNCE, 2τ)
    θ_k ← m θ_k + (1 − m) θ_q                 # m: 0.99 → 1 cosine over (fractional) epochs

The augmentation is MoCo v3's two-crop recipe (blur 1.0 / 0.1, solarize 0 / 0.2, grayscale
0.2, colour 0.8) made multispectral-aware by
:class:`~rsfuse.data.transforms.MultiCropAugmentation` with no local crops, with the same
intensity ops as DINO-MM's code (multiplicative brightness and contrast, grayscale and
solarisation on the stacked channels), so the two methods differ only in their objective. AdamW with
linear warm-up and cosine decay per step; ``lr × global batch / 256``. At the end of ``fit``
the online (base) encoder, which MoCo v3 evaluates, is written with
:meth:`~rsfuse.training.module.RsfuseModule.write_encoder` into the run folder
(``<trainer.default_root_dir>/encoders/moco_mm_encoder.safetensors``, or ``export_path``:
relative under the run folder, absolute as given).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rsfuse.inputs import InputSpec
from rsfuse.methods.views import FusedViews
from rsfuse.models.fusion import early_fusion_input
from rsfuse.models.moco import MoCoV3
from rsfuse.models.vit_small import MOCO_VIT_SMALL, build_vit, vit_export_config
from rsfuse.training.health import HealthChecked, HealthOutputs, at_size
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings
from rsfuse.training.schedules import cosine_momentum

__all__ = ["MoCoMM"]


class MoCoMM(FusedViews, HealthChecked, RsfuseModule):
    """MoCo v3 with Random Sensor Drop on the early-fused input (MoCo-MM).

    Args:
        modalities: sensors stacked into the input (S2 first, then VV, VH). With one
            modality this is single-modality MoCo v3 (no sensor drop).
        s2_bands: S2 band subset name or list.
        s2_product: ``L2A`` or ``L1C``.
        backbone_kwargs: :class:`~rsfuse.models.vit.GatedViT` arguments over MoCo v3's
            ViT-S/16 (:data:`rsfuse.models.vit_small.MOCO_VIT_SMALL`: 12 heads, CLS token, no
            stochastic depth). DINO's ViT-S has 6 heads and drop-path 0.1; to compare the
            two methods on one architecture pass the same ``backbone_kwargs`` to both.
            Whatever the online encoder uses, the momentum encoder runs without drop-path
            (:func:`~rsfuse.models.momentum.momentum_copy`), so its keys are deterministic.
        proj_layers: projector layers (3).
        hidden_dim: projector / predictor hidden width (4096).
        out_dim: projection width (256).
        pred_layers: predictor layers (2).
        temperature: τ (MoCo v3 ViT: 0.2).
        momentum: base momentum m0 (0.99), cosine to 1.
        crops_size: side of both views (112, as DINO-MM's global crops).
        crops_scale: crop area range (MoCo v3: (0.08, 1)).
        sensor_drop_p: probability that a view loses one sensor (0.5).
        sensor_drop_s2_prob: probability that the lost sensor is S2 (0.5).
        solarize_threshold: see :class:`~rsfuse.data.transforms.RandomSolarize`.
        solarize_upper: see :class:`~rsfuse.data.transforms.RandomSolarize`.
        solarize_direction: ``below`` (DINO-MM code: values under the threshold are
            mirrored, default) or ``above`` (PIL / facebookresearch/dino).
        color: ``brightness_and_contrast`` (DINO-MM code: multiplicative brightness, then
            contrast, default) or ``brightness_or_contrast`` (additive brightness or contrast).
        joint_sensors: intensity ops on the stacked S2 + S1 channels as the DINO-MM code
            does (one draw per sample; grayscale = mean of all channels; default) or, with
            ``False``, per sensor (grayscale never mixes SAR and optical bands).
        lr: base learning rate (MoCo v3 ViT: 1.5e-4).
        scale_lr_by_batch: multiply ``lr`` by global batch / 256.
        min_lr_ratio: final lr / peak lr.
        warmup_epochs: linear warm-up (MoCo v3: 40 of 300).
        weight_decay: AdamW weight decay (0.1).
        export_encoder: ``base`` (online encoder, MoCo v3's choice) or ``momentum``.
        export_path: where to write the encoder at the end of ``fit``: ``None`` →
            ``encoders/moco_mm_encoder`` in the run folder, a relative path under the run
            folder, an absolute one as given.
        health_checks: pretraining health checks (:mod:`rsfuse.training.health`: k-NN
            probe and spread of the exported encoder's features): ``True`` (default),
            ``False`` or a dict of :class:`~rsfuse.training.health.HealthSettings` fields.
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | list[str] = "all",
        s2_product: str = "L2A",
        backbone_kwargs: dict[str, Any] | None = None,
        proj_layers: int = 3,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        pred_layers: int = 2,
        temperature: float = 0.2,
        momentum: float = 0.99,
        crops_size: int = 112,
        crops_scale: tuple[float, float] = (0.08, 1.0),
        sensor_drop_p: float = 0.5,
        sensor_drop_s2_prob: float = 0.5,
        solarize_threshold: float = 0.5,
        solarize_upper: float = 1.0,
        solarize_direction: Literal["above", "below"] = "below",
        color: Literal["brightness_and_contrast", "brightness_or_contrast"] = (
            "brightness_and_contrast"
        ),
        joint_sensors: bool = True,
        lr: float = 1.5e-4,
        scale_lr_by_batch: bool = True,
        min_lr_ratio: float = 0.0,
        warmup_epochs: float = 40,
        weight_decay: float = 0.1,
        export_encoder: Literal["base", "momentum"] = "base",
        export_path: str | None = None,
        health_checks: bool | dict[str, Any] = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.set_input_spec(InputSpec.create(modalities, s2_bands, s2_product))
        self.set_health_checks(health_checks)
        encoder = build_vit(len(self.channels), backbone_kwargs, defaults=MOCO_VIT_SMALL)
        self.moco = MoCoV3(
            encoder,
            encoder.num_features,
            proj_layers=proj_layers,
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            pred_layers=pred_layers,
            temperature=temperature,
        )
        self.build_views(
            global_crops_size=crops_size,
            global_crops_scale=tuple(crops_scale),
            local_crops_number=0,
        )

    def views(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Two augmented early-fused views [B, C, s, s] of a normalised batch."""
        v1, v2 = self.fused_views(batch)
        return v1, v2

    def momentum(self) -> float:
        """m at the current fractional epoch (MoCo v3's ``adjust_moco_momentum``)."""
        epochs = max(1, self.trainer.max_epochs or 1)
        return cosine_momentum(self.fractional_epoch(), epochs, self.hparams.momentum)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        x1, x2 = self.views(batch)
        m = self.momentum()
        loss = self.moco(x1, x2, momentum=m)
        bs = x1.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/momentum", m, batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x1, x2 = self.views(batch)
        # this rank's keys only: under DDP ranks may validate different numbers of batches
        loss = self.moco(x1, x2, momentum=None, gather=False)
        self.log_mean("val/loss", loss, x1.shape[0], prog_bar=True)

    @property
    def encoder(self) -> nn.Module:
        """The encoder that is exported (``export_encoder``)."""
        if self.hparams.export_encoder == "momentum":
            return self.moco.momentum_encoder.module
        return self.moco.encoder

    @torch.no_grad()
    def health_outputs(self, batch: dict) -> HealthOutputs:
        """Health-check outputs of a normalised batch (:mod:`rsfuse.training.health`): the
        exported encoder's features [B, D] of the un-augmented images at the view size."""
        self.check_batch(batch)
        x = at_size(early_fusion_input(batch, self.modalities), self.hparams.crops_size)
        return HealthOutputs({"encoder": self.encoder(x)}, self.health_labels(batch))

    def export(self, path: str | Path) -> Path:
        """Write the encoder (safetensors + JSON; loadable by ``encoder_checkpoints``)."""
        config = vit_export_config(self.encoder, self.channels, self.modalities)
        return self.write_encoder(self.encoder, path, config)

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        self.export(self.export_target(self.hparams.export_path, "moco_mm_encoder"))

    def optimized_module(self) -> nn.Module:
        """The online encoder, projector and predictor (the momentum copies follow by EMA)."""
        return self.moco

    def optim_settings(self) -> OptimSettings:
        hp = self.hparams
        return OptimSettings(
            name="adamw",
            lr=hp.lr,
            scale_by_batch=hp.scale_lr_by_batch,
            weight_decay=hp.weight_decay,
            warmup_epochs=hp.warmup_epochs,
            min_lr_ratio=hp.min_lr_ratio,
        )
