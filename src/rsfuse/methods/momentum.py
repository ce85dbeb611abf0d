"""Momentum (EMA) encoders shared by MoCo v3, MGSViT and DINO.

A momentum ("key", "teacher") network is a frozen copy of the online ("query", "student")
network, moved after every optimiser step by

    θ_k ← m · θ_k + (1 − m) · θ_q

with ``m`` increased from ``m0`` to 1 along a half cosine over training (MoCo v3, BYOL, DINO):

    m(t) = 1 − ½ (1 + cos(π · t / T)) · (1 − m0)

where ``t`` counts epochs (MoCo v3 code: fractional epochs) or steps, and ``T`` is the total.
"""

from __future__ import annotations

import copy
import math

import torch
from timm.layers import DropPath
from torch import nn

from rsfuse.errors import ConfigError


def cosine_momentum(t: float, total: float, base: float, final: float = 1.0) -> float:
    """m(t) = final − ½ (1 + cos(π t / T)) · (final − base), clipped to t ∈ [0, T].

    With ``final = 1`` this is MoCo v3's ``adjust_moco_momentum`` and DINO's teacher
    schedule. ``total <= 0`` returns ``base``.
    """
    if not 0.0 <= base <= 1.0 or not 0.0 <= final <= 1.0:
        raise ConfigError(f"momentum must lie in [0, 1], got base={base}, final={final}")
    if total <= 0:
        return base
    t = min(max(t, 0.0), total)
    return final - 0.5 * (1.0 + math.cos(math.pi * t / total)) * (final - base)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A deterministic deep copy of ``module`` whose parameters never receive gradients.

    Stochastic depth and dropout are switched off in the copy (``drop_prob`` / ``p`` set
    to 0; the parameters, and so the EMA pairing, are unchanged): MoCo v3's momentum
    encoder and DINO's teacher are built without drop-path, so the keys / teacher targets
    are a deterministic function of the view even though the copy runs in train mode.
    """
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    for m in twin.modules():
        if isinstance(m, DropPath):
            m.drop_prob = 0.0
        elif isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
    return twin


@torch.no_grad()
def ema_update(momentum_module: nn.Module, online: nn.Module, m: float) -> None:
    """θ_k ← m · θ_k + (1 − m) · θ_q for every parameter.

    Buffers (BatchNorm running statistics) are left alone: as in the MoCo v3 and DINO code,
    the momentum network keeps its own, updated by its own forward passes. Both modules
    must have the same structure (e.g. ``momentum_copy(online)``).
    """
    k_params = list(momentum_module.parameters())
    q_params = list(online.parameters())
    if len(k_params) != len(q_params):
        raise ConfigError("momentum and online networks differ in structure")
    if k_params:
        torch._foreach_mul_(k_params, m)
        torch._foreach_add_(k_params, [q.detach() for q in q_params], alpha=1.0 - m)
