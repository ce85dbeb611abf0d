"""Momentum (EMA) networks shared by MoCo v3, MGSViT and DINO.

A momentum ("key", "teacher") network is a copy of the online ("query", "student") network
whose parameters follow it by an exponential moving average after every optimiser step::

    θ_k ← m · θ_k + (1 − m) · θ_q                                                   (1)

with ``m`` constant (MGSViT's runs) or rising to 1 along a cosine
(:func:`rsfuse.training.schedules.cosine_momentum`). The copy is torch's
:class:`~torch.optim.swa_utils.AveragedModel` with torch's EMA averaging function for the
step's ``m`` (``get_ema_multi_avg_fn``), over the parameters only (``use_buffers=False``):
as in the MoCo v3 and DINO
code, BatchNorm statistics of the momentum network are its own, updated by its own forward
passes. (timm's ``ModelEmaV3`` would copy the online network's buffers and pin the copy in
eval mode, where MoCo v3's momentum projector normalises with batch statistics.)
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rsfuse.errors import ConfigError

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def momentum_copy(module: nn.Module) -> AveragedModel:
    """A deterministic EMA copy of ``module`` whose parameters never receive gradients.

    Stochastic depth and dropout are switched off in the copy (``drop_prob`` / ``p`` set
    to 0; parameters, and so the EMA pairing, are unchanged): MoCo v3's momentum encoder and
    DINO's teacher are built without drop-path, so keys and teacher targets are a
    deterministic function of the view even though the copy runs in train mode. The copy
    is called like ``module``; ``.module`` is the wrapped network.
    """
    twin = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(1.0), use_buffers=False)
    twin.update_parameters(module)  # the first update only copies: θ_k = θ_q at start
    for p in twin.parameters():
        p.requires_grad_(False)
    for m in twin.modules():
        if isinstance(m, DropPath):
            m.drop_prob = 0.0
        elif isinstance(m, _DROPOUT):
            m.p = 0.0
    return twin


@torch.no_grad()
def ema_update(momentum_module: AveragedModel, online: nn.Module, m: float) -> None:
    """Eq. 1, θ_k ← m · θ_k + (1 − m) · θ_q, for every parameter of a :func:`momentum_copy`.

    Raises:
        ConfigError: ``momentum_module`` is not a momentum copy, or the two networks
            differ in structure.
    """
    if not isinstance(momentum_module, AveragedModel):
        raise ConfigError("ema_update needs a momentum_copy() of the online network")
    if len(list(momentum_module.module.parameters())) != len(list(online.parameters())):
        raise ConfigError("momentum and online networks differ in structure")
    momentum_module.multi_avg_fn = get_ema_multi_avg_fn(float(m))
    momentum_module.update_parameters(online)
