"""CromSS's per-modality U-Nets: single-modal, middle fusion and late fusion (CromSS §III-A).

Each modality has its own smp U-Net encoder (ResNet-50 in the paper; S1: 2 channels, S2: 13
or the 9 high-resolution bands). The fusion is implicit, through the consistency loss only:

* **middle fusion** (:class:`MiddleFusionUNet`): separate encoders, **one shared** U-Net
  decoder and segmentation head; each modality's features go through the shared decoder
  separately, so each modality is still predicted on its own;
* **late fusion** (:class:`LateFusionUNet`): two whole U-Nets (encoder, decoder, head);
* single modality: a :class:`LateFusionUNet` with one modality.

All return a dict ``{modality: logits [B, K, H, W]}`` for inputs of any size (padded to the
encoder's output stride internally) and expose each modality's encoder through
:meth:`encoder` for :func:`~rsfuse.models.checkpoints.export_encoder`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import segmentation_models_pytorch as smp
from torch import Tensor, nn

from rsfuse.errors import ConfigError
from rsfuse.models.segmentation import pad_to_multiple

__all__ = [
    "CromSSUNet",
    "LateFusionUNet",
    "MiddleFusionUNet",
    "build_cromss_unet",
    "build_unet",
]

Fusion = Literal["middle", "late", "single"]


def build_unet(
    in_channels: int,
    num_classes: int,
    encoder: str = "resnet50",
    encoder_depth: int = 5,
    decoder_channels: Sequence[int] | None = None,
) -> smp.Unet:
    """A randomly initialised smp U-Net (no weight downloads).

    Args:
        in_channels: input channels (S1: 2, S2: 13 or 9).
        num_classes: K.
        encoder: smp encoder name (``resnet50`` in CromSS; ``resnet18`` for tests).
        encoder_depth: encoder stages (3–5).
        decoder_channels: one width per stage (default smp's 256, 128, 64, 32, 16, cut to
            ``encoder_depth``).

    Raises:
        ConfigError: unknown encoder or inconsistent depth / widths.
    """
    if encoder not in smp.encoders.get_encoder_names() and not encoder.startswith("tu-"):
        raise ConfigError(f"unknown smp encoder {encoder!r}", key="encoder")
    dec = list(decoder_channels or (256, 128, 64, 32, 16)[:encoder_depth])
    if len(dec) != encoder_depth:
        raise ConfigError(
            f"{len(dec)} decoder_channels for encoder_depth {encoder_depth}", "decoder_channels"
        )
    return smp.Unet(
        encoder_name=encoder,
        encoder_weights=None,
        encoder_depth=encoder_depth,
        decoder_channels=dec,
        in_channels=in_channels,
        classes=num_classes,
    )


class CromSSUNet(nn.Module):
    """Base of the CromSS networks: ``forward(inputs) -> {modality: logits}``.

    Builds one smp U-Net per modality (:func:`build_unet`) and hands them to
    :meth:`assemble`, which keeps what the variant needs.

    Args:
        in_channels: ``{modality: channels}``, e.g. ``{"s1": 2, "s2": 13}``.
        num_classes: K.
        encoder, encoder_depth, decoder_channels: see :func:`build_unet`.
    """

    modalities: tuple[str, ...]
    pad_multiple: int

    def __init__(
        self,
        in_channels: Mapping[str, int],
        num_classes: int,
        encoder: str = "resnet50",
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.modalities = tuple(in_channels)
        nets = {
            m: build_unet(c, num_classes, encoder, encoder_depth, decoder_channels)
            for m, c in in_channels.items()
        }
        self.pad_multiple = int(nets[self.modalities[0]].encoder.output_stride)
        self.assemble(nets)

    def assemble(self, nets: dict[str, nn.Module]) -> None:
        """Keep the parts of the per-modality U-Nets this variant uses."""
        raise NotImplementedError

    def encoder(self, modality: str) -> nn.Module:
        """The encoder of ``modality`` (an smp encoder; export it for transfer)."""
        raise NotImplementedError

    def predict_one(self, modality: str, x: Tensor) -> Tensor:
        """Logits [B, K, H, W] of one padded input."""
        raise NotImplementedError

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Logits per modality.

        Args:
            inputs: ``{modality: [B, C_m, H, W]}`` (at least the model's modalities).

        Returns:
            ``{modality: [B, K, H, W]}`` in the order of :attr:`modalities`.
        """
        out = {}
        for m in self.modalities:
            x, (h, w) = pad_to_multiple(inputs[m], self.pad_multiple)
            out[m] = self.predict_one(m, x)[..., :h, :w]
        return out


class LateFusionUNet(CromSSUNet):
    """One whole U-Net per modality (late fusion; one modality = the single-modal baseline).

    Args: as :class:`CromSSUNet`.
    """

    def assemble(self, nets: dict[str, nn.Module]) -> None:
        self.unets = nn.ModuleDict(nets)

    def encoder(self, modality: str) -> nn.Module:
        return self.unets[modality].encoder

    def predict_one(self, modality: str, x: Tensor) -> Tensor:
        return self.unets[modality](x)


class MiddleFusionUNet(CromSSUNet):
    """Separate encoders, one shared U-Net decoder and head (middle fusion).

    Args: as :class:`CromSSUNet` (two modalities); the decoder and head are those of the
    first modality's U-Net.
    """

    def assemble(self, nets: dict[str, nn.Module]) -> None:
        first = nets[self.modalities[0]]
        self.encoders = nn.ModuleDict({m: n.encoder for m, n in nets.items()})
        self.decoder = first.decoder  # shared by all modalities
        self.segmentation_head = first.segmentation_head

    def encoder(self, modality: str) -> nn.Module:
        return self.encoders[modality]

    def predict_one(self, modality: str, x: Tensor) -> Tensor:
        features = self.encoders[modality](x)
        return self.segmentation_head(self.decoder(features))


def build_cromss_unet(
    fusion: Fusion,
    in_channels: Mapping[str, int],
    num_classes: int,
    **kwargs: Any,
) -> CromSSUNet:
    """The network of a CromSS variant.

    Args:
        fusion: ``"middle"`` (two modalities), ``"late"`` (two) or ``"single"`` (one).
        in_channels: ``{modality: channels}``.
        num_classes: K.
        **kwargs: :func:`build_unet` arguments.

    Raises:
        ConfigError: a fusion that does not fit the number of modalities.
    """
    n = len(in_channels)
    if fusion == "single":
        if n != 1:
            raise ConfigError(f"fusion 'single' needs one modality, got {list(in_channels)}")
        return LateFusionUNet(in_channels, num_classes, **kwargs)
    if fusion not in ("middle", "late"):
        raise ConfigError(f"unknown fusion {fusion!r}", key="fusion")
    if n != 2:
        raise ConfigError(f"fusion {fusion!r} needs two modalities, got {list(in_channels)}")
    cls = MiddleFusionUNet if fusion == "middle" else LateFusionUNet
    return cls(in_channels, num_classes, **kwargs)
