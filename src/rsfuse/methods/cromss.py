"""CromSS: noisy-label pretraining with cross-modal sample selection (CromSS §III).

One smp U-Net encoder per modality (:mod:`rsfuse.models.unet`), trained on the noisy Dynamic
World labels of NoLDO-S12 (SSL4EO-S12@NoL). Per batch (``s1``, ``s2``, ``mask``, optionally
``label_prior`` from :class:`~rsfuse.data.datamodules.CromSSDataModule`)::

    z_1, z_2 = U-Net(s1), U-Net(s2)                   # middle fusion: shared decoder + head
    y' = (1 − α − β) onehot(y) + α prior + β / C       # Eq. 13 (SpatialTemporalLabelSmoothing)
    w, w' = CrossModalSampleSelection(z_1, z_2, y, e)  # Eq. 8–12 (None without selection)
    L = Σ_i CE_w(z_i, y') + Dice_w(z_i, y') + λ Σ_i con(z_i, sg(z_j); w'_j)      # Eq. 1, 6, 7

The variants of the paper's Table V are configurations of :class:`CromSS`:

=================  ====================  ============  ======================
variant            ``modalities``        ``fusion``    ``sample_selection``
=================  ====================  ============  ======================
single-s1 / -s2    ``[s1]`` / ``[s2]``   ``single``    False
midF               ``[s1, s2]``          ``middle``    False
lateF              ``[s1, s2]``          ``late``      False
CromSS-midF        ``[s1, s2]``          ``middle``    True
CromSS-lateF       ``[s1, s2]``          ``late``      True
=================  ====================  ============  ======================

Optimisation as the authors': Adam (lr 0.005, weight decay 1e-8), ReduceLROnPlateau
(patience 30, factor 0.5) on the validation loss. The validation loss is the authors'
(``validation_loss="plain"``, their ``validation_step``): CE + Dice on the integer noisy
labels plus the unweighted consistency term, with neither label smoothing nor selection
masks, so it measures the predictions and not the epoch's schedule
(``tests/data/conformance/cromss_v2.npz``); ``"training"`` scores validation batches with
the training loss of the epoch instead. Mixed precision comes from the trainer's
``precision`` (``bf16-mixed`` in the GPU configs); selection and losses run in float32.
Validation reports per modality OA / mIoU against the noisy labels and, on synthetic data,
against the clean ones (``mask_clean``); training logs the precision of the selection
(weighted fraction of selected pixels whose noisy label is right) beside the noisy-label
accuracy. At the end of ``fit`` each modality's encoder is exported with
:func:`~rsfuse.models.checkpoints.export_encoder` to ``export_dir`` (a safetensors file and
a JSON with the encoder name, modality and bands) for
:class:`~rsfuse.tasks.segmentation.SegmentationTask` (``encoder_checkpoint``, no prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from rsfuse.data.label_smoothing import PRIOR_KEY, SpatialTemporalLabelSmoothing
from rsfuse.errors import ConfigError, DataError
from rsfuse.inputs import InputSpec
from rsfuse.losses.cromss import CromSSLoss
from rsfuse.losses.sample_selection import CrossModalSampleSelection
from rsfuse.metrics.segmentation import metrics_from_confusion
from rsfuse.models.segmentation import pad_to_multiple
from rsfuse.models.unet import build_cromss_unet
from rsfuse.training.health import HealthChecked, HealthOutputs, dense_multi_hot
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings

__all__ = ["VARIANTS", "CromSS", "variant_kwargs"]

#: Table V variant → :class:`CromSS` arguments.
VARIANTS: dict[str, dict[str, Any]] = {
    "single-s1": {"modalities": ["s1"], "fusion": "single", "sample_selection": False},
    "single-s2": {"modalities": ["s2"], "fusion": "single", "sample_selection": False},
    "midF": {"modalities": ["s1", "s2"], "fusion": "middle", "sample_selection": False},
    "lateF": {"modalities": ["s1", "s2"], "fusion": "late", "sample_selection": False},
    "CromSS-midF": {"modalities": ["s1", "s2"], "fusion": "middle", "sample_selection": True},
    "CromSS-lateF": {"modalities": ["s1", "s2"], "fusion": "late", "sample_selection": True},
}


def variant_kwargs(name: str) -> dict[str, Any]:
    """:class:`CromSS` arguments of a Table V variant (see :data:`VARIANTS`)."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown CromSS variant {name!r}; expected {list(VARIANTS)}", "variant")
    return {k: list(v) if isinstance(v, list) else v for k, v in VARIANTS[name].items()}


class CromSS(HealthChecked, RsfuseModule):
    """CromSS pretraining and its single-modal / fusion baselines (Table V).

    Args:
        modalities: ``["s1", "s2"]`` (fusion) or one modality (single-modal).
        fusion: ``"middle"`` (shared decoder), ``"late"`` (two U-Nets) or ``"single"``.
        sample_selection: weight the losses with :class:`CrossModalSampleSelection` masks
            (False: midF / lateF / single-modal baselines, all weights 1).
        s2_bands: S2 band subset (``"all"``: 13 L1C bands; ``"hr9"``: the 9 high-resolution
            ones); must match the datamodule's.
        num_classes: C (Dynamic World: 9).
        class_names: C names (metrics).
        ignore_index: mask value of unlabelled pixels.
        encoder: smp encoder (``resnet50`` as in the paper).
        encoder_depth: encoder stages.
        decoder_channels: U-Net decoder widths.
        r_inf: final selection ratio r∞ (0.5).
        ramp_epochs: T of the selection ramp (80).
        cross_modal: cross-modal enhancement (Eq. 10) of the confidences.
        consistency: ``"ce"`` (the authors' code, default) or ``"kl"`` (Eq. 5).
        consistency_weight: λ (1.0).
        dice: add the soft Dice term.
        alpha: weight α of the spatial-temporal prior in Eq. 13 (0.15; needs
            ``label_prior`` in the batch).
        beta: weight β of the uniform distribution in Eq. 13 (0.05).
        lr: Adam learning rate (0.005).
        weight_decay: Adam weight decay (1e-8).
        lr_patience: ReduceLROnPlateau patience in epochs (30).
        lr_factor: ReduceLROnPlateau factor (0.5).
        monitor: metric of ReduceLROnPlateau.
        validation_loss: ``"plain"`` (authors' code, default): CE + Dice on the integer
            labels + unweighted consistency, no smoothing, no selection; ``"training"``:
            the epoch's training loss (smoothing and selection masks) on validation batches.
        absent_classes: 0/0 convention of the validation metrics
            (:func:`~rsfuse.metrics.segmentation.metrics_from_confusion`; ``"one"``, the
            CromSS code, or ``"exclude"``).
        export_dir: folder for the encoders at the end of ``fit`` (None: no export).
        export_name: file stem prefix of the exported encoders (default: derived from the
            variant).
        channels_last: channels-last memory format (GPU).
        health_checks: pretraining health checks (:mod:`rsfuse.training.health`: k-NN
            probe and spread of each encoder's pooled deepest features; labels: see
            :meth:`health_outputs`): ``True`` (default), ``False`` or a dict of
            :class:`~rsfuse.training.health.HealthSettings` fields.

    Raises:
        ConfigError: inconsistent modalities / fusion / selection, bad band subset.
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        fusion: Literal["middle", "late", "single"] = "middle",
        sample_selection: bool = True,
        s2_bands: str | list[str] = "all",
        num_classes: int = 9,
        class_names: list[str] | None = None,
        ignore_index: int = 255,
        encoder: str = "resnet50",
        encoder_depth: int = 5,
        decoder_channels: list[int] | None = None,
        r_inf: float = 0.5,
        ramp_epochs: int = 80,
        cross_modal: bool = True,
        consistency: Literal["ce", "kl"] = "ce",
        consistency_weight: float = 1.0,
        dice: bool = True,
        alpha: float = 0.15,
        beta: float = 0.05,
        lr: float = 0.005,
        weight_decay: float = 1e-8,
        lr_patience: int = 30,
        lr_factor: float = 0.5,
        monitor: str = "val/loss",
        validation_loss: Literal["plain", "training"] = "plain",
        absent_classes: Literal["one", "exclude"] = "one",
        export_dir: str | None = None,
        export_name: str | None = None,
        channels_last: bool = False,
        health_checks: bool | dict[str, Any] = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.set_input_spec(InputSpec.create(modalities, s2_bands, "L1C"))
        self.set_health_checks(health_checks)
        if fusion != "single" and len(self.modalities) != 2:
            raise ConfigError(f"fusion {fusion!r} needs s1 and s2", key="modalities")
        if fusion == "single" and len(self.modalities) != 1:
            raise ConfigError("fusion 'single' needs one modality", key="modalities")
        if sample_selection and fusion == "single":
            raise ConfigError("cross-modal sample selection needs two modalities", "fusion")
        if validation_loss not in ("plain", "training"):
            raise ConfigError(
                f"validation_loss must be 'plain' or 'training', got {validation_loss!r}",
                key="validation_loss",
            )
        self.model = build_cromss_unet(
            fusion,
            {m: self.input_spec.channels_of(m) for m in self.modalities},
            num_classes,
            encoder=encoder,
            encoder_depth=encoder_depth,
            decoder_channels=decoder_channels,
        )
        self.num_classes = num_classes
        self.class_names = list(class_names or [f"class_{i}" for i in range(num_classes)])
        self.ignore_index = ignore_index
        self.selection = (
            CrossModalSampleSelection(num_classes, r_inf, ramp_epochs, cross_modal, ignore_index)
            if sample_selection
            else None
        )
        self.smoothing = SpatialTemporalLabelSmoothing(
            num_classes, alpha, beta, prior="spatial-temporal" if alpha > 0 else "none",
            ignore_index=ignore_index,
        )  # fmt: skip
        self.criterion = CromSSLoss(
            len(self.modalities), consistency, consistency_weight, dice, ignore_index
        )
        self.val_cm = torch.nn.ModuleDict(
            {
                f"{m}_{ref}": MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
                for m in self.modalities
                for ref in ("noisy", "clean")
            }
        )
        self.last_val_metrics: dict[str, Any] = {}
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict) -> dict[str, Tensor]:
        """Logits ``{modality: [B, C, H, W]}`` of a batch."""
        self.check_batch(batch)
        inputs = {m: batch[m] for m in self.modalities}
        if self.hparams.channels_last:
            inputs = {m: x.contiguous(memory_format=torch.channels_last) for m, x in inputs.items()}
        return self.model(inputs)

    @torch.no_grad()
    def health_outputs(self, batch: dict) -> HealthOutputs:
        """Health-check outputs of a normalised batch (:mod:`rsfuse.training.health`).

        Features: each modality's encoder, deepest stage average-pooled ([B, D] per
        modality, the encoders that are exported). Labels for the k-NN probe: the scene
        labels of the noisy label map, i.e. the classes covering ≥ 5 % of a patch's labelled
        pixels (:func:`~rsfuse.training.health.dense_multi_hot`), so the probe is the same
        multi-label k-NN as for the scene-level methods.
        """
        self.check_batch(batch)
        feats = {}
        for m in self.modalities:
            x, _ = pad_to_multiple(batch[m], self.model.pad_multiple)
            feats[m] = self.model.encoder(m)(x)[-1].mean(dim=(-2, -1))
        labels = dense_multi_hot(batch["mask"], self.num_classes, self.ignore_index)
        return HealthOutputs(feats, labels)

    def targets(self, batch: dict) -> Tensor:
        """The training target: smoothed labels [B, C, H, W] (Eq. 13) or int labels [B, H, W]."""
        y = batch["mask"]
        if self.smoothing.alpha == 0 and self.smoothing.beta == 0:
            return y
        prior = batch.get(PRIOR_KEY)
        if self.smoothing.alpha > 0 and prior is None:
            raise DataError(
                f"alpha = {self.smoothing.alpha} needs '{PRIOR_KEY}' in the batch: use "
                "rsfuse.data.datamodules.CromSSDataModule, or set alpha: 0"
            )
        return self.smoothing(y, prior)

    def loss_terms(
        self, logits: dict[str, Tensor], batch: dict, epoch: int, train: bool = True
    ) -> tuple[dict[str, Tensor], dict | None]:
        """Loss terms of given logits ``{modality: [B, C, H, W]}`` and the selection output.

        Training (and validation with ``validation_loss="training"``): smoothed targets
        (Eq. 13) and the selection masks of ``epoch`` (Eq. 8–12). Validation with
        ``validation_loss="plain"`` (authors' code): integer labels, no masks.
        """
        zs = [logits[m] for m in self.modalities]
        y = batch["mask"]
        if not train and self.hparams.validation_loss == "plain":
            return self.criterion(zs, y), None
        sel = self.selection(zs[0], zs[1], y, epoch) if self.selection is not None else None
        terms = self.criterion(
            zs,
            self.targets(batch),
            labels=y,
            label_masks=None if sel is None else sel["label_masks"],
            consistency_masks=None if sel is None else sel["consistency_masks"],
        )
        return terms, sel

    def compute_loss(
        self, batch: dict, epoch: int, train: bool = True
    ) -> tuple[dict[str, Tensor], dict | None]:
        """All loss terms of a batch at ``epoch`` (``terms["logits"]``: the logits) and the
        selection output (or None); see :meth:`loss_terms`."""
        logits = self(batch)
        terms, sel = self.loss_terms(logits, batch, epoch, train)
        terms["logits"] = logits  # type: ignore[assignment]
        return terms, sel

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        terms, sel = self.compute_loss(batch, self.current_epoch)
        b = batch["mask"].shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=b)
        for k in ("con",):
            if k in terms:
                self.log(f"train/{k}", terms[k], batch_size=b)
        if sel is not None:
            self.log("train/selection_ratio", sel["ratio"], batch_size=b)
            if "mask_clean" in batch:
                y, clean = batch["mask"], batch["mask_clean"]
                valid = (y != self.ignore_index) & (clean != self.ignore_index)
                right = ((y == clean) & valid).float()
                self.log(
                    "train/noisy_label_acc", right.sum() / valid.sum().clamp_min(1), batch_size=b
                )
                for m, w in zip(self.modalities, sel["label_masks"]):
                    w = w * valid
                    prec = (w * right).sum() / w.sum().clamp_min(1e-12)
                    self.log(f"train/{m}/selection_precision", prec, batch_size=b)
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        terms, _ = self.compute_loss(batch, self.current_epoch, train=False)
        b = batch["mask"].shape[0]
        self.log("val/loss", terms["loss"], prog_bar=True, batch_size=b, sync_dist=True)
        for m, z in terms["logits"].items():  # type: ignore[union-attr]
            pred = z.argmax(1)
            self.val_cm[f"{m}_noisy"].update(pred, batch["mask"])
            if "mask_clean" in batch:
                self.val_cm[f"{m}_clean"].update(pred, batch["mask_clean"])

    def on_validation_epoch_end(self) -> None:
        out: dict[str, Any] = {}
        for key, cm in self.val_cm.items():
            mat = cm.compute()
            cm.reset()
            if float(mat.sum()) == 0:
                continue
            m = metrics_from_confusion(mat, self.class_names, self.hparams.absent_classes)
            out[key] = m
            mod, ref = key.split("_")
            self.log_dict({f"val/{mod}/{ref}_{k}": float(m[k]) for k in ("OA", "mIoU")})
        self.last_val_metrics = out

    # ------------------------------------------------------------------ optim
    def optim_settings(self) -> OptimSettings:
        hp = self.hparams
        return OptimSettings(
            name="adam",
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            schedule="plateau",
            monitor=hp.monitor,
            patience=hp.lr_patience,
            factor=hp.lr_factor,
        )

    # ------------------------------------------------------------------ export
    @property
    def variant(self) -> str:
        """Table V name of this configuration."""
        hp = self.hparams
        if hp.fusion == "single":
            return f"single-{self.modalities[0]}"
        base = "midF" if hp.fusion == "middle" else "lateF"
        return f"CromSS-{base}" if hp.sample_selection else base

    def export_encoders(self, out_dir: str | Path, name: str | None = None) -> dict[str, Path]:
        """Write each modality's encoder (safetensors + JSON) to ``out_dir``.

        Files: ``{name}_{modality}.safetensors`` (``name`` defaults to ``export_name`` or the
        variant), loadable by ``SegmentationTask(encoder=..., encoder_checkpoint=...)``.

        Returns:
            ``{modality: weight file}``.
        """
        hp = self.hparams
        name = name or hp.export_name or f"cromss_{self.variant}"
        paths = {}
        for m in self.modalities:
            cfg = {
                "class": "smp",
                "encoder": hp.encoder,
                "encoder_depth": hp.encoder_depth,
                "in_channels": self.input_spec.channels_of(m),
                "modality": m,
                "bands": list(self.input_spec.bands_of(m)),
                "variant": self.variant,
            }
            paths[m] = self.write_encoder(self.model.encoder(m), Path(out_dir) / f"{name}_{m}", cfg)
        return paths

    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.export_encoders(self.hparams.export_dir)
