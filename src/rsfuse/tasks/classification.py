"""Multi-label scene classification (BigEarthNet-MM, 19 classes).

One LightningModule for every classifier of the project: a model that maps a batch to logits
(:class:`~rsfuse.models.fusion.MultiModalClassifier`), built from

* ``fusion="early"``: one encoder on early-fused S1+S2 channels (or one sensor);
* ``fusion="concat"`` / ``"gmu"``: one encoder per sensor, pooled features concatenated or
  fused by the gated multimodal unit (MGSViT, seed 000, Eq. 2–5);

with a timm backbone or ``backbone="gated_vit"`` (:class:`~rsfuse.models.vit.GatedViT`,
transformer shortcuts of Eq. 1 every ``shortcut_every`` blocks). Three training modes:
``scratch`` (supervised from random weights), ``finetune`` (encoders loaded from
``encoder_checkpoints``, all weights trained) and ``linear_probe`` (encoders loaded and frozen;
features: mean-pooled tokens, or the pooled outputs of the last 4 blocks concatenated).

Trained with ``MultiLabelSoftMarginLoss`` and scored with torchmetrics micro/macro average
precision and micro/macro F1 accumulated over the whole split (never averaged per batch),
plus per-class AP on the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning import LightningModule
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from rsfuse import bands
from rsfuse.data.classes import BEN19
from rsfuse.errors import ConfigError
from rsfuse.models.backbones import build_backbone
from rsfuse.models.checkpoints import check_encoder_bands, load_encoder
from rsfuse.models.fusion import MultiModalClassifier, check_s2_channels, drop_modalities
from rsfuse.models.vit import GatedViT
from rsfuse.optim import build_optimizer, warmup_cosine_config

#: ``backbone`` value that selects rsfuse's own :class:`~rsfuse.models.vit.GatedViT`.
GATED_VIT = "gated_vit"


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


def encoder_key(modalities: Sequence[str]) -> str:
    """Name of an early-fusion encoder in ``encoder_checkpoints``: ``s1``, ``s2`` or ``s1s2``."""
    return "".join(sorted(modalities))


def build_encoder(
    backbone: str,
    in_chans: int,
    backbone_kwargs: dict[str, Any] | None,
    shortcut_every: int = 0,
    gate: str = "token",
) -> tuple[nn.Module, int]:
    """An encoder mapping [B, C, H, W] to pooled features, and its feature width.

    Raises:
        ConfigError: bad arguments, or shortcuts asked of a timm backbone.
    """
    kwargs = dict(backbone_kwargs or {})
    if backbone == GATED_VIT:
        try:
            enc = GatedViT(in_chans, shortcut_every=shortcut_every, gate=gate, **kwargs)
        except TypeError as e:
            raise ConfigError(f"bad GatedViT arguments: {e}", key="backbone_kwargs") from e
        return enc, enc.num_features
    if shortcut_every:
        raise ConfigError(
            f"shortcut_every needs backbone={GATED_VIT!r}, not {backbone!r}", key="shortcut_every"
        )
    enc = build_backbone(backbone, in_chans, 0, kwargs)
    return enc, int(enc.num_features)


class MultiLabelClassificationTask(LightningModule):
    """Multi-label classifier on Sentinel-1 and/or Sentinel-2 (early, concat or GMU fusion).

    Args:
        modalities: sensors the model sees (``["s1"]``, ``["s2"]`` or both). The datamodule
            may provide more; the rest is ignored.
        s2_bands: S2 band subset name or list (see :func:`rsfuse.bands.s2_bands`); must match
            what the datamodule reads.
        s2_product: ``L2A`` (BigEarthNet) or ``L1C``.
        num_classes: number of labels.
        class_names: label names for reports (default: BigEarthNet 19 classes).
        backbone: timm model name, or ``gated_vit`` for :class:`~rsfuse.models.vit.GatedViT`.
        backbone_kwargs: constructor arguments of each encoder (``img_size``, ``patch_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ``class_token``, ``global_pool`` …; the
            same names for timm ViTs and GatedViT).
        fusion: ``early`` (one encoder on stacked channels), ``concat`` (pooled features of
            one encoder per sensor, concatenated) or ``gmu`` (gated multimodal unit, Eq. 2–5).
            With one modality all three are the same single encoder.
        shortcut_every: N of Eq. 1 (GatedViT only); 0 = plain ViT.
        gate: TS gate, ``token`` (authors' code) or ``channel`` (Eq. 1 as printed).
        gmu_gate: GMU gate z, ``scalar`` (authors' code) or ``vector`` (Arevalo et al.).
        gmu_hidden_dim: GMU width H (default: the encoder width).
        gmu_input_norm: BatchNorm on the GMU inputs (Arevalo et al.).
        gmu_bias: biases in the GMU's Linear layers (authors' code: yes).
        gmu_gate_input: what the GMU gate reads: ``mgsvit`` (MGSViT's code: the tanh
            outputs, default), ``arevalo`` (Arevalo et al.'s code: the projections before
            the tanh) or ``eq4`` (Eq. 4 as printed: the raw features); see
            :class:`~rsfuse.models.fusion.GatedMultimodalUnit`.
        mode: ``scratch``, ``finetune`` or ``linear_probe`` (see the module docstring).
        encoder_checkpoints: encoder name → weight file, for ``finetune`` / ``linear_probe``.
            Names: ``s1`` and ``s2`` for concat/GMU; ``s1``, ``s2`` or ``s1s2`` for early
            fusion. Loaded with key checks (:func:`rsfuse.models.checkpoints.load_encoder`).
            ``None`` builds the architecture without loading (model bundles); ``fit`` then
            refuses a ``finetune`` / ``linear_probe`` model.
        checkpoint_prefix: key prefix of the encoder inside those files (e.g. ``encoder.``);
            ``{name}`` stands for the encoder's name, so ``model.model.encoders.{name}.``
            reads encoders out of a checkpoint of this task.
        probe_features: linear-probe features: ``mean`` (mean-pooled last tokens) or
            ``last4`` (pooled outputs of the last 4 blocks, concatenated; GatedViT only).
        test_drop: modalities to mark absent at test time (score a fused model on S1 or S2
            only); may also be changed on the instance between ``trainer.test`` calls.
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
        fusion: Literal["early", "concat", "gmu"] = "early",
        shortcut_every: int = 0,
        gate: Literal["token", "channel"] = "token",
        gmu_gate: Literal["scalar", "vector"] = "scalar",
        gmu_hidden_dim: int | None = None,
        gmu_input_norm: bool = False,
        gmu_bias: bool = True,
        gmu_gate_input: Literal["mgsvit", "arevalo", "eq4"] = "mgsvit",
        mode: Literal["scratch", "finetune", "linear_probe"] = "scratch",
        encoder_checkpoints: dict[str, str] | None = None,
        checkpoint_prefix: str = "",
        probe_features: Literal["mean", "last4"] = "mean",
        test_drop: list[str] | None = None,
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
        if mode not in ("scratch", "finetune", "linear_probe"):
            raise ConfigError(f"unknown mode {mode!r}", key="mode")
        if probe_features not in ("mean", "last4"):
            raise ConfigError(f"unknown probe_features {probe_features!r}", key="probe_features")
        self.test_drop = [m for m in (test_drop or [])]
        self.model = self._build_model()
        if mode != "scratch" and encoder_checkpoints is not None:
            self._load_encoders(encoder_checkpoints, checkpoint_prefix)
        elif encoder_checkpoints:
            raise ConfigError(
                "encoder_checkpoints given with mode='scratch'; use finetune or linear_probe",
                key="mode",
            )
        if mode == "linear_probe":
            for p in self.model.encoders.parameters():
                p.requires_grad_(False)
        self.loss_fn = nn.MultiLabelSoftMarginLoss()
        self.val_metrics = multilabel_metrics(num_classes, "val/", threshold)
        self.test_metrics = multilabel_metrics(num_classes, "test/", threshold)
        self.test_per_class_ap = MultilabelAveragePrecision(num_classes, average=None)
        self.last_test_per_class_ap: list[float] | None = None

    def _build_model(self) -> MultiModalClassifier:
        hp = self.hparams
        last_k = 4 if hp.mode == "linear_probe" and hp.probe_features == "last4" else 1

        def make(in_chans: int) -> tuple[nn.Module, int]:
            enc, dim = build_encoder(
                hp.backbone, in_chans, hp.backbone_kwargs, hp.shortcut_every, hp.gate
            )
            return enc, dim * last_k

        if hp.fusion == "early" or len(self.modalities) == 1:
            enc, dim = make(len(self.channels))
            key = "early" if len(self.modalities) > 1 else self.modalities[0]
            return MultiModalClassifier(
                {key: enc}, {key: dim}, hp.num_classes, modalities=self.modalities, last_k=last_k
            )
        if hp.fusion not in ("concat", "gmu"):
            raise ConfigError(f"unknown fusion {hp.fusion!r}", key="fusion")
        encoders, dims = {}, {}
        for m in self.modalities:
            c = 2 if m == "s1" else len(self.s2_band_names)
            encoders[m], dims[m] = make(c)
        gmu = {
            "hidden_dim": hp.gmu_hidden_dim,
            "gate": hp.gmu_gate,
            "bias": hp.gmu_bias,
            "input_norm": hp.gmu_input_norm,
            "gate_input": hp.gmu_gate_input,
        }
        return MultiModalClassifier(
            encoders, dims, hp.num_classes, fusion=hp.fusion, last_k=last_k, gmu_kwargs=gmu
        )

    def _load_encoders(self, paths: dict[str, str], prefix: str) -> None:
        names = {
            k: encoder_key(self.modalities) if k == "early" else k for k in self.model.encoders
        }
        wanted = sorted(names.values())
        if sorted(paths) != wanted:
            raise ConfigError(
                f"mode={self.hparams.mode!r} needs one encoder checkpoint per encoder, keys "
                f"{wanted}; got {sorted(paths)}",
                key="encoder_checkpoints",
            )
        expected = {"s1": bands.S1_ORDER, "s2": self.s2_band_names, "early": self.channels}
        for k, name in names.items():
            check_encoder_bands(paths[name], expected[k])
            load_encoder(self.model.encoders[k], paths[name], prefix.replace("{name}", k))

    def on_fit_start(self) -> None:
        """Refuse to train a ``finetune`` / ``linear_probe`` model whose encoders were not
        loaded (the architecture alone may be built without them, e.g. by
        :func:`rsfuse.inference.bundle.load_bundle`)."""
        hp = self.hparams
        if hp.mode != "scratch" and hp.encoder_checkpoints is None:
            raise ConfigError(
                f"mode={hp.mode!r} needs encoder_checkpoints (one weight file per encoder)",
                key="encoder_checkpoints",
            )

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> MultiLabelClassificationTask:
        """As ``nn.Module.train``; frozen encoders of a linear probe stay in eval mode."""
        super().train(mode)
        if self.hparams.mode == "linear_probe":
            self.model.encoders.eval()
        return self

    # ------------------------------------------------------------------ forward
    def check_batch(self, batch: dict) -> None:
        """Raise :class:`ConfigError` when the batch's S2 bands differ from the model's."""
        check_s2_channels(batch, self.modalities, self.s2_band_names)

    def forward(self, batch: dict) -> Tensor:
        """Logits [B, K] of a batch (``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``present``)."""
        self.check_batch(batch)
        return self.model(batch)

    def _shared_step(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(batch)
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
        if self.test_drop:
            batch = drop_modalities(batch, self.test_drop)
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
        scores = self(batch).sigmoid()
        return {"ids": [m.get("id") for m in batch.get("meta", [])], "scores": scores.cpu()}

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        opt = build_optimizer(self, lr=hp.lr, weight_decay=hp.weight_decay)
        return warmup_cosine_config(opt, self.trainer, hp.warmup_epochs, hp.min_lr_ratio)

    @torch.no_grad()
    def per_class_table(self) -> list[tuple[str, float]]:
        """(class name, AP) pairs of the last test run."""
        if self.last_test_per_class_ap is None:
            return []
        return list(zip(self.class_names, self.last_test_per_class_ap))
