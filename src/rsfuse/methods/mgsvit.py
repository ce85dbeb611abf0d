"""MGSViT self-supervised pretraining: MAE and MoCo v3 in one step (MGSViT §3.3, Alg. 1).

Each sensor's :class:`~rsfuse.models.vit.GatedViT` encoder is pretrained on its own
modality (S1 or S2). Per batch ``x`` (Algorithm 1)::

    x1, x2 = Aug(x), Aug(x)                                # §4.4 augmentations, on device
    # reconstruction (MAE, He et al. 2022)
    e_i, m_i = Encoder(RandomMasking(x_i))                 # 75 % of the patches removed
    r_i = Decoder(e_i)                                     # pixels of every patch
    Loss_rec = MSE(x1, r1, m1) + MSE(x2, r2, m2)           # masked patches only
    # contrast (MoCo v3, Chen et al. 2021)
    p_i = Predictor(Projector(Encoder(x_i)))               # full, un-masked views
    k_i = MomentumProjector(MomentumEncoder(x_i))          # EMA, no gradients
    Loss_con = ctr(p1, k2) + ctr(p2, k1)                   # Eq. 9, ctr = CE(q·kᵀ/τ)·2τ
    Loss = w_rec · Loss_rec + w_con · Loss_con             # Eq. 10 with weights 1, 1

``contrast_weight=0`` is MAE-only and ``reconstruction_weight=0`` MoCo v3-only: the switched
off branch is not run at all (its heads get no gradients). The momentum ``m`` stays at
``base_momentum`` (0.99) as in the authors' runs (``momentum_schedule="constant"``: their
``--moco-m-cos`` flag is off by default and ``run.sh`` never sets it); ``"cosine"`` is that
flag, MoCo v3's cosine from ``base_momentum`` to 1 per iteration over training. The
learning rate is ``base_lr × global batch / 256`` (linear scaling rule) with linear warm-up
and cosine decay; AdamW with betas (0.9, 0.95) as the authors' code, without weight decay on
norms and biases.

The two views follow the authors' code (``augmentation_recipe="code"``,
:func:`~rsfuse.data.transforms.mgsvit_ssl_augmentation`): RandomResizedCrop (0.2–1),
multiplicative brightness *and* contrast (0.4) with p = 0.8, grayscale p = 0.2, Gaussian
blur σ ∈ [0.1, 2] with p = 1.0 on the first view and 0.1 on the second, horizontal flip;
``"paper"`` is §4.4 as printed (brightness *or* contrast, blur p = 1.0 on both, no flip).

After training, :meth:`MGSViTPretraining.export_encoder` (called automatically at the end of
``fit`` when ``export_path`` is set) writes the encoder as safetensors with a JSON of its
config and band order, which :class:`~rsfuse.tasks.classification.MultiLabelClassificationTask`
loads through ``encoder_checkpoints``. Each validation epoch writes a PNG of input, masked
input and reconstruction (:func:`rsfuse.plots.reconstruction.plot_reconstruction`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from rsfuse.data.transforms import BatchAugmentation, mgsvit_ssl_augmentation
from rsfuse.errors import ConfigError, DataError
from rsfuse.inputs import InputSpec
from rsfuse.losses.mae import MAEReconstructionLoss
from rsfuse.models.encoders import create_encoder
from rsfuse.models.heads import MAEDecoder
from rsfuse.models.moco import MoCoV3
from rsfuse.models.vit import GatedViT, patchify
from rsfuse.training.health import HealthChecked, HealthOutputs, at_size
from rsfuse.training.module import RsfuseModule
from rsfuse.training.optim import OptimSettings
from rsfuse.training.schedules import cosine_momentum

#: GatedViT arguments an encoder config may set (the rest are fixed by the modality).
ENCODER_ARGS = (
    "img_size",
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "class_token",
    "global_pool",
    "drop_path_rate",
    "qkv_bias",
)


class MGSViTPretraining(HealthChecked, RsfuseModule):
    """Per-modality MAE + MoCo v3 pretraining of a GatedViT encoder (Algorithm 1).

    Args:
        modality: ``s1`` (2 channels VV, VH) or ``s2``.
        s2_bands: S2 band subset (MGSViT: the 12 L2A bands, ``all``).
        s2_product: ``L2A`` (BigEarthNet) or ``L1C``.
        backbone_kwargs: GatedViT arguments (paper: ``patch_size`` 16, ``embed_dim`` 768,
            ``depth`` 12, ``num_heads`` 12), the same names as the classifier's
            ``backbone_kwargs``; ``in_chans`` follows the modality.
        shortcut_every: N of Eq. 1, blocks per TS unit (C4: 4; 0 = plain ViT).
        gate: TS gate, ``token`` (authors' code) or ``channel`` (Eq. 1 as printed).
        crop_size: side of the augmented views (paper: 128).
        mask_ratio: fraction of patches removed for reconstruction (0.75).
        decoder_dim: MAE decoder width (384).
        decoder_depth: MAE decoder blocks (2).
        decoder_heads: MAE decoder heads (6).
        norm_pix: per-patch normalised reconstruction target (authors' code: off).
        proj_hidden_dim: projector / predictor hidden width (4096).
        proj_dim: projection width (256).
        temperature: τ of ``ctr`` (authors' code: 1.0; MoCo v3 ViT: 0.2).
        base_momentum: momentum m0 of the key encoder (0.99).
        momentum_schedule: ``constant`` (authors' runs: m = m0 throughout) or ``cosine``
            (their ``--moco-m-cos``: m0 → 1 along a half cosine per iteration).
        reconstruction_weight: weight of ``Loss_rec`` (0 = MoCo v3-only).
        contrast_weight: weight of ``Loss_con`` (0 = MAE-only).
        base_lr: learning rate per 256 samples of global batch (authors: 1e-5).
        weight_decay: AdamW weight decay (0.05).
        betas: AdamW betas (authors' code: (0.9, 0.95); torch's default: (0.9, 0.999)).
        warmup_epochs: linear warm-up (40 of 100 epochs in the authors' runs).
        min_lr_ratio: final lr / peak lr (cosine to 0 in the paper).
        augmentation_recipe: ``code`` (authors' code, default) or ``paper`` (§4.4 as
            printed); see :func:`~rsfuse.data.transforms.mgsvit_ssl_augmentation`.
        augmentation: a custom :class:`~rsfuse.data.transforms.BatchAugmentation` drawn
            once per view (overrides ``augmentation_recipe``).
        export_path: where :meth:`export_encoder` writes at the end of ``fit`` (``None``:
            don't).
        plot_dir: folder of the reconstruction PNGs (default: the trainer's log dir).
        plot_samples: samples per reconstruction PNG.
        health_checks: pretraining health checks (:mod:`rsfuse.training.health`: k-NN
            probe and spread of the encoder's features): ``True`` (default), ``False`` or a dict
            of :class:`~rsfuse.training.health.HealthSettings` fields.
    """

    augments_views = True  # the two views are augmented here, not by the datamodule

    def __init__(
        self,
        modality: Literal["s1", "s2"] = "s2",
        s2_bands: str | list[str] = "all",
        s2_product: str = "L2A",
        backbone_kwargs: dict[str, Any] | None = None,
        shortcut_every: int = 4,
        gate: Literal["token", "channel"] = "token",
        crop_size: int = 128,
        mask_ratio: float = 0.75,
        decoder_dim: int = 384,
        decoder_depth: int = 2,
        decoder_heads: int = 6,
        norm_pix: bool = False,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        temperature: float = 1.0,
        base_momentum: float = 0.99,
        momentum_schedule: Literal["constant", "cosine"] = "constant",
        reconstruction_weight: float = 1.0,
        contrast_weight: float = 1.0,
        base_lr: float = 1e-5,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_epochs: float = 40.0,
        min_lr_ratio: float = 0.0,
        augmentation_recipe: Literal["code", "paper"] = "code",
        augmentation: BatchAugmentation | None = None,
        export_path: str | None = None,
        plot_dir: str | None = None,
        plot_samples: int = 4,
        health_checks: bool | dict[str, Any] = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["augmentation"])
        self.set_health_checks(health_checks)
        if modality not in ("s1", "s2"):
            raise ConfigError(f"modality must be 's1' or 's2', got {modality!r}", key="modality")
        if reconstruction_weight < 0 or contrast_weight < 0:
            raise ConfigError("loss weights must be >= 0", key="reconstruction_weight")
        if momentum_schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"momentum_schedule must be 'constant' or 'cosine', got {momentum_schedule!r}",
                key="momentum_schedule",
            )
        if reconstruction_weight == 0 and contrast_weight == 0:
            raise ConfigError(
                "reconstruction_weight and contrast_weight are both 0: nothing to train",
                key="contrast_weight",
            )
        self.modality = modality
        self.set_input_spec(InputSpec.create([modality], s2_bands, s2_product))
        self.band_names = self.input_spec.bands_of(modality)
        kwargs = dict(backbone_kwargs or {})
        unknown = sorted(set(kwargs) - set(ENCODER_ARGS))
        if unknown:
            raise ConfigError(f"unknown GatedViT arguments {unknown}", key="backbone_kwargs")
        self.encoder_kwargs = {**kwargs, "shortcut_every": shortcut_every, "gate": gate}
        vit = create_encoder("gated_vit", len(self.band_names), self.encoder_kwargs)
        self.patch_size = vit.patch_size
        self.moco = MoCoV3(
            vit,
            vit.num_features,
            hidden_dim=proj_hidden_dim,
            out_dim=proj_dim,
            temperature=temperature,
        )
        self.decoder = MAEDecoder(
            vit.num_features,
            vit.patch_size**2 * len(self.band_names),
            decoder_dim=decoder_dim,
            depth=decoder_depth,
            num_heads=decoder_heads,
            num_prefix_tokens=vit.num_prefix_tokens,
        )
        self.reconstruction_loss = MAEReconstructionLoss(norm_pix=norm_pix)
        self.view_augmentations = torch.nn.ModuleList(
            [augmentation, augmentation]
            if augmentation is not None
            else [mgsvit_ssl_augmentation(crop_size, recipe=augmentation_recipe, view=v)
                  for v in (1, 2)]
        )  # fmt: skip
        self._plot_batch: Tensor | None = None

    @property
    def encoder(self) -> GatedViT:
        """The encoder being pretrained (the online encoder of the MoCo branch)."""
        return self.moco.encoder  # type: ignore[return-value]

    # ------------------------------------------------------------------ pieces
    def images(self, batch: dict) -> Tensor:
        """This modality's images [B, C, H, W] from a batch, checked against the bands."""
        if self.modality not in batch:
            raise DataError(
                f"MGSViT pretraining on {self.modality} got a batch without {self.modality!r} "
                f"(keys {sorted(batch)}); set the datamodule's modalities to [{self.modality}]"
            )
        self.check_batch(batch)
        return batch[self.modality]

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two independently augmented views of [B, C, H, W] (Algorithm 1: Aug(x) twice)."""
        batch = {self.modality: x}
        v1, v2 = (aug(batch)[self.modality] for aug in self.view_augmentations)
        return v1, v2

    def model_input(self, x: Tensor) -> Tensor:
        """The pixels the encoder sees (resized to ``img_size`` if the encoder has one)."""
        size = self.encoder.img_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear")
        return x

    def reconstruct(self, x: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """MAE pass on [B, C, H, W]: (loss, predicted patches [B, L, P], mask [B, L])."""
        x = self.model_input(x)
        tokens, mask, ids_restore, grid = self.encoder.forward_masked(
            x, self.hparams.mask_ratio, noise
        )
        pred = self.decoder(tokens, ids_restore, grid)  # [B, L, p·p·C]
        target = patchify(x, self.patch_size)
        return self.reconstruction_loss(target, pred, mask), pred, mask

    @torch.no_grad()
    def health_outputs(self, batch: dict) -> HealthOutputs:
        """Health-check outputs of a normalised batch (:mod:`rsfuse.training.health`): the
        encoder's pooled features [B, D] of the un-augmented images at the view size."""
        x = self.model_input(at_size(self.images(batch), self.hparams.crop_size))
        return HealthOutputs({self.modality: self.encoder(x)}, self.health_labels(batch))

    def momentum_at(self, step: float, total_steps: float) -> float:
        """Key-encoder momentum after ``step`` of ``total_steps`` optimiser steps: m0
        (``constant``) or ``1 − ½(1 + cos(π·step/total))(1 − m0)`` (``cosine``; per
        iteration, i.e. fractional epochs, as the authors' ``adjust_moco_momentum``)."""
        hp = self.hparams
        if hp.momentum_schedule == "constant":
            return float(hp.base_momentum)
        return cosine_momentum(step, total_steps, hp.base_momentum)

    def momentum(self) -> float:
        """The momentum at the current step (see :meth:`momentum_at`)."""
        return self.momentum_at(self.global_step, self.total_steps)

    def losses(self, x1: Tensor, x2: Tensor, momentum: float | None) -> dict[str, Tensor]:
        """Algorithm 1 on two views: ``loss``, ``loss_rec`` and ``loss_con`` (scalars)."""
        hp = self.hparams
        out: dict[str, Tensor] = {}
        total = x1.new_zeros(())
        if hp.reconstruction_weight > 0:
            out["loss_rec"] = self.reconstruct(x1)[0] + self.reconstruct(x2)[0]
            total = total + hp.reconstruction_weight * out["loss_rec"]
        if hp.contrast_weight > 0:
            v1, v2 = self.model_input(x1), self.model_input(x2)
            out["loss_con"] = self.moco(v1, v2, momentum)
            total = total + hp.contrast_weight * out["loss_con"]
        out["loss"] = total
        return out

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        x1, x2 = self.views(self.images(batch))
        m = self.momentum()
        out = self.losses(x1, x2, m)
        bs = x1.shape[0]
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=bs)
        self.log("train/momentum", m, batch_size=bs)
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x = self.images(batch)
        bs = x.shape[0]
        if self.hparams.reconstruction_weight > 0 or batch_idx == 0:
            g = torch.Generator(device="cpu").manual_seed(batch_idx)
            n = (self.model_input(x).shape[-1] // self.patch_size) ** 2
            noise = torch.rand(bs, n, generator=g).to(x.device)
            loss_rec, _, _ = self.reconstruct(x, noise)
            self.log("val/loss_rec", loss_rec, prog_bar=True, batch_size=bs, sync_dist=True)
        if batch_idx == 0:
            self._plot_batch = x[: self.hparams.plot_samples].detach()

    def on_validation_epoch_end(self) -> None:
        if self._plot_batch is None or self.trainer.sanity_checking:
            return
        if self.trainer.is_global_zero:
            self.write_reconstruction_png(self._plot_batch, f"epoch{self.current_epoch:03d}")
        self._plot_batch = None

    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            if self.hparams.export_path:
                self.export_encoder(self.hparams.export_path)
            elif self.trainer.log_dir:
                self.export_encoder(Path(self.trainer.log_dir) / "encoders" / self.export_name)
            batch = self._last_val_images()
            if batch is not None:
                self.write_reconstruction_png(batch, "final")

    def _last_val_images(self) -> Tensor | None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return None
        try:
            loader = dm.val_dataloader()
            batch = next(iter(loader))
        except (StopIteration, AttributeError, TypeError):
            return None
        batch = dm.on_after_batch_transfer(batch, 0) if hasattr(dm, "normalize") else batch
        return self.images(batch)[: self.hparams.plot_samples].to(self.device)

    # ------------------------------------------------------------------ outputs
    def plot_dir(self) -> Path:
        """Folder of the reconstruction PNGs."""
        if self.hparams.plot_dir:
            return Path(self.hparams.plot_dir)
        if self._trainer is not None and self.trainer.log_dir:
            return Path(self.trainer.log_dir) / "reconstructions"
        return Path("reconstructions")

    @torch.no_grad()
    def write_reconstruction_png(self, x: Tensor, tag: str) -> Path:
        """Input / masked input / reconstruction of ``x`` [B, C, H, W] to ``plot_dir``."""
        from rsfuse.plots.reconstruction import plot_reconstruction

        was_training = self.training
        self.eval()
        x = self.model_input(x.float())
        g = torch.Generator(device="cpu").manual_seed(0)
        n = (x.shape[-1] // self.patch_size) ** 2
        noise = torch.rand(x.shape[0], n, generator=g).to(x.device)
        _, pred, mask = self.reconstruct(x, noise)
        self.train(was_training)
        path = self.plot_dir() / f"reconstruction_{self.modality}_{tag}.png"
        return plot_reconstruction(
            x.cpu(),
            pred.float().cpu(),
            mask.cpu(),
            self.patch_size,
            self.band_names,
            path,
            norm_pix=self.hparams.norm_pix,
        )

    @property
    def export_name(self) -> str:
        """File stem of the exported encoder in the run folder: ``mgsvit_c<N>_<modality>``."""
        return f"mgsvit_c{self.hparams.shortcut_every}_{self.modality}"

    def encoder_config(self) -> dict[str, Any]:
        """JSON description of the encoder: class, kwargs, modality and band order."""
        kwargs = {"in_chans": len(self.band_names), **self.encoder_kwargs}
        hp = self.hparams
        return {
            "class": "rsfuse.models.vit.GatedViT",
            "timm_name": "gated_vit",
            "kwargs": kwargs,
            "modality": self.modality,
            "bands": list(self.band_names),
            "reconstruction_weight": hp.reconstruction_weight,
            "contrast_weight": hp.contrast_weight,
            "mask_ratio": hp.mask_ratio,
        }

    def export_encoder(self, path: str | Path) -> Path:
        """Write the encoder as safetensors plus ``<name>.json`` (config and bands)."""
        return self.write_encoder(self.encoder, path, self.encoder_config())

    # ------------------------------------------------------------------ optim
    def optim_settings(self) -> OptimSettings:
        hp = self.hparams
        return OptimSettings(
            name="adamw",
            lr=hp.base_lr,
            scale_by_batch=True,
            weight_decay=hp.weight_decay,
            betas=tuple(hp.betas),
            warmup_epochs=hp.warmup_epochs,
            min_lr_ratio=hp.min_lr_ratio,
        )
