"""Random Sensor Drop (DINO-MM): one early-fusion model learns SAR-only, optical-only and
joint inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsfuse.data.sample import Batch
from rsfuse.data.transforms.batch import copy_batch, presence, zero_absent
from rsfuse.errors import ConfigError


class RandomSensorDrop(nn.Module):
    """Random Sensor Drop (DINO-MM, Wang et al. 2022, IGARSS; REFERENCE.md).

    For each sample that has both sensors, with probability ``p`` zero either all S2 channels
    (probability ``s2_prob``) or all S1 channels, and set that sensor's ``present`` flag to
    ``False``. With the defaults a sample keeps both sensors 50 % of the time and is S1-only
    or S2-only 25 % each, so one early-fusion encoder learns SAR-only, optical-only and joint
    inputs. Samples with a single sensor are never dropped. Run it *after* normalisation: a
    dropped sensor then reads 0 (the mean in ``"standardize"`` mode), like a missing one.
    Random numbers come from torch's generator of the batch's device, so the result is
    deterministic given that generator's state.

    Args:
        p: probability of dropping one sensor of a two-sensor sample.
        s2_prob: probability that the dropped sensor is S2 (otherwise S1).

    Shapes:
        ``s1`` [B, 2, H, W], ``s2`` [B, C, H, W], ``present`` bool [B] each; same out.
    """

    def __init__(self, p: float = 0.5, s2_prob: float = 0.5) -> None:
        super().__init__()
        for name, v in (("p", p), ("s2_prob", s2_prob)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {v}", key=name)
        self.p = float(p)
        self.s2_prob = float(s2_prob)

    @classmethod
    def for_sensors(
        cls, modalities: Sequence[str], p: float, s2_prob: float
    ) -> RandomSensorDrop | None:
        """A sensor drop for a two-sensor input, ``None`` for one sensor (nothing to drop)."""
        return cls(p, s2_prob) if len(modalities) == 2 else None

    def forward(self, batch: Batch) -> Batch:
        """Drop sensors in a (normalised) batch; returns a new batch dict."""
        out = copy_batch(batch)
        if "s1" not in batch or "s2" not in batch:
            return out
        s1, s2 = batch["s1"], batch["s2"]
        b, device = s2.shape[0], s2.device
        has_s1 = presence(batch, "s1", b, device)
        has_s2 = presence(batch, "s2", b, device)
        u = torch.rand(2, b, device=device)
        drop = (u[0] < self.p) & has_s1 & has_s2
        drop_s2 = drop & (u[1] < self.s2_prob)
        drop_s1 = drop & ~drop_s2
        keep_s1, keep_s2 = has_s1 & ~drop_s1, has_s2 & ~drop_s2
        out["s1"] = zero_absent(s1, keep_s1)
        out["s2"] = zero_absent(s2, keep_s2)
        present = out.get("present")
        present = dict(present) if isinstance(present, dict) else {}
        present["s1"], present["s2"] = keep_s1, keep_s2
        out["present"] = present
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}, s2_prob={self.s2_prob}"
