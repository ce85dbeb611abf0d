"""Augmented views of the early-fused methods (DINO-MM, MoCo-MM), made in the module.

Both methods crop and augment a normalised batch with
:class:`~rsfuse.data.transforms.MultiCropAugmentation` (DINO-MM: 2 global + local crops,
MoCo-MM: 2 crops) with the same intensity ops and Random Sensor Drop, read from the same
hyperparameters (``solarize_threshold``, ``solarize_upper``, ``solarize_direction``,
``color``, ``joint_sensors``, ``sensor_drop_p``, ``sensor_drop_s2_prob``), and stack each
view's sensors into one early-fused tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from rsfuse.data.transforms import MultiCropAugmentation, RandomSensorDrop
from rsfuse.models.fusion import early_fusion_input

__all__ = ["FusedViews"]


class FusedViews:
    """Mixin of a LightningModule that makes its own early-fused views.

    The module has ``hparams`` with the intensity and sensor-drop fields above,
    ``modalities`` and ``sensor_batch`` (:class:`~rsfuse.training.module.RsfuseModule`).
    """

    augments_views = True  # the views are made here, not by the datamodule
    augment: MultiCropAugmentation
    hparams: Any
    modalities: tuple[str, ...]
    sensor_batch: Callable[[dict], dict]

    def build_views(self, **crops: Any) -> MultiCropAugmentation:
        """Set ``self.augment``: the crops ``crops`` (``global_crops_*``, ``local_crops_*``)
        with the module's intensity ops and Random Sensor Drop."""
        hp = self.hparams
        self.augment = MultiCropAugmentation(
            **crops,
            solarize_threshold=hp.solarize_threshold,
            solarize_upper=hp.solarize_upper,
            solarize_direction=hp.solarize_direction,
            color=hp.color,
            joint_sensors=hp.joint_sensors,
            sensor_drop=RandomSensorDrop.for_sensors(
                self.modalities, hp.sensor_drop_p, hp.sensor_drop_s2_prob
            ),
        )
        return self.augment

    def fused_views(self, batch: dict) -> list[Tensor]:
        """The augmented views of a normalised batch, each early-fused: [B, C, h, w]."""
        views = self.augment(self.sensor_batch(batch))
        return [early_fusion_input(v, self.modalities) for v in views]
