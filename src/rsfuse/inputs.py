"""The input specification shared by a datamodule and a model: sensors, bands, channel order.

One :class:`InputSpec` answers every question about what reaches a model: which sensors
(``s1``, ``s2``), which S2 bands in which order and from which product, how many channels
each sensor has and the order of the early-fused stack (S2 bands first, then S1 VV, VH —
DINO-MM's layout). The band registry (:mod:`rsfuse.bands`) is the source of names and
orders; this object binds one choice of them.

A datamodule and the model it feeds each hold one. They are compared **once**, when a
fit / validate / test / predict starts (:meth:`InputSpec.check_feeds`): the model's sensors
must be among the data's and the S2 bands must be the same bands *in the same order* — a
model trained on ``[B02, B03, B04]`` fed ``[B04, B03, B02]`` is refused, not only one
given another band count. The ``rsfuse`` command also links the datamodule's
``s2_bands`` / ``s2_product`` into the model's (LightningCLI ``link_arguments``), so a
config names the bands once, under ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from rsfuse import bands
from rsfuse.errors import ConfigError, DataError

__all__ = ["InputSpec"]


@dataclass(frozen=True)
class InputSpec:
    """Sensors, S2 bands in channel order and the S2 product of an input.

    Build with :meth:`create` (validates and resolves named band subsets).

    Attributes:
        modalities: sensors in canonical order (``s1`` before ``s2``).
        s2_bands: S2 band names in channel order (empty without ``s2``).
        s2_product: ``L1C`` or ``L2A``.
    """

    modalities: tuple[str, ...]
    s2_bands: tuple[str, ...]
    s2_product: str = "L2A"

    @classmethod
    def create(
        cls,
        modalities: Sequence[str] = ("s1", "s2"),
        s2_bands: str | Sequence[str] = "all",
        s2_product: str = "L2A",
    ) -> InputSpec:
        """Validate and resolve (``s2_bands`` may name a subset: ``all``, ``hr9`` …).

        Raises:
            ConfigError: unknown or duplicate modality, band, subset or product.
        """
        mods = bands.check_modalities(modalities)
        names = bands.s2_bands(s2_bands, s2_product) if "s2" in mods else ()
        if "s2" not in mods:
            bands.s2_bands("all", s2_product)  # still validates the product name
        return cls(mods, tuple(names), s2_product)

    # ------------------------------------------------------------------ derived
    @property
    def s1_bands(self) -> tuple[str, ...]:
        """``("VV", "VH")`` with S1, else ``()``."""
        return bands.S1_ORDER if "s1" in self.modalities else ()

    def bands_of(self, modality: str) -> tuple[str, ...]:
        """Band names of one sensor, in channel order."""
        if modality not in bands.MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}", key="modalities")
        return self.s1_bands if modality == "s1" else self.s2_bands

    def channels_of(self, modality: str) -> int:
        """Channels of one sensor (0 if the spec lacks it)."""
        return len(self.bands_of(modality))

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of the early-fused stack: S2 bands first, then VV, VH."""
        return bands.early_fusion_channels(self.modalities, self.s2_bands)

    def select(self, modalities: Sequence[str]) -> InputSpec:
        """The same bands for a subset of the sensors (a model may use fewer than its data).

        Raises:
            ConfigError: a sensor this spec does not have.
        """
        mods = bands.check_modalities(modalities)
        missing = [m for m in mods if m not in self.modalities]
        if missing:
            raise ConfigError(
                f"sensors {missing} are not in the input {list(self.modalities)}",
                key="modalities",
            )
        return InputSpec(mods, self.s2_bands if "s2" in mods else (), self.s2_product)

    # ------------------------------------------------------------------ checks
    def check_feeds(self, model: InputSpec, where: str = "the datamodule") -> None:
        """Raise unless this (data) spec can feed ``model``: the model's sensors are among
        the data's and, with S2, the bands are the same in the same order.

        Raises:
            ConfigError: naming both band lists (key ``data.s2_bands``).
        """
        missing = [m for m in model.modalities if m not in self.modalities]
        if missing:
            raise ConfigError(
                f"the model needs sensors {list(model.modalities)} but {where} reads "
                f"{list(self.modalities)}; add {missing} to the data's modalities",
                key="data.modalities",
            )
        if "s2" in model.modalities and model.s2_bands != self.s2_bands:
            same_set = sorted(model.s2_bands) == sorted(self.s2_bands)
            what = "the same bands in another order" if same_set else "other S2 bands"
            raise ConfigError(
                f"{where} gives {what} than the model expects: data {list(self.s2_bands)}, "
                f"model {list(model.s2_bands)}; set s2_bands once (under data: the rsfuse "
                "command links it into the model)",
                key="data.s2_bands",
            )

    def check_batch(self, batch: Mapping[str, Any]) -> None:
        """Raise when a batch lacks a sensor or a sensor's channel count differs from its
        bands (S2 [B, C, H, W] against ``s2_bands``, S1 against VV, VH).

        Raises:
            DataError: a sensor is missing from the batch.
            ConfigError: a sensor has another number of channels than its bands.
        """
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            have = [k for k in bands.MODALITIES if k in batch]
            raise DataError(f"the model needs sensors {missing}; the batch only has {have}")
        for m in self.modalities:
            x = batch[m]
            if isinstance(x, Tensor) and x.ndim == 4 and x.shape[1] != self.channels_of(m):
                names = list(self.bands_of(m))
                hint = "set s2_bands once, under data" if m == "s2" else "S1 is VV, VH"
                raise ConfigError(
                    f"the model expects {len(names)} {m} bands {names} but the data gives "
                    f"{x.shape[1]} {m.upper()} bands; {hint}",
                    key="data.s2_bands" if m == "s2" else "data.modalities",
                )

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"modalities", "s1_bands", "s2_bands", "s2_product"}``."""
        return {
            "modalities": list(self.modalities),
            "s1_bands": list(self.s1_bands),
            "s2_bands": list(self.s2_bands),
            "s2_product": self.s2_product,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict` (validated like :meth:`create`)."""
        try:
            return cls.create(d["modalities"], list(d.get("s2_bands") or ()) or "all",
                              d.get("s2_product", "L2A"))  # fmt: skip
        except KeyError as e:
            raise ConfigError(f"input specification lacks {e}", key="input_spec") from e
