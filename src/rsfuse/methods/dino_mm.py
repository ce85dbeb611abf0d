"""DINO-MM: self-distillation on early-fused SAR + optical channels (Wang et al. 2022).

One ViT sees the stacked S2 bands and S1 VV, VH (:func:`rsfuse.bands.early_fusion_channels`:
S2 first). Per batch ``x`` (DINO, Caron et al. 2021, Algorithm 1, with Random Sensor Drop)::

    views = MultiCrop(x)                 # 2 global (112 px) + 8 local (48 px) crops; each view
                                         # randomly keeps both sensors (50 %), S1 only (25 %)
                                         # or S2 only (25 %): RandomSensorDrop per view
    s = g_s(views)                       # student: ViT + DINO head on every crop  [V·B, K]
    t = g_t(views[:2])                   # teacher (EMA of the student), global crops [2·B, K]
    loss = H(t, s)                       # rsfuse.losses.dino.DINOLoss (centring, sharpening)
    θ_s ← AdamW step (per-parameter grad clip 3.0; last head layer frozen in epoch 0)
    θ_t ← m θ_t + (1 − m) θ_s            # m: 0.996 → 1, cosine per step

Schedules per step as in the DINO code: learning rate linear warm-up to
``lr × global batch / 256`` then cosine to ``min_lr``; weight decay cosine 0.04 → 0.4 on the
decayed parameter group; teacher temperature per epoch (:func:`teacher_temp_schedule`).

The backbone is :class:`~rsfuse.models.vit.GatedViT` without shortcuts, with a CLS token and
CLS pooling, so :class:`~rsfuse.tasks.classification.MultiLabelClassificationTask` (or
:class:`~rsfuse.tasks.classification.DINOMMEvalTask`) can probe it with
``probe_features="last4"`` (CLS of the last 4 blocks concatenated, DINO's linear
evaluation). Positions are GatedViT's fixed 2-D sin-cos embedding computed for each crop's
grid, so global and local crops need no interpolation of learned positions (DINO
interpolates learned ones: a deliberate difference). At the end of
``fit`` the *teacher* backbone is exported (safetensors + JSON, the one encoder format) to
the run folder (``<trainer.default_root_dir>/encoders/dino_mm_teacher.safetensors``, or
``export_path``: relative under the run folder, absolute as given).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from rsfuse.inputs import InputSpec
from rsfuse.losses.dino import DINOLoss
from rsfuse.methods.views import FusedViews
from rsfuse.models.fusion import early_fusion_input
from rsfuse.models.heads import DINOHead
from rsfuse.models.momentum import ema_update, momentum_copy
from rsfuse.models.multicrop import MultiCropWrapper
from rsfuse.models.vit import GatedViT
from rsfuse.models.vit_small import build_vit, vit_export_config
from rsfuse.training.health import HealthChecked, HealthOutputs, at_size
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings, clip_gradients
from rsfuse.training.schedules import cosine_momentum, cosine_ramp

__all__ = ["DINOMM"]


class DINOMM(FusedViews, HealthChecked, RsfuseModule):
    """DINO-MM pretraining (DINO with multi-crop and Random Sensor Drop on early-fused input).

    With one modality (``["s1"]`` or ``["s2"]``) this is plain single-modality DINO (no
    sensor drop); with both and ``sensor_drop_p = 0`` it is DINO on the stacked channels.

    Args:
        modalities: sensors stacked into the input (S2 first, then VV, VH).
        s2_bands: S2 band subset name or list (BigEarthNet L2A: 12 bands; L1C: 13).
        s2_product: ``L2A`` or ``L1C``.
        backbone_kwargs: :class:`GatedViT` arguments over
            :data:`~rsfuse.models.vit_small.VIT_SMALL` (ViT-S/16, CLS token, drop-path 0.1).
            The teacher is the same network (no drop-path: it is always in eval mode).
        out_dim: K, DINO head output (65536).
        head_hidden_dim: DINO head hidden width (2048).
        head_bottleneck_dim: DINO head bottleneck (256).
        head_nlayers: DINO head Linear layers before the last one (3).
        head_use_bn: BatchNorm in the head (off for ViTs).
        norm_last_layer: fix the weight-norm scale of the last layer at 1.
        freeze_last_layer: epochs during which the last head layer gets no update (1).
        momentum_teacher: base EMA momentum, cosine to 1 per step (0.996).
        teacher_temp: τ_t after warm-up (0.04).
        warmup_teacher_temp: τ_t at epoch 0 (0.04).
        warmup_teacher_temp_epochs: τ_t warm-up length (0 = none).
        student_temp: τ_s (0.1).
        center_momentum: centre EMA (0.9).
        global_crops_size: global crop side (112).
        global_crops_scale: global crop area range ((0.4, 1)).
        local_crops_number: local crops (8).
        local_crops_size: local crop side (48).
        local_crops_scale: local crop area range ((0.05, 0.4)).
        sensor_drop_p: probability that a view loses one sensor (0.5).
        sensor_drop_s2_prob: probability that the lost sensor is S2 (0.5).
        solarize_threshold: :class:`~rsfuse.data.transforms.RandomSolarize` threshold (0.5:
            data normalised to [0, 1], the ``"dino-mm"`` normalisation; use 0 with
            ``"standardize"``).
        solarize_upper: its mirror value (1.0; 0 with ``"standardize"``).
        solarize_direction: ``below`` (DINO-MM code: values under the threshold are
            mirrored, default) or ``above`` (PIL / facebookresearch/dino).
        color: ``brightness_and_contrast`` (DINO-MM code: multiplicative brightness, then
            contrast, default) or ``brightness_or_contrast`` (additive brightness or contrast).
        joint_sensors: intensity ops on the stacked S2 + S1 channels as the DINO-MM code
            does (one draw per sample; grayscale = mean of all channels; default) or, with
            ``False``, per sensor (grayscale never mixes SAR and optical bands).
        lr: base learning rate (5e-4), multiplied by global batch / 256 when
            ``scale_lr_by_batch``.
        scale_lr_by_batch: apply the linear scaling rule.
        min_lr: final learning rate (1e-6).
        warmup_epochs: learning-rate warm-up (10).
        weight_decay: start of the weight-decay cosine (0.04).
        weight_decay_end: its end (0.4).
        clip_grad: per-parameter gradient-norm clip (3.0; 0 = off).
        export_path: where to write the teacher backbone at the end of ``fit``: ``None`` →
            ``encoders/dino_mm_teacher`` in the run folder, a relative path under the run
            folder, an absolute one as given.
        health_checks: pretraining health checks (:mod:`rsfuse.training.health`: k-NN
            probe and spread of the teacher's features, teacher entropy, KL teacher‖student):
            ``True`` (default), ``False`` or a dict of
            :class:`~rsfuse.training.health.HealthSettings` fields.
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | list[str] = "all",
        s2_product: str = "L2A",
        backbone_kwargs: dict[str, Any] | None = None,
        out_dim: int = 65536,
        head_hidden_dim: int = 2048,
        head_bottleneck_dim: int = 256,
        head_nlayers: int = 3,
        head_use_bn: bool = False,
        norm_last_layer: bool = True,
        freeze_last_layer: int = 1,
        momentum_teacher: float = 0.996,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        global_crops_size: int = 112,
        global_crops_scale: tuple[float, float] = (0.4, 1.0),
        local_crops_number: int = 8,
        local_crops_size: int = 48,
        local_crops_scale: tuple[float, float] = (0.05, 0.4),
        sensor_drop_p: float = 0.5,
        sensor_drop_s2_prob: float = 0.5,
        solarize_threshold: float = 0.5,
        solarize_upper: float = 1.0,
        solarize_direction: Literal["above", "below"] = "below",
        color: Literal["brightness_and_contrast", "brightness_or_contrast"] = (
            "brightness_and_contrast"
        ),
        joint_sensors: bool = True,
        lr: float = 5e-4,
        scale_lr_by_batch: bool = True,
        min_lr: float = 1e-6,
        warmup_epochs: float = 10,
        weight_decay: float = 0.04,
        weight_decay_end: float = 0.4,
        clip_grad: float = 3.0,
        export_path: str | None = None,
        health_checks: bool | dict[str, Any] = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.set_input_spec(InputSpec.create(modalities, s2_bands, s2_product))
        self.set_health_checks(health_checks)
        backbone = build_vit(len(self.channels), backbone_kwargs)
        head = DINOHead(
            backbone.num_features,
            out_dim,
            use_bn=head_use_bn,
            norm_last_layer=norm_last_layer,
            nlayers=head_nlayers,
            hidden_dim=head_hidden_dim,
            bottleneck_dim=head_bottleneck_dim,
        )
        self.student = MultiCropWrapper(backbone, head)
        self.teacher = momentum_copy(self.student)
        self.teacher.eval()
        self.build_views(
            global_crops_size=global_crops_size,
            global_crops_scale=tuple(global_crops_scale),
            local_crops_number=local_crops_number,
            local_crops_size=local_crops_size,
            local_crops_scale=tuple(local_crops_scale),
        )
        self.criterion = DINOLoss(
            out_dim,
            self.augment.n_crops,
            warmup_teacher_temp=warmup_teacher_temp,
            teacher_temp=teacher_temp,
            warmup_teacher_temp_epochs=warmup_teacher_temp_epochs,
            nepochs=max(warmup_teacher_temp_epochs, 1),
            student_temp=student_temp,
            center_momentum=center_momentum,
        )

    # ------------------------------------------------------------------ pieces
    @property
    def backbone(self) -> GatedViT:
        """The student backbone."""
        return self.student.backbone  # type: ignore[return-value]

    @property
    def teacher_backbone(self) -> GatedViT:
        """The teacher backbone (what is exported and evaluated)."""
        return self.teacher.module.backbone  # type: ignore[return-value]

    def train(self, mode: bool = True) -> DINOMM:
        """As ``nn.Module.train``, but the teacher stays in eval mode (no drop-path)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def crops(self, batch: dict) -> list[Tensor]:
        """Multi-crop views of a (normalised) batch as early-fused tensors [B, C, h, w]."""
        return self.fused_views(batch)

    def dino_loss(self, crops: Sequence[Tensor], epoch: int, update_center: bool = True) -> Tensor:
        """DINO loss of one list of crops (2 global first); also moves the centre (unless
        ``update_center`` is False)."""
        with torch.no_grad():
            teacher_out = self.teacher(crops[: self.augment.n_global])  # [2·B, K]
        student_out = self.student(crops)  # [V·B, K]
        return self.criterion(student_out, teacher_out, epoch, update_center)

    @torch.no_grad()
    def health_outputs(self, batch: dict) -> HealthOutputs:
        """Health-check outputs of a normalised batch (:mod:`rsfuse.training.health`): the
        teacher's features [B, D] and the teacher / student distributions [B, K] of the
        DINO loss (centred, sharpened) on the un-augmented images at the global-crop size."""
        x = at_size(early_fusion_input(self.sensor_batch(batch), self.modalities),
                    self.hparams.global_crops_size)  # fmt: skip
        feats = self.teacher_backbone(x)
        t = self.teacher.module.head(feats).float()
        s = self.student([x]).float()
        c = self.criterion
        p_t = torch.softmax((t - c.center) / c.teacher_temp(self.current_epoch), dim=-1)
        log_p_s = torch.log_softmax(s / c.student_temp, dim=-1)
        return HealthOutputs({"teacher": feats}, self.health_labels(batch), p_t, log_p_s)

    # ------------------------------------------------------------------ schedules
    def schedules(self, step: int) -> dict[str, float]:
        """Weight decay and teacher momentum at optimiser step ``step`` (cosine per step;
        the learning rate follows timm's scheduler, :meth:`optim_settings`)."""
        hp = self.hparams
        total = self.total_steps
        return {
            "wd": cosine_ramp(step, total, hp.weight_decay, hp.weight_decay_end),
            "momentum": cosine_momentum(step, total, hp.momentum_teacher),
        }

    # ------------------------------------------------------------------ steps
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        wd = self.schedules(self.global_step)["wd"]
        for group in self.optimizers().optimizer.param_groups:
            if group.get("weight_decay", 0.0) > 0:  # the regularised group only
                group["weight_decay"] = wd

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        crops = self.crops(batch)
        loss = self.dino_loss(crops, self.current_epoch)
        # DINO stops on a non-finite loss; the flag stays on the device and is read when
        # Lightning logs anyway (check_finite), not by a host sync in every step
        finite = torch.isfinite(loss.detach())
        prev = getattr(self, "_loss_finite", None)
        self._loss_finite = finite if prev is None else prev & finite
        s = self.schedules(self.global_step)
        bs = crops[0].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict(
            {
                "train/lr": self.optimizers().optimizer.param_groups[0]["lr"],
                "train/wd": s["wd"],
                "train/momentum": s["momentum"],
                "train/teacher_temp": self.criterion.teacher_temp(self.current_epoch),
            },
            batch_size=bs,
        )
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """DINO: per-parameter gradient clipping, then no last-layer update in early epochs."""
        if self.hparams.clip_grad > 0:
            clip_gradients(self.student, self.hparams.clip_grad)
        if self.current_epoch < self.hparams.freeze_last_layer:
            for p in self.student.head.last_layer.parameters():
                p.grad = None

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The student's step, then the EMA update of the teacher with the momentum of that
        step (here, not in ``on_train_batch_end``: a step checkpoint is written before that
        hook runs, and a resumed run must find the teacher already moved)."""
        super().optimizer_step(*args, **kwargs)
        m = self.schedules(self.global_step)["momentum"]  # the step just taken (not yet counted)
        ema_update(self.teacher, self.student, m)
        if (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:
            self.check_finite()  # on the steps Lightning writes its logs anyway

    def on_train_epoch_end(self) -> None:
        self.check_finite()

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` if a DINO loss since the last check was not finite
        (DINO's own code stops the run then); one host read per check."""
        flag = getattr(self, "_loss_finite", None)
        self._loss_finite = None
        if flag is not None and not bool(flag):
            raise FloatingPointError(
                f"DINO loss was not finite in a step up to step {self.global_step}"
            )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """DINO loss on validation batches (random views; the centre is not moved)."""
        crops = self.crops(batch)
        loss = self.dino_loss(crops, self.current_epoch, update_center=False)
        self.log_mean("val/loss", loss, crops[0].shape[0], prog_bar=True)

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        self.export_teacher(self.export_target(self.hparams.export_path, "dino_mm_teacher"))

    def export_teacher(self, path: str | Path) -> Path:
        """Write the teacher backbone (safetensors + JSON; loadable by
        ``encoder_checkpoints``)."""
        config = vit_export_config(self.teacher_backbone, self.channels, self.modalities)
        return self.write_encoder(self.teacher_backbone, path, config)

    # ------------------------------------------------------------------ optim
    def optimized_module(self) -> nn.Module:
        """Only the student is optimised (the teacher follows by EMA)."""
        return self.student

    def optim_settings(self) -> OptimSettings:
        hp = self.hparams
        return OptimSettings(
            name="adamw",
            lr=hp.lr,
            scale_by_batch=hp.scale_lr_by_batch,
            weight_decay=hp.weight_decay,
            warmup_epochs=hp.warmup_epochs,
            min_lr=hp.min_lr,
        )
