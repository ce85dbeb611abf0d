"""Fusion of Sentinel-1 and Sentinel-2 inputs: early, concatenation and GMU (MGSViT §3.2).

Early fusion stacks the sensors' channels into one input (DINO-MM): S2 bands first,
then S1 VV, VH — the layout of :func:`rsfuse.bands.early_fusion_channels`. A sensor that is
absent from a sample (presence flag False) contributes zeros, which after normalisation is
the dataset mean: the same convention RandomSensorDrop uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from rsfuse.bands import check_modalities
from rsfuse.errors import ConfigError, DataError


def early_fusion_input(batch: dict, modalities: Sequence[str]) -> Tensor:
    """Stack the requested modalities of a batch into one tensor.

    Args:
        batch: collated batch with ``s2`` [B, C, H, W] and/or ``s1`` [B, 2, H, W] and
            ``present`` flags.
        modalities: which sensors the model sees.

    Returns:
        [B, C_s2 + 2, H, W] (S2 first) or the single sensor's tensor. Channels of a sensor
        whose presence flag is False for a sample are zero for that sample.

    Raises:
        DataError: a requested modality is not in the batch.
    """
    parts = []
    for m in sorted(check_modalities(modalities), key=lambda m: m != "s2"):
        if m not in batch:
            raise DataError(
                f"the model needs modality {m!r} but the batch only has "
                f"{[k for k in ('s1', 's2') if k in batch]}"
            )
        x = batch[m]
        present = batch.get("present", {}).get(m)
        if present is not None:
            x = x * present.to(x.dtype).view(-1, 1, 1, 1)
        parts.append(x)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


# ---------------------------------------------------------------------------- late fusion
def drop_modalities(batch: dict, modalities: Sequence[str]) -> dict:
    """A shallow copy of ``batch`` in which ``modalities`` are absent for every sample.

    Their presence flags become False and their tensors zeros (the dataset mean after
    normalisation), so both early fusion and :class:`GatedMultimodalUnit` see them missing.
    Used to score a fused model on S1 only or S2 only.
    """
    out = dict(batch)
    present = dict(batch.get("present", {}))
    for m in modalities:
        if m in out:
            x = out[m]
            out[m] = torch.zeros_like(x)
            present[m] = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    out["present"] = present
    return out


def _mask(x: Tensor, present: Tensor | None) -> Tensor:
    """Zero the rows of ``x`` [B, D] whose presence flag [B] is False."""
    return x if present is None else x * present.to(x.dtype).view(-1, 1)


class ConcatFusion(nn.Module):
    """Concatenation of the pooled features of each modality ("S1 + S2" of Table 1).

    ``h = [x_1; x_2; …]`` [B, Σ D_m]. An absent modality contributes zeros.

    Args:
        modalities: modality names, in concatenation order.
        dims: feature width of each modality.
    """

    def __init__(self, modalities: Sequence[str], dims: Sequence[int]) -> None:
        super().__init__()
        if len(modalities) != len(dims):
            raise ConfigError(f"{len(modalities)} modalities but {len(dims)} feature widths")
        self.modalities = tuple(modalities)
        self.out_dim = int(sum(dims))

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor] | None = None) -> Tensor:
        """{m: [B, D_m]} → [B, Σ D_m]."""
        present = present or {}
        return torch.cat([_mask(feats[m], present.get(m)) for m in self.modalities], dim=-1)


#: Where the GMU gate z reads its input (:class:`GatedMultimodalUnit`), by source.
GMU_GATE_INPUTS: tuple[str, ...] = ("mgsvit", "arevalo", "eq4")


class GatedMultimodalUnit(nn.Module):
    """Gated multimodal unit (Arevalo et al. 2017) fusing two modalities, Eq. 2–5::

        h_1 = tanh(W_1 x_1)                                                     (2)
        h_2 = tanh(W_2 x_2)                                                     (3)
        z   = σ(W_z g)                                                          (4)
        h   = z · h_1 + (1 − z) · h_2                                           (5)

    with x_1 = S1 features [B, D_1], x_2 = S2 features [B, D_2], h [B, H]. What the gate
    reads, ``g``, differs between the sources (``gate_input``):

    * ``"mgsvit"`` (default, MGSViT's code ``GatedMultimodalLayer``): the tanh outputs,
      ``g = [h_1; h_2]`` [B, 2H];
    * ``"arevalo"`` (Arevalo et al.'s code, ``GatedBimodal``): the projections before the
      tanh, ``g = [W_1 x_1; W_2 x_2]`` [B, 2H];
    * ``"eq4"`` (Eq. 4 as printed in MGSViT): the raw features, ``g = [x_1; x_2]``
      [B, D_1 + D_2].

    ``gate="scalar"`` (default, MGSViT's code): ``W_z → 1``, one weight per sample.
    ``gate="vector"`` (Arevalo et al.): ``W_z → H``, one per feature. MGSViT's code uses
    biases in ``W_1, W_2, W_z`` (``bias=True``); Arevalo et al. apply BatchNorm to the inputs
    and use no bias (``input_norm=True, bias=False``, ``H = 512``). Parameter names map to
    MGSViT's code as ``w1`` = ``hidden1``, ``w2`` = ``hidden2``, ``wz`` = ``hidden_sigmoid``
    (``tests/data/conformance/mgsvit.npz``).

    **Missing modality.** With presence flags, a sample whose x_2 is absent gets z = 1
    (h = h_1), one whose x_1 is absent gets z = 0 (h = h_2): the gate is forced to the
    present modality and the absent input never reaches h. If both are absent, h = 0.

    Args:
        modalities: the two modality names (x_1 first).
        dims: (D_1, D_2).
        hidden_dim: H (default: D_1).
        gate: ``scalar`` or ``vector``.
        bias: biases in the three Linear layers.
        input_norm: BatchNorm1d on each input first (Arevalo et al.).
        gate_input: ``mgsvit``, ``arevalo`` or ``eq4`` (see above).
    """

    def __init__(
        self,
        modalities: Sequence[str] = ("s1", "s2"),
        dims: Sequence[int] = (768, 768),
        hidden_dim: int | None = None,
        gate: Literal["scalar", "vector"] = "scalar",
        bias: bool = True,
        input_norm: bool = False,
        gate_input: Literal["mgsvit", "arevalo", "eq4"] = "mgsvit",
    ) -> None:
        super().__init__()
        if len(modalities) != 2 or len(dims) != 2:
            raise ConfigError(f"the GMU fuses exactly 2 modalities, got {list(modalities)}")
        if gate not in ("scalar", "vector"):
            raise ConfigError(f"gmu gate must be 'scalar' or 'vector', got {gate!r}", key="gate")
        if gate_input not in GMU_GATE_INPUTS:
            raise ConfigError(
                f"gmu gate_input must be one of {list(GMU_GATE_INPUTS)}, got {gate_input!r}",
                key="gate_input",
            )
        d1, d2 = int(dims[0]), int(dims[1])
        hidden = int(hidden_dim or d1)
        self.modalities = tuple(modalities)
        self.gate_kind = gate
        self.gate_input = gate_input
        self.out_dim = hidden
        self.norm1 = nn.BatchNorm1d(d1) if input_norm else nn.Identity()
        self.norm2 = nn.BatchNorm1d(d2) if input_norm else nn.Identity()
        self.w1 = nn.Linear(d1, hidden, bias=bias)
        self.w2 = nn.Linear(d2, hidden, bias=bias)
        gate_in = d1 + d2 if gate_input == "eq4" else 2 * hidden
        self.wz = nn.Linear(gate_in, 1 if gate == "scalar" else hidden, bias=bias)
        self.last_gate: Tensor | None = None

    def forward(self, feats: dict[str, Tensor], present: dict[str, Tensor] | None = None) -> Tensor:
        """{m1: [B, D_1], m2: [B, D_2]} → h [B, H]; the gate z is kept in ``last_gate``."""
        m1, m2 = self.modalities
        present = present or {}
        p1, p2 = present.get(m1), present.get(m2)
        x1 = self.norm1(_mask(feats[m1], p1))
        x2 = self.norm2(_mask(feats[m2], p2))
        a1, a2 = self.w1(x1), self.w2(x2)  # [B, H]
        h1, h2 = torch.tanh(a1), torch.tanh(a2)  # Eq. 2, 3
        g = {"mgsvit": (h1, h2), "arevalo": (a1, a2), "eq4": (x1, x2)}[self.gate_input]
        z = torch.sigmoid(self.wz(torch.cat(g, dim=-1)))  # Eq. 4, [B, 1] or [B, H]
        if p1 is not None or p2 is not None:
            b = z.shape[0]
            ones = torch.ones(b, dtype=torch.bool, device=z.device)
            p1 = ones if p1 is None else p1.bool()
            p2 = ones if p2 is None else p2.bool()
            z = torch.where((p1 & ~p2).view(-1, 1), torch.ones_like(z), z)
            z = torch.where((~p1 & p2).view(-1, 1), torch.zeros_like(z), z)
        h = z * h1 + (1 - z) * h2  # Eq. 5
        if p1 is not None:
            h = h * (p1 | p2).to(h.dtype).view(-1, 1)
        self.last_gate = z.detach()
        return h


def encoder_features(encoder: nn.Module, x: Tensor, last_k: int = 1) -> Tensor:
    """Pooled features [B, D'] of an encoder on pixels [B, C, H, W].

    A :class:`~rsfuse.models.vit.GatedViT` gives its mean-pooled tokens (``last_k = 1``) or
    the pooled outputs of its last ``last_k`` blocks concatenated ([B, k·D]); any other
    module (e.g. a timm model built with ``num_classes=0``) is called as is.
    """
    if hasattr(encoder, "pooled_features"):
        return encoder.pooled_features(x, last_k)
    if last_k > 1:
        raise ConfigError(
            f"features of the last {last_k} blocks need a GatedViT encoder, "
            f"not {type(encoder).__name__}",
            key="probe_features",
        )
    return encoder(x)


class MultiModalClassifier(nn.Module):
    """One encoder per modality, a fusion module and a head: batch → logits [B, K].

    ``encoders`` maps a modality (``s1``, ``s2``) to its encoder. With one encoder the
    fusion is the identity. With two, ``fusion`` is a :class:`ConcatFusion` or
    :class:`GatedMultimodalUnit` that receives the pooled features and the batch's presence
    flags (so a model runs with a modality absent: see those classes).

    Early fusion (one encoder on the stacked channels, DINO-MM style) is the special key
    ``early`` with ``modalities`` naming the stacked sensors.

    Args:
        encoders: modality → encoder (each maps [B, C_m, H, W] to pooled features).
        feature_dims: modality → pooled feature width (after ``last_k``).
        num_classes: K.
        fusion: ``concat`` or ``gmu`` (two encoders) or a ready fusion module.
        modalities: for the ``early`` encoder, the sensors it stacks.
        last_k: pooled features of the last ``k`` blocks, concatenated (linear probing).
        gmu_kwargs: further :class:`GatedMultimodalUnit` arguments.
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        feature_dims: dict[str, int],
        num_classes: int,
        fusion: str | nn.Module = "concat",
        modalities: Sequence[str] | None = None,
        last_k: int = 1,
        gmu_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.early_modalities = tuple(modalities or ())
        if "early" in encoders and not self.early_modalities:
            raise ConfigError("an 'early' encoder needs the modalities it stacks")
        self.last_k = last_k
        names = list(encoders)
        dims = [int(feature_dims[m]) for m in names]
        if isinstance(fusion, nn.Module):
            self.fusion: nn.Module | None = fusion
            out_dim = int(fusion.out_dim)
        elif len(names) == 1:
            self.fusion, out_dim = None, dims[0]
        elif fusion == "concat":
            self.fusion = ConcatFusion(names, dims)
            out_dim = self.fusion.out_dim
        elif fusion == "gmu":
            self.fusion = GatedMultimodalUnit(names, dims, **(gmu_kwargs or {}))
            out_dim = self.fusion.out_dim
        else:
            raise ConfigError(f"unknown fusion {fusion!r}; expected concat or gmu", key="fusion")
        self.out_dim = out_dim
        self.head = nn.Linear(out_dim, num_classes)

    def encode(self, batch: dict) -> dict[str, Tensor]:
        """Pooled features of every encoder: ``{name: [B, D_name]}`` (before fusion)."""
        feats = {}
        for m, enc in self.encoders.items():
            if m == "early":
                x = early_fusion_input(batch, self.early_modalities)
            else:
                if m not in batch:
                    raise DataError(f"the model needs modality {m!r}; the batch lacks it")
                x = batch[m]
            feats[m] = encoder_features(enc, x, self.last_k)
        return feats

    def fuse(self, feats: dict[str, Tensor], present: dict[str, Tensor] | None) -> Tensor:
        """Fused features [B, out_dim] of :meth:`encode`'s output."""
        if self.fusion is None:
            return next(iter(feats.values()))
        return self.fusion(feats, present)

    def features(self, batch: dict) -> Tensor:
        """Fused features [B, out_dim] of a batch."""
        return self.fuse(self.encode(batch), batch.get("present"))

    def forward(self, batch: dict) -> Tensor:
        """Batch → logits [B, K]."""
        return self.head(self.features(batch))
