"""Cosine ramps of the hyperparameters that change during training (not the learning rate).

MoCo v3 and BYOL raise the key encoder's momentum, DINO its teacher's momentum and its
weight decay, along a half cosine over training::

    v(t) = end − ½ (1 + cos(π · t / T)) · (end − start),    t ∈ [0, T]         (1)

with ``t`` counted in optimiser steps (or fractional epochs, which is the same ratio).
The learning rate itself follows timm's schedulers (:mod:`rsfuse.training.optim`).
"""

from __future__ import annotations

import math

from rsfuse.errors import ConfigError


def cosine_ramp(t: float, total: float, start: float, end: float) -> float:
    """Eq. 1: ``start`` at ``t = 0``, ``end`` at ``t = total`` (clipped to [0, total]).

    ``total <= 0`` returns ``start``.
    """
    if total <= 0:
        return start
    t = min(max(t, 0.0), total)
    return end - 0.5 * (1.0 + math.cos(math.pi * t / total)) * (end - start)


def cosine_momentum(t: float, total: float, base: float, final: float = 1.0) -> float:
    """MoCo v3's ``adjust_moco_momentum`` / DINO's teacher momentum: Eq. 1 from ``base``
    to ``final`` (1).

    Raises:
        ConfigError: a momentum outside [0, 1].
    """
    if not 0.0 <= base <= 1.0 or not 0.0 <= final <= 1.0:
        raise ConfigError(f"momentum must lie in [0, 1], got base={base}, final={final}")
    return cosine_ramp(t, total, base, final)
