"""DINO's self-distillation loss with centring (Caron et al. 2021; DINO-MM).

For ``V`` student crops (2 global then ``V − 2`` local, crop-major: rows ``v·B … (v+1)·B − 1``
belong to crop ``v``) and the teacher's 2 global crops, with teacher temperature ``τ_t(e)``
at epoch ``e``, student temperature ``τ_s`` and centre ``c`` [1, K]::

    P_t^(i) = softmax((g_t(x_i) − c) / τ_t(e))             i ∈ {1, 2} (global crops)
    log P_s^(v) = log_softmax(g_s(x_v) / τ_s)              v ∈ {1 … V}
    L = 1 / #pairs · Σ_{i} Σ_{v ≠ i} mean_batch( −Σ_k P_t^(i)_k · log P_s^(v)_k )

(``#pairs = 2·V − 2``: a global crop is never compared with itself). After the loss, the
centre moves towards the mean teacher output of the global batch (all DDP ranks)::

    c ← m · c + (1 − m) · mean_{ranks, rows} g_t(x)

The teacher temperature warms up linearly from ``warmup_teacher_temp`` to ``teacher_temp``
over ``warmup_teacher_temp_epochs`` epochs (:func:`teacher_temp_schedule`, endpoints
included, as ``np.linspace`` in the DINO code) and stays there. These semantics reproduce
``facebookresearch/dino`` ``DINOLoss`` (``tests/data/conformance/dino.npz``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsfuse.distributed import concat_all_gather, world_size
from rsfuse.errors import ConfigError

__all__ = ["DINOLoss", "teacher_temp_schedule"]


def teacher_temp_schedule(
    warmup_teacher_temp: float,
    teacher_temp: float,
    warmup_teacher_temp_epochs: int,
    nepochs: int,
) -> np.ndarray:
    """Teacher temperature per epoch: linear warm-up (endpoints included), then constant.

    ``linspace(warmup_teacher_temp, teacher_temp, W)`` for the first ``W`` epochs, then
    ``teacher_temp`` for the remaining ``nepochs − W`` (DINO: 0.04 → 0.04–0.07 over 30 epochs).

    Args:
        warmup_teacher_temp: τ_t at epoch 0.
        teacher_temp: τ_t after the warm-up.
        warmup_teacher_temp_epochs: W, warm-up length in epochs (0: no warm-up).
        nepochs: total epochs.

    Returns:
        float64 array [nepochs].

    Raises:
        ConfigError: non-positive temperature, or a warm-up longer than training.
    """
    if warmup_teacher_temp <= 0 or teacher_temp <= 0:
        raise ConfigError(
            f"teacher temperatures must be > 0, got {warmup_teacher_temp}, {teacher_temp}",
            key="teacher_temp",
        )
    w = int(warmup_teacher_temp_epochs)
    if not 0 <= w <= nepochs:
        raise ConfigError(
            f"warmup_teacher_temp_epochs must lie in [0, {nepochs}], got {w}",
            key="warmup_teacher_temp_epochs",
        )
    return np.concatenate(
        (
            np.linspace(warmup_teacher_temp, teacher_temp, w),
            np.ones(nepochs - w) * teacher_temp,
        )
    )


class DINOLoss(nn.Module):
    """Cross-entropy between centred, sharpened teacher and student distributions.

    Args:
        out_dim: K, width of the DINO head's output (DINO: 65536).
        ncrops: V, student crops (2 global + local).
        warmup_teacher_temp: τ_t at epoch 0 (0.04).
        teacher_temp: τ_t after the warm-up (0.04; DINO allows up to 0.07).
        warmup_teacher_temp_epochs: warm-up length (0: constant ``teacher_temp``).
        nepochs: training epochs; epochs beyond use the last temperature.
        student_temp: τ_s (0.1).
        center_momentum: m of the centre update (0.9).
        n_global_crops: crops the teacher sees (2).

    Shapes:
        student_output [V·B, K], teacher_output [G·B, K] (crop-major), loss: scalar.
    """

    center: Tensor

    def __init__(
        self,
        out_dim: int,
        ncrops: int,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        nepochs: int = 100,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        n_global_crops: int = 2,
    ) -> None:
        super().__init__()
        if student_temp <= 0:
            raise ConfigError(f"student_temp must be > 0, got {student_temp}", key="student_temp")
        if not 0.0 <= center_momentum <= 1.0:
            raise ConfigError(
                f"center_momentum must lie in [0, 1], got {center_momentum}",
                key="center_momentum",
            )
        if not 1 <= n_global_crops <= ncrops:
            raise ConfigError(
                f"need 1 <= global crops ({n_global_crops}) <= crops ({ncrops})", key="ncrops"
            )
        self.out_dim = out_dim
        self.ncrops = ncrops
        self.n_global_crops = n_global_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.teacher_temps = teacher_temp_schedule(
            warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, max(nepochs, 1)
        )
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temp(self, epoch: int) -> float:
        """τ_t at ``epoch`` (the last value after the schedule's end)."""
        return float(self.teacher_temps[min(max(int(epoch), 0), len(self.teacher_temps) - 1)])

    def forward(self, student_output: Tensor, teacher_output: Tensor, epoch: int) -> Tensor:
        """The loss of one step; then updates :attr:`center` (no gradient).

        Args:
            student_output: [V·B, K] student head outputs, crop-major.
            teacher_output: [G·B, K] teacher head outputs of the global crops, crop-major.
            epoch: current epoch (selects τ_t).

        Returns:
            Scalar loss (mean over the ``G·V − G`` crop pairs and the batch).
        """
        if student_output.shape[0] % self.ncrops:
            raise ConfigError(
                f"student rows {student_output.shape[0]} not divisible by {self.ncrops} crops"
            )
        student_out = (student_output.float() / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp(epoch)
        teacher_out = F.softmax((teacher_output.float() - self.center) / temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(self.n_global_crops)

        total = student_output.new_zeros((), dtype=torch.float32)
        n_terms = 0
        for iq, q in enumerate(teacher_out):
            for v, s in enumerate(student_out):
                if v == iq:
                    continue  # a crop is never its own target
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                n_terms += 1
        self.update_center(teacher_output)
        return total / n_terms

    @torch.no_grad()
    def update_center(self, teacher_output: Tensor) -> None:
        """c ← m·c + (1 − m)·mean of ``teacher_output`` [G·B, K] over every DDP rank."""
        local_sum = teacher_output.float().sum(dim=0, keepdim=True)  # [1, K]
        total = concat_all_gather(local_sum).sum(dim=0, keepdim=True)  # [1, K] over ranks
        batch_center = total / (teacher_output.shape[0] * world_size())
        self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))

    def extra_repr(self) -> str:
        return (
            f"out_dim={self.out_dim}, ncrops={self.ncrops}, student_temp={self.student_temp}, "
            f"center_momentum={self.center_momentum}"
        )
