"""Multi-label scene classification (BigEarthNet-MM, 19 classes).

One LightningModule for every classifier of the project: a model that maps a batch to logits
(:class:`~rsfuse.models.fusion.MultiModalClassifier`), built from

* ``fusion="early"``: one encoder on early-fused S1+S2 channels (or one sensor);
* ``fusion="concat"`` / ``"gmu"``: one encoder per sensor, pooled features concatenated or
  fused by the gated multimodal unit (MGSViT, Eq. 2–5);

with any encoder of the one factory (:func:`rsfuse.models.encoders.create_encoder`: a timm
model, or ``gated_vit`` = :class:`~rsfuse.models.vit.GatedViT` with transformer shortcuts of
Eq. 1 every ``shortcut_every`` blocks). Three training modes: ``scratch`` (supervised from
random weights), ``finetune`` (encoders loaded from ``encoder_checkpoints``, all weights
trained) and ``linear_probe`` (encoders loaded and frozen; features: mean-pooled tokens, or
the pooled outputs of the last 4 blocks concatenated, DINO's linear evaluation).

Trained with ``MultiLabelSoftMarginLoss`` and scored with torchmetrics micro/macro average
precision and micro/macro F1 accumulated over the whole split (never averaged per batch),
plus per-class AP on the test split. :class:`DINOMMEvalTask` is the same task with DINO's
linear-evaluation defaults (SGD, head from N(0, 0.01²), a sensor-drop input case).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from rsfuse.data.classes import BEN19
from rsfuse.errors import ConfigError
from rsfuse.inputs import InputSpec
from rsfuse.models.checkpoints import check_encoder_bands, load_encoder
from rsfuse.models.encoders import create_encoder, is_gated_vit
from rsfuse.models.fusion import MultiModalClassifier, drop_modalities
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings

__all__ = ["DINOMMEvalTask", "MultiLabelClassificationTask", "encoder_key", "multilabel_metrics"]

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


class MultiLabelClassificationTask(RsfuseModule):
    """Multi-label classifier on Sentinel-1 and/or Sentinel-2 (early, concat or GMU fusion).

    Args:
        modalities: sensors the model sees (``["s1"]``, ``["s2"]`` or both). The datamodule
            may provide more; the rest is ignored.
        s2_bands: S2 band subset name or list (see :func:`rsfuse.bands.s2_bands`); the
            ``rsfuse`` command links it to the datamodule's.
        s2_product: ``L2A`` (BigEarthNet) or ``L1C``.
        num_classes: number of labels.
        class_names: label names for reports (default: BigEarthNet 19 classes).
        backbone: encoder name for :func:`~rsfuse.models.encoders.create_encoder`: a timm
            model, or ``gated_vit`` (:class:`~rsfuse.models.vit.GatedViT`).
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
        input_drop: modalities marked absent in *every* split (train, val, test) — the
            DINO-MM missing-modality cases: ``["s2"]`` = S1 only, ``["s1"]`` = S2 only.
        optimizer: ``adamw`` (default) or ``sgd`` (DINO's linear evaluation).
        lr: peak learning rate.
        weight_decay: weight decay (not applied to norms, biases, tokens).
        momentum: SGD momentum.
        warmup_epochs: linear warm-up length in epochs (fractional allowed).
        min_lr_ratio: final lr as a fraction of ``lr`` at the end of the cosine.
        head_init_std: the Linear head starts from N(0, std²) weights and zero bias (DINO:
            0.01); ``None`` keeps PyTorch's default initialisation.
        threshold: score threshold for F1.
        cache_features: linear probe only: keep each training sample's frozen encoder
            features (by its ``meta`` id) after their first computation, so later epochs
            train the probe without running the encoders. Needs training batches without
            random augmentation (the datamodule's ``augmentation`` must be None); the
            features of a linear probe on frozen encoders are then the same every epoch.
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
        input_drop: list[str] | None = None,
        optimizer: Literal["adamw", "sgd"] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        momentum: float = 0.9,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        head_init_std: float | None = None,
        threshold: float = 0.5,
        cache_features: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.set_input_spec(InputSpec.create(modalities, s2_bands, s2_product))
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
        if optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
        self.test_drop = list(test_drop or [])
        self.input_drop = list(input_drop or [])
        unknown = [m for m in self.input_drop if m not in self.modalities]
        if unknown or (self.input_drop and len(self.input_drop) >= len(self.modalities)):
            raise ConfigError(
                f"input_drop {self.input_drop} must name some but not all of the model's "
                f"modalities {list(self.modalities)}",
                key="input_drop",
            )
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
        if head_init_std is not None:
            nn.init.normal_(self.model.head.weight, std=head_init_std)
            nn.init.zeros_(self.model.head.bias)
        self.loss_fn = nn.MultiLabelSoftMarginLoss()
        self.val_metrics = multilabel_metrics(num_classes, "val/", threshold)
        self.test_metrics = multilabel_metrics(num_classes, "test/", threshold)
        self.test_per_class_ap = MultilabelAveragePrecision(num_classes, average=None)
        self.last_test_per_class_ap: list[float] | None = None
        if cache_features and mode != "linear_probe":
            raise ConfigError("cache_features needs mode='linear_probe'", key="cache_features")
        self._feature_cache: dict[str, dict[Any, Tensor]] = {}

    def _encoder(self, in_chans: int) -> tuple[nn.Module, int]:
        """One encoder of the configured architecture and its pooled feature width."""
        hp = self.hparams
        kwargs = dict(hp.backbone_kwargs or {})
        if is_gated_vit(hp.backbone):
            kwargs.update(shortcut_every=hp.shortcut_every, gate=hp.gate)
        elif hp.shortcut_every:
            raise ConfigError(
                f"shortcut_every needs backbone={GATED_VIT!r}, not {hp.backbone!r}",
                key="shortcut_every",
            )
        enc = create_encoder(hp.backbone, in_chans, kwargs)
        return enc, int(enc.num_features)

    def _build_model(self) -> MultiModalClassifier:
        hp = self.hparams
        last_k = 4 if hp.mode == "linear_probe" and hp.probe_features == "last4" else 1
        spec = self.input_spec
        if hp.fusion == "early" or len(self.modalities) == 1:
            enc, dim = self._encoder(len(spec.channels))
            key = "early" if len(self.modalities) > 1 else self.modalities[0]
            return MultiModalClassifier(
                {key: enc},
                {key: dim * last_k},
                hp.num_classes,
                modalities=self.modalities,
                last_k=last_k,
            )
        if hp.fusion not in ("concat", "gmu"):
            raise ConfigError(f"unknown fusion {hp.fusion!r}", key="fusion")
        encoders, dims = {}, {}
        for m in self.modalities:
            encoders[m], dim = self._encoder(spec.channels_of(m))
            dims[m] = dim * last_k
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
        spec = self.input_spec
        expected = {"s1": spec.s1_bands, "s2": spec.s2_bands, "early": spec.channels}
        for k, name in names.items():
            check_encoder_bands(paths[name], expected[k])
            load_encoder(self.model.encoders[k], paths[name], prefix.replace("{name}", k))
            print(f"[rsfuse] loaded the {name} encoder from {paths[name]}")

    def setup(self, stage: str) -> None:
        """The base checks, and no feature cache over augmented training batches."""
        super().setup(stage)
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and self.hparams.cache_features and getattr(dm, "augmentation", None):
            raise ConfigError(
                "cache_features needs training batches without random augmentation: set the "
                "datamodule's augmentation to null",
                key="data.augmentation",
            )

    def on_fit_start(self) -> None:
        """Refuse to train a ``finetune`` / ``linear_probe`` model whose encoders were not
        loaded (the architecture alone may be built without them, e.g. by
        :func:`rsfuse.inference.bundle.load_bundle`)."""
        super().on_fit_start()
        self._feature_cache = {}
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
    def forward(self, batch: dict) -> Tensor:
        """Logits [B, K] of a batch (``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``present``)."""
        self.check_batch(batch)
        if self.input_drop:
            batch = drop_modalities(batch, self.input_drop)
        meta = batch.get("meta") or []
        ids = [m.get("id") for m in meta if isinstance(m, dict)]
        if self.training and self.hparams.cache_features and _unique_ids(ids, len(meta)):
            feats = self._cached_features(batch)
            return self.model.head(self.model.fuse(feats, batch.get("present")))
        return self.model(batch)

    def _cached_features(self, batch: dict) -> dict[str, Tensor]:
        """The frozen encoders' features of a batch, computed once per sample id."""
        ids = [m.get("id") for m in batch["meta"]]
        missing = any(i not in self._feature_cache.get(name, {}) for name in
                      self.model.encoders for i in ids)  # fmt: skip
        if missing:
            with torch.no_grad():
                fresh = self.model.encode(batch)
            for name, f in fresh.items():
                cache = self._feature_cache.setdefault(name, {})
                for i, row in zip(ids, f.detach()):
                    cache.setdefault(i, row)
        return {
            name: torch.stack([self._feature_cache[name][i] for i in ids])
            for name in self.model.encoders
        }

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
    def optim_settings(self) -> OptimSettings:
        return OptimSettings.from_hparams(self.hparams)


class DINOMMEvalTask(MultiLabelClassificationTask):
    """:class:`MultiLabelClassificationTask` with DINO's linear-evaluation defaults.

    SGD (momentum 0.9, no weight decay, cosine, no warm-up) and a Linear head from
    N(0, 0.01²) with zero bias; every other argument as the task's (for a linear probe:
    ``mode="linear_probe"``, ``probe_features="last4"``, ``backbone="gated_vit"``;
    ``input_drop`` selects DINO-MM's missing-modality input case).
    """

    def __init__(
        self,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        head_init_std: float | None = 0.01,
        weight_decay: float = 0.0,
        warmup_epochs: float = 0.0,
        min_lr_ratio: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            optimizer=optimizer,
            head_init_std=head_init_std,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            min_lr_ratio=min_lr_ratio,
            **kwargs,
        )


def _unique_ids(ids: list[Any], n: int) -> bool:
    """True when every one of ``n`` samples has its own id (the feature cache's key)."""
    return n > 0 and len(ids) == n and None not in ids and len(set(ids)) == n
