"""Cloud and shadow augmentation: realistic cloud opacity pasted onto Sentinel-2.

Training a fused model on clear-sky patches only teaches it to trust S2 everywhere; under
clouds it then fails where its S1 input alone would not. :class:`RandomClouds` shows it
clouds while it learns: smooth cloud fields of random cover, thickness turned into opacity,
optional shadows, blended into the S2 reflectance *before* normalisation, with the
sample's ``valid`` mask and ``present["s2"]`` flag updated by the same rule the readers use
(:mod:`rsfuse.data.clouds`), so the routing the model learns is the routing it meets in
evaluation and ``rsfuse predict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsfuse.data.clouds import DEFAULT_MAX_CLOUD_FRACTION, check_max_cloud_fraction, s2_usable
from rsfuse.data.sample import Batch
from rsfuse.data.transforms.batch import copy_batch, presence
from rsfuse.errors import ConfigError

__all__ = ["CLOUD_DN", "RandomClouds"]

#: Top-of-atmosphere reflectance × 10000 of a thick cloud per S2 band: bright and nearly
#: flat from the blue to the NIR (≈ 0.6), lower in the water-vapour band B09 and the SWIR
#: (ice and water absorb), and high in the cirrus band B10 (Sentinel-2 cloud spectra as in
#: Zhu & Woodcock's Fmask and the s2cloudless training data).
CLOUD_DN: dict[str, float] = {
    "B01": 6000.0, "B02": 5900.0, "B03": 5800.0, "B04": 5800.0, "B05": 5900.0,
    "B06": 6000.0, "B07": 6000.0, "B08": 6000.0, "B8A": 6000.0, "B09": 4500.0,
    "B10": 900.0, "B11": 4500.0, "B12": 3500.0,
}  # fmt: skip


class RandomClouds(nn.Module):
    """Paste random clouds (and their shadows) onto the S2 of a raw batch.

    For each sample whose S2 is present, with probability ``p``:

    1. a smooth random field f [H, W] (white noise on a grid ``scale`` times coarser,
       upsampled bilinearly and standardised; ``scale`` drawn in ``scale_range``);
    2. a cover fraction c ~ U(``cover``), or c = 1 (overcast) with probability
       ``overcast_p``; the thickness is t = max(f − q, 0) with q the (1 − c)-quantile of f,
       so clouds cover exactly the fraction c;
    3. opacity a = 1 − exp(−t / τ) (Beer–Lambert: transmittance of an optical thickness),
       τ ~ U(0.1, 0.5) per sample, so cores are opaque and edges thin; a = 1 when overcast;
    4. with probability ``shadow_p`` a shadow: the clouds shifted by 4–15 px in a random
       direction, where they are thicker than 0.3 and the sky is clear, darkened by a
       factor in U(0.35, 0.6);
    5. S2 ← S2 · (1 − shadow · (1 − factor)), then S2 ← S2 · (1 − a) + b · cloud · a, with
       ``cloud`` the thick-cloud spectrum :data:`CLOUD_DN` and b ~ U(0.8, 1.1);
    6. ``valid`` loses the pixels with a > ``mask_opacity`` (and the shadows if
       ``mask_shadows``), dilated by ``dilate`` pixels — what a detector sees;
       ``present["s2"]`` becomes False when more than ``max_cloud_fraction`` of ``valid`` is
       False (:func:`rsfuse.data.clouds.s2_usable`).

    Run it on raw digital numbers, before :class:`~rsfuse.data.transforms.Normalize`.
    Random numbers come from torch's generator of the batch's device.

    Args:
        band_names: the S2 channels of the batch, in order.
        p: probability that a sample gets clouds.
        cover: range of the cover fraction of a partly clouded sample.
        overcast_p: probability that a clouded sample is fully overcast.
        shadow_p: probability of a shadow.
        scale_range: coarse-grid factor range of the cloud field (larger: bigger clouds).
        mask_opacity: opacity above which a pixel is marked invalid.
        mask_shadows: also mark shadows invalid (the built-in spectral test does not see
            them; s2cloudless and SCL partly do).
        dilate: dilation of the invalid mask in pixels.
        max_cloud_fraction: the routing threshold of the data (see above).

    Shapes:
        ``s2`` [B, C, H, W] raw (float or uint16 → float32 out), ``valid`` bool [B, H, W]
        (created when absent), ``present["s2"]`` bool [B].
    """

    def __init__(
        self,
        band_names: Sequence[str],
        p: float = 0.5,
        cover: tuple[float, float] = (0.05, 1.0),
        overcast_p: float = 0.25,
        shadow_p: float = 0.5,
        scale_range: tuple[float, float] = (6.0, 20.0),
        mask_opacity: float = 0.5,
        mask_shadows: bool = False,
        dilate: int = 2,
        max_cloud_fraction: float = DEFAULT_MAX_CLOUD_FRACTION,
    ) -> None:
        super().__init__()
        for name, v in (("p", p), ("overcast_p", overcast_p), ("shadow_p", shadow_p),
                        ("mask_opacity", mask_opacity)):  # fmt: skip
            if not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"cloud augmentation {name} must be in [0, 1], got {v}", name)
        if not 0.0 <= cover[0] <= cover[1] <= 1.0:
            raise ConfigError(f"cover must be 0 <= lo <= hi <= 1, got {cover}", key="cover")
        if not 1.0 <= scale_range[0] <= scale_range[1]:
            raise ConfigError(f"scale_range must be 1 <= lo <= hi, got {scale_range}", "scale")
        unknown = [b for b in band_names if b not in CLOUD_DN]
        if unknown:
            raise ConfigError(f"no cloud spectrum for S2 bands {unknown}", key="s2_bands")
        self.band_names = tuple(band_names)
        self.p, self.overcast_p, self.shadow_p = float(p), float(overcast_p), float(shadow_p)
        self.cover = (float(cover[0]), float(cover[1]))
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.mask_opacity = float(mask_opacity)
        self.mask_shadows = bool(mask_shadows)
        self.dilate = int(dilate)
        self.max_cloud_fraction = check_max_cloud_fraction(max_cloud_fraction)
        self.register_buffer(
            "cloud", torch.tensor([CLOUD_DN[b] for b in self.band_names]), persistent=False
        )

    # ------------------------------------------------------------------ fields
    def _field(self, b: int, h: int, w: int, device: torch.device) -> Tensor:
        """Standardised smooth random fields [B, H, W]."""
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * float(torch.rand(()))  # one size per call (host RNG)
        gh, gw = max(2, round(h / scale) + 1), max(2, round(w / scale) + 1)
        noise = torch.randn(b, 1, gh, gw, device=device)
        f = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=True)[:, 0]
        f = f - f.mean(dim=(1, 2), keepdim=True)
        return f / f.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)

    def opacity(self, b: int, h: int, w: int, device: torch.device) -> Tensor:
        """Cloud opacity [B, H, W] in [0, 1] (steps 1–3), before choosing samples."""
        f = self._field(b, h, w, device)  # [B, H, W]
        u = torch.rand(3, b, device=device)
        c = self.cover[0] + (self.cover[1] - self.cover[0]) * u[0]  # [B]
        flat = f.flatten(1).sort(dim=1).values  # [B, HW]
        k = ((1.0 - c) * (flat.shape[1] - 1)).round().long().clamp(0, flat.shape[1] - 1)
        q = flat.gather(1, k[:, None]).view(b, 1, 1)
        tau = (0.1 + 0.4 * u[1]).view(b, 1, 1)
        a = 1.0 - torch.exp(-torch.relu(f - q) / tau)
        overcast = (u[2] < self.overcast_p).view(b, 1, 1)
        return torch.where(overcast, torch.ones_like(a), a)

    def _shadow(self, a: Tensor) -> Tensor:
        """Shadow mask [B, H, W]: clouds shifted by 4–15 px, where the sky is clear."""
        b, h, w = a.shape
        u = torch.rand(4, b, device=a.device)
        dy = (4 + 11 * u[0]) * torch.where(u[2] < 0.5, -1.0, 1.0)
        dx = (4 + 11 * u[1]) * torch.where(u[3] < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=a.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = -2.0 * dx / w
        theta[:, 1, 2] = -2.0 * dy / h
        grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
        shifted = F.grid_sample(a[:, None], grid, align_corners=False, padding_mode="zeros")
        return (shifted[:, 0] > 0.3) & (a < 0.05)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> Batch:
        """A new batch with clouds on the chosen samples' S2 (see the class docstring)."""
        out = copy_batch(batch)
        if "s2" not in batch:
            return out
        s2 = batch["s2"].float()  # [B, C, H, W]
        if s2.shape[1] != len(self.band_names):
            raise ConfigError(
                f"cloud augmentation built for {len(self.band_names)} S2 bands, the batch "
                f"has {s2.shape[1]}",
                key="s2_bands",
            )
        b, _, h, w = s2.shape
        dev = s2.device
        has_s2 = presence(batch, "s2", b, dev)
        u = torch.rand(3, b, device=dev)
        chosen = (u[0] < self.p) & has_s2  # [B]
        a = self.opacity(b, h, w, dev) * chosen.view(b, 1, 1)  # [B, H, W]
        shadow = self._shadow(a) & (u[1] < self.shadow_p).view(b, 1, 1) & chosen.view(b, 1, 1)
        dark = 0.35 + 0.25 * u[2]  # [B]
        x = s2 * torch.where(shadow[:, None], dark.view(b, 1, 1, 1), torch.ones((), device=dev))
        bright = 0.8 + 0.3 * torch.rand(b, 1, 1, 1, device=dev)
        if self.cloud.device != dev:  # once: no host-to-device copy per batch
            self.to(dev)
        cloud = self.cloud.view(1, -1, 1, 1) * bright  # [B, C, 1, 1]
        x = x * (1.0 - a[:, None]) + cloud * a[:, None]
        out["s2"] = x
        invalid = a > self.mask_opacity
        if self.mask_shadows:
            invalid |= shadow
        if self.dilate > 0:
            k = 2 * self.dilate + 1
            invalid = F.max_pool2d(invalid[:, None].float(), k, 1, self.dilate)[:, 0] > 0
        valid = batch.get("valid")
        valid = torch.ones_like(invalid) if valid is None else valid.to(dev).bool()
        valid = valid & ~invalid
        out["valid"] = valid
        present = dict(out.get("present") or {})
        fraction = 1.0 - valid.float().mean(dim=(1, 2))
        present["s2"] = has_s2 & s2_usable(fraction, self.max_cloud_fraction)
        out["present"] = present
        return out

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, cover={self.cover}, overcast_p={self.overcast_p}, "
            f"shadow_p={self.shadow_p}, mask_opacity={self.mask_opacity}"
        )
