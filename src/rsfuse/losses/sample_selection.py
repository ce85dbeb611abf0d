"""CromSS's cross-modal sample selection (CromSS §III-B, Eq. 8–12).

Three steps on the detached softmax ``p_m`` [B, C, H, W] of each modality ``m``:

1. Confidence masks: label-based ``c_m = p_m[y]`` (Eq. 8) for the segmentation loss and
   entropy-based ``c'_m = clamp(1 − H(p_m) / log C, 0, 1)`` (Eq. 9) for the consistency loss.
2. Cross-modal enhancement (Eq. 10), for both kinds: ``c̃_m = (c_m + c_1 · c_2) / 2``.
3. Thresholding. Segmentation (Eq. 11, per class as in the paper's footnote 5): for each
   class ``k`` in the batch, ``n = int(count_k · r(e))`` and ``τ_k`` = the n-th largest
   ``c̃`` among the pixels labelled ``k``; weight ``clip(c̃ / τ_k, 0, 1)``; ``τ_k = 0`` →
   weight 1, ``n = 0`` → weight 0. The ratio ramps from 1 to ``r∞`` over ``T`` epochs::

       ramp(e) = exp(−5 (1 − min(e, T) / T)²),   r(e) = 1 − ramp(e) · (1 − r∞)

   Consistency (Eq. 12): ``w'_m = (1 − ramp(e)) + ramp(e) · c̃'_m`` (= ``c̃'_m`` from T on).

Unlabelled pixels (255) get weight 0 in the segmentation masks. These semantics reproduce
``zhu-xlab/CromSS`` (``tests/data/conformance/cromss.npz``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rsfuse.errors import ConfigError

__all__ = [
    "CrossModalSampleSelection",
    "class_balanced_selection",
    "consistency_weights",
    "cross_modal_enhancement",
    "entropy_confidence",
    "label_confidence",
    "ramp",
    "selection_ratio",
]

IGNORE_INDEX = 255


def label_confidence(probs: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Label-based confidence ``c_n = p_n[y_n]`` (Eq. 8).

    Args:
        probs: softmax [B, C, H, W] (detached here).
        labels: int64 [B, H, W].
        ignore_index: unlabelled pixels get confidence 0.

    Returns:
        [B, H, W].
    """
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    conf = probs.detach().gather(1, safe.unsqueeze(1)).squeeze(1)
    return conf * valid


def entropy_confidence(probs: Tensor) -> Tensor:
    """Entropy-based confidence ``clamp(1 − H(p) / log C, 0, 1)`` (Eq. 9).

    Args:
        probs: softmax [B, C, H, W] (detached here).

    Returns:
        [B, H, W].
    """
    p = probs.detach()
    c = p.shape[1]
    ent = -(p * p.clamp_min(1e-30).log()).sum(1)
    return (1.0 - ent / math.log(c)).clamp(0.0, 1.0)


def cross_modal_enhancement(c_1: Tensor, c_2: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 10: ``c̃_i = (c_i + c_1 · c_2) / 2`` for both modalities.

    Args:
        c_1: confidence of modality 1 [B, H, W].
        c_2: confidence of modality 2 [B, H, W].

    Returns:
        (c̃_1, c̃_2).
    """
    prod = c_1 * c_2
    return (c_1 + prod) / 2, (c_2 + prod) / 2


def ramp(epoch: float, ramp_epochs: int) -> float:
    """``exp(−5 (1 − min(e, T) / T)²)``: 0.0067 at e = 0, 1 from e = T (T = 0: always 1)."""
    if ramp_epochs <= 0:
        return 1.0
    t = min(max(float(epoch), 0.0), float(ramp_epochs)) / ramp_epochs
    return math.exp(-5.0 * (1.0 - t) ** 2)


def selection_ratio(epoch: float, ramp_epochs: int, r_inf: float) -> float:
    """``r(e) = 1 − ramp(e, T) · (1 − r∞)``: from ≈1 at e = 0 to r∞ at e ≥ T."""
    return 1.0 - ramp(epoch, ramp_epochs) * (1.0 - r_inf)


def class_balanced_selection(
    conf: Tensor, labels: Tensor, ratio: float, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Per-class soft thresholding of Eq. 11 (footnote 5).

    For each class k present in ``labels``: ``n = int(count_k · ratio)``; ``τ_k`` = the n-th
    largest ``conf`` among pixels labelled k; weight ``clip(conf / τ_k, 0, 1)``, 1 where
    ``τ_k = 0``, 0 for the whole class where ``n = 0``.

    Args:
        conf: enhanced label confidence c̃ [B, H, W].
        labels: int64 [B, H, W].
        ratio: selection ratio r in [0, 1].
        num_classes: C.
        ignore_index: unlabelled pixels get weight 0.

    Returns:
        weights [B, H, W] in [0, 1].
    """
    conf = conf.detach()
    w = torch.zeros_like(conf)
    flat_c, flat_y, flat_w = conf.reshape(-1), labels.reshape(-1), w.view(-1)
    for k in range(num_classes):
        idx = (flat_y == k).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        n = int(idx.numel() * ratio)
        if n == 0:
            continue  # weight 0 for the class
        vals = flat_c[idx]
        tau = torch.topk(vals, n, sorted=True).values[-1]
        if float(tau) == 0.0:
            flat_w[idx] = 1.0
        else:
            flat_w[idx] = (vals / tau).clamp(0.0, 1.0)
    return w * (labels != ignore_index)


def consistency_weights(conf_ent: Tensor, epoch: float, ramp_epochs: int) -> Tensor:
    """Eq. 12: ``w' = (1 − ramp(e)) + ramp(e) · c̃'`` (``c̃'`` from e = T on)."""
    r = ramp(epoch, ramp_epochs)
    return (1.0 - r) + r * conf_ent.detach()


class CrossModalSampleSelection(nn.Module):
    """Selection masks of CromSS for two modalities (Eq. 8–12); no parameters.

    Args:
        num_classes: C.
        r_inf: final selection ratio r∞ of the segmentation loss (CromSS: 0.5).
        ramp_epochs: T, epochs of the ramp (CromSS: 80).
        cross_modal: apply the cross-modal enhancement of Eq. 10 (False: each modality's own
            confidence, an ablation).
        ignore_index: label of unlabelled pixels.

    Raises:
        ConfigError: r∞ outside [0, 1] or negative T.
    """

    def __init__(
        self,
        num_classes: int,
        r_inf: float = 0.5,
        ramp_epochs: int = 80,
        cross_modal: bool = True,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if not 0.0 <= r_inf <= 1.0:
            raise ConfigError(f"r_inf must be in [0, 1], got {r_inf}", key="r_inf")
        if ramp_epochs < 0:
            raise ConfigError(f"ramp_epochs must be >= 0, got {ramp_epochs}", key="ramp_epochs")
        self.num_classes = num_classes
        self.r_inf = float(r_inf)
        self.ramp_epochs = int(ramp_epochs)
        self.cross_modal = cross_modal
        self.ignore_index = ignore_index

    @torch.no_grad()
    def forward(self, logits_1: Tensor, logits_2: Tensor, labels: Tensor, epoch: float) -> dict:
        """Masks for both branches at ``epoch``.

        Args:
            logits_1: [B, C, H, W] of modality 1 (detached here, computed in float32).
            logits_2: [B, C, H, W] of modality 2.
            labels: noisy labels int64 [B, H, W].
            epoch: current (0-based) epoch.

        Returns:
            dict: ``label_masks`` and ``consistency_masks`` (lists of two [B, H, W]), the
            confidences ``label_conf``, ``entropy_conf`` and their enhanced forms
            ``label_conf_enh``, ``entropy_conf_enh`` (lists of two), ``ratio`` and ``ramp``.
        """
        p = [logits_1.detach().float().softmax(1), logits_2.detach().float().softmax(1)]
        lab = [label_confidence(q, labels, self.ignore_index) for q in p]
        ent = [entropy_confidence(q) for q in p]
        if self.cross_modal:
            lab_e = list(cross_modal_enhancement(*lab))
            ent_e = list(cross_modal_enhancement(*ent))
        else:
            lab_e, ent_e = lab, ent
        r = selection_ratio(epoch, self.ramp_epochs, self.r_inf)
        label_masks = [
            class_balanced_selection(c, labels, r, self.num_classes, self.ignore_index)
            for c in lab_e
        ]
        cons_masks = [consistency_weights(c, epoch, self.ramp_epochs) for c in ent_e]
        return {
            "label_masks": label_masks,
            "consistency_masks": cons_masks,
            "label_conf": lab,
            "entropy_conf": ent,
            "label_conf_enh": lab_e,
            "entropy_conf_enh": ent_e,
            "ratio": r,
            "ramp": ramp(epoch, self.ramp_epochs),
        }
