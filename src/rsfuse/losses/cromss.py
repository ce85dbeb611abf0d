"""CromSS losses: weighted CE, weighted soft Dice and cross-modal consistency (CromSS).

For branch (modality) ``i`` with softmax prediction ``p_i`` [B, C, H, W], (smoothed) noisy
label ``y`` [B, C, H, W] (one-hot, or Eq. 13's smoothed form) and the sample selection mask
``w_i`` [B, H, W] of :class:`~rsfuse.losses.sample_selection.CrossModalSampleSelection`
(Eq. 11), the segmentation loss of Eq. 6 is::

    L_CE^i   = Σ_n w_n · (−Σ_c y_nc · log p_nc) / Σ_n w_n                         (6, CE)
    L_Dice^i = 1/C · Σ_c [Σ_n y_nc > 0] · (1 − 2 Σ_n w_n p_nc y_nc / Σ_n w_n (p_nc + y_nc))

(``[Σ_n y_nc > 0]``: a class whose target has no mass over the labelled pixels of the batch
contributes 0 to the mean over all C classes. As in the authors' ``SoftDiceLoss`` this is
decided on the target the loss sees: with hard labels a class counts when some pixel is
labelled ``c``; with Eq. 13's smoothed labels every class has mass (β/C > 0), so every class
counts). The
consistency loss of Eq. 7 uses the other branch's detached prediction as a soft target,
weighted by the other branch's consistency mask ``w'_j`` (Eq. 12)::

    con_i = Σ_n w'_jn · ℓ(p_in, sg(p_jn)) / Σ_n w'_jn
    ℓ = −Σ_c p_jc log p_ic              (default, "ce"; the authors' code)
    ℓ =  Σ_c p_jc (log p_jc − log p_ic)  ("kl"; Eq. 5 of the paper)

and the total (Eq. 1) is ``Σ_i (L_CE^i + L_Dice^i) + λ · (con_1 + con_2)`` with λ = 1.
These semantics reproduce ``zhu-xlab/CromSS`` (``tests/data/conformance/cromss.npz``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsfuse.errors import ConfigError

__all__ = [
    "IGNORE_INDEX",
    "CromSSLoss",
    "CrossModalConsistencyLoss",
    "WeightedCrossEntropyLoss",
    "WeightedSoftDiceLoss",
    "one_hot_target",
]

#: Label value of unlabelled pixels.
IGNORE_INDEX = 255
_EPS = 1e-7


def one_hot_target(
    labels: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """One-hot targets and the valid-pixel mask of integer labels.

    Args:
        labels: int64 [B, H, W], ``ignore_index`` for unlabelled pixels.
        num_classes: C.
        ignore_index: label of unlabelled pixels.

    Returns:
        (one-hot float [B, C, H, W] (zeros at ignored pixels), valid bool [B, H, W]).
    """
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    oh = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float()
    return oh * valid.unsqueeze(1), valid


def _targets(
    logits: Tensor, target: Tensor, weight: Tensor | None, labels: Tensor | None, ignore: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(soft target [B,C,H,W], weights [B,H,W] (0 at ignored pixels), hard labels [B,H,W])."""
    c = logits.shape[1]
    if target.dtype in (torch.int64, torch.int32, torch.uint8):
        labels = target.long()
        soft, valid = one_hot_target(labels, c, ignore)
    else:
        if target.shape != logits.shape:
            raise ValueError(f"soft target {tuple(target.shape)} != logits {tuple(logits.shape)}")
        soft = target.float()
        if labels is None:
            labels = soft.argmax(1)
        valid = labels != ignore
    w = valid.float() if weight is None else weight.float() * valid
    return soft, w, labels


class PixelWeightedLoss(nn.Module):
    """Base of CromSS's pixel-weighted segmentation losses (Eq. 6): targets and weights are
    prepared once (:func:`_targets`), a subclass reduces them (:meth:`reduce`).

    Args:
        ignore_index: label of unlabelled pixels (weight 0).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(
        self,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """The loss of a batch.

        Args:
            logits: [B, C, H, W].
            target: int64 labels [B, H, W] or a (smoothed) distribution [B, C, H, W].
            weight: selection mask w [B, H, W] (None: all 1).
            labels: hard labels [B, H, W] for the ignore mask with a soft ``target``.

        Returns:
            scalar loss.
        """
        soft, w, hard = _targets(logits, target, weight, labels, self.ignore_index)
        return self.reduce(logits.float(), soft, w, hard)

    def reduce(self, logits: Tensor, soft: Tensor, w: Tensor, hard: Tensor) -> Tensor:
        """The loss from logits [B, C, H, W], target distribution [B, C, H, W], pixel
        weights [B, H, W] (0 on unlabelled pixels) and hard labels [B, H, W]."""
        raise NotImplementedError


class WeightedCrossEntropyLoss(PixelWeightedLoss):
    """Pixel-weighted cross-entropy against hard or soft labels (Eq. 6, CE part).

    ``L = Σ_n w_n · (−Σ_c y_nc log softmax(z)_nc) / Σ_n w_n`` over batch and pixels (0 when
    every weight is 0).

    Args:
        ignore_index: label of unlabelled pixels (weight 0).
    """

    def reduce(self, logits: Tensor, soft: Tensor, w: Tensor, hard: Tensor) -> Tensor:
        ce = -(soft * F.log_softmax(logits, dim=1)).sum(1)  # [B, H, W]
        return (ce * w).sum() / w.sum().clamp_min(1e-12)


class WeightedSoftDiceLoss(PixelWeightedLoss):
    """Pixel-weighted soft Dice loss over batch and pixels per class (Eq. 6, Dice part).

    ``L = 1/C Σ_c [Σ_n y_nc > 0] (1 − 2 Σ_n w_n p_nc y_nc / Σ_n w_n (p_nc + y_nc))``, ``p``
    the softmax and ``y`` the target (one-hot or smoothed). Whether class ``c`` counts is
    decided on the unweighted target over the labelled pixels, as the CromSS code's
    ``SoftDiceLoss`` does: with smoothed labels every class counts
    (``tests/data/conformance/cromss_v2.npz``).

    Args:
        ignore_index: label of unlabelled pixels (weight 0).
    """

    def reduce(self, logits: Tensor, soft: Tensor, w: Tensor, hard: Tensor) -> Tensor:
        p = F.softmax(logits, dim=1)
        w = w.unsqueeze(1)
        inter = (w * p * soft).sum((0, 2, 3))  # [C]
        union = (w * (p + soft)).sum((0, 2, 3))  # [C]
        valid = (hard != self.ignore_index).unsqueeze(1)
        has_mass = (soft * valid).sum((0, 2, 3)) > 0  # [C]
        dice = (1.0 - 2.0 * inter / union.clamp_min(_EPS)) * has_mass
        return dice.mean()


class CrossModalConsistencyLoss(nn.Module):
    """Consistency of branch ``i`` with the detached prediction of branch ``j`` (Eq. 5, 7).

    ``con_i = Σ_n w'_jn ℓ(p_in, sg(p_jn)) / Σ_n w'_jn``, ``ℓ`` the CE ``−Σ_c p_jc log p_ic``
    (``kind="ce"``, the authors' default) or the KL ``Σ_c p_jc (log p_jc − log p_ic)``.

    Args:
        kind: ``"ce"`` or ``"kl"``.
    """

    def __init__(self, kind: Literal["ce", "kl"] = "ce") -> None:
        super().__init__()
        if kind not in ("ce", "kl"):
            raise ConfigError(f"consistency kind must be 'ce' or 'kl', got {kind!r}", key="kind")
        self.kind = kind

    def forward(self, logits_i: Tensor, logits_j: Tensor, weight_j: Tensor | None = None) -> Tensor:
        """One direction.

        Args:
            logits_i: [B, C, H, W], the branch that receives gradients.
            logits_j: [B, C, H, W], the target branch (detached here).
            weight_j: consistency mask of branch j [B, H, W] (None: all 1).

        Returns:
            scalar loss.
        """
        log_pi = F.log_softmax(logits_i.float(), dim=1)
        log_pj = F.log_softmax(logits_j.detach().float(), dim=1)
        pj = log_pj.exp()
        target = pj * log_pj if self.kind == "kl" else torch.zeros_like(pj)
        per = (target - pj * log_pi).sum(1)  # [B, H, W]
        if weight_j is None:
            return per.mean()
        w = weight_j.float()
        return (per * w).sum() / w.sum().clamp_min(1e-12)


class CromSSLoss(nn.Module):
    """Total CromSS loss (Eq. 1): ``Σ_i (L_CE^i + L_Dice^i) + λ · Σ_i con_i``.

    Args:
        num_branches: 1 (single modality: no consistency) or 2.
        consistency: ``"ce"`` (default) or ``"kl"``.
        consistency_weight: λ (1.0 in CromSS).
        dice: add the soft Dice term.
        ignore_index: label of unlabelled pixels.
    """

    def __init__(
        self,
        num_branches: int = 2,
        consistency: Literal["ce", "kl"] = "ce",
        consistency_weight: float = 1.0,
        dice: bool = True,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if num_branches not in (1, 2):
            raise ConfigError(f"num_branches must be 1 or 2, got {num_branches}", "num_branches")
        self.num_branches = num_branches
        self.consistency_weight = float(consistency_weight)
        self.ce = WeightedCrossEntropyLoss(ignore_index)
        self.dice = WeightedSoftDiceLoss(ignore_index) if dice else None
        self.consistency = CrossModalConsistencyLoss(consistency)

    def forward(
        self,
        logits: list[Tensor],
        target: Tensor,
        labels: Tensor | None = None,
        label_masks: list[Tensor] | None = None,
        consistency_masks: list[Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """All terms.

        Args:
            logits: one [B, C, H, W] per branch.
            target: int64 labels [B, H, W] or smoothed labels [B, C, H, W] (Eq. 13).
            labels: hard labels [B, H, W] (ignore mask, class presence) for a soft target.
            label_masks: selection masks w_i [B, H, W] per branch (None: all 1).
            consistency_masks: consistency masks w'_i [B, H, W] per branch (None: all 1).

        Returns:
            dict with ``loss`` and the terms ``ce_{i}``, ``dice_{i}``, ``con_{i}``, ``con``.
        """
        if len(logits) != self.num_branches:
            raise ValueError(f"expected {self.num_branches} branches, got {len(logits)}")
        out: dict[str, Tensor] = {}
        total = logits[0].new_zeros((), dtype=torch.float32)
        for i, z in enumerate(logits):
            w = None if label_masks is None else label_masks[i]
            out[f"ce_{i}"] = self.ce(z, target, w, labels)
            total = total + out[f"ce_{i}"]
            if self.dice is not None:
                out[f"dice_{i}"] = self.dice(z, target, w, labels)
                total = total + out[f"dice_{i}"]
        if self.num_branches == 2:
            cm = consistency_masks or [None, None]
            out["con_0"] = self.consistency(logits[0], logits[1], cm[1])
            out["con_1"] = self.consistency(logits[1], logits[0], cm[0])
            out["con"] = out["con_0"] + out["con_1"]
            total = total + self.consistency_weight * out["con"]
        out["loss"] = total
        return out
