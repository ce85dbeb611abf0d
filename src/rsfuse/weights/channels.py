"""Input-channel mapping between published weights and rsfuse's channel order.

A network's first layer (ViT patch embedding ``[D, C, p, p]``, ResNet ``conv1``
``[64, C, 7, 7]``) is linear in its input channels, so feeding the same bands in another
order is an exact permutation of that weight's second axis. :class:`ChannelPlan` maps the
channels a checkpoint was trained on (``source``, in the authors' order) onto the channels
the rsfuse model will be fed (``target``):

* same bands, other order (DINO-MM's ``VH, VV`` → rsfuse's ``VV, VH``): permute — exact;
* ``target`` has bands the weights never saw (``adapt=True``): their weight columns are
  zero, so the network ignores them — exact for every input;
* ``source`` has bands ``target`` lacks (``adapt=True``; e.g. L1C weights fed L2A data,
  which has no ``B10``): their columns are dropped, which equals feeding those bands as
  0 *after* the weights' normalisation. Not exact; recorded in the encoder JSON.

Without ``adapt`` any difference in the band *set* raises :class:`ConfigError`.

Band names follow :mod:`rsfuse.bands` (``B01 … B8A … B12``, ``VV``, ``VH``); TorchGeo's and
the SSL4EO-S12 code's spellings (``B1``, ``B8a``, ``B8A``) are accepted
(:func:`canonical_band`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from rsfuse import bands as registry
from rsfuse.errors import CheckpointError, ConfigError

__all__ = ["ChannelPlan", "canonical_band", "canonical_bands", "rsfuse_order"]

_S2_NAME = re.compile(r"^[bB]0?(\d{1,2})([aA]?)$")


def canonical_band(name: str) -> str:
    """The band registry's spelling of a band name: ``B1`` → ``B01``, ``B8a`` → ``B8A``,
    ``vv`` → ``VV``.

    Raises:
        ConfigError: a name that is no Sentinel-1 or Sentinel-2 band.
    """
    up = name.strip().upper()
    if up in ("VV", "VH"):
        return up
    m = _S2_NAME.match(name.strip())
    if m:
        cand = f"B{int(m.group(1)):02d}" if not m.group(2) else f"B{int(m.group(1))}A"
        if cand in registry.BANDS:
            return cand
    raise ConfigError(f"unknown band name {name!r}", key="bands")


def canonical_bands(names: Sequence[str]) -> tuple[str, ...]:
    """:func:`canonical_band` of each name; raises on duplicates."""
    out = tuple(canonical_band(n) for n in names)
    if len(set(out)) != len(out):
        raise ConfigError(f"duplicate band in {list(names)}", key="bands")
    return out


def rsfuse_order(names: Sequence[str]) -> tuple[str, ...]:
    """The same bands in rsfuse's channel order: S2 bands in registry order first, then
    ``VV``, ``VH`` (:func:`rsfuse.bands.early_fusion_channels`). The RGB triple keeps its
    display order ``B04, B03, B02`` (rsfuse's ``rgb`` subset)."""
    names = canonical_bands(names)
    s2 = [n for n in names if registry.BANDS[n].sensor == "s2"]
    s1 = [n for n in registry.S1_ORDER if n in names]
    if tuple(s2) == registry.S2_SUBSETS["rgb"]:
        return (*s2, *s1)
    order = {n: i for i, n in enumerate(registry.S2_L1C_ORDER)}
    return (*sorted(s2, key=order.__getitem__), *s1)


@dataclass(frozen=True)
class ChannelPlan:
    """How the input channels of a checkpoint map onto the channels rsfuse feeds.

    Attributes:
        source: band names in the order the weights were trained on.
        target: band names in the order the rsfuse model is fed.
        adapt: allow a different band set (see the module docstring).
        added: target bands the weights never saw (zero weights).
        dropped: source bands the target lacks (weights removed).
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    adapt: bool = False
    added: tuple[str, ...] = field(init=False)
    dropped: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        src, tgt = canonical_bands(self.source), canonical_bands(self.target)
        object.__setattr__(self, "source", src)
        object.__setattr__(self, "target", tgt)
        object.__setattr__(self, "added", tuple(b for b in tgt if b not in src))
        object.__setattr__(self, "dropped", tuple(b for b in src if b not in tgt))
        if (self.added or self.dropped) and not self.adapt:
            raise ConfigError(
                f"the weights were trained on bands {list(src)} but the model would be fed "
                f"{list(tgt)} (missing {list(self.dropped)}, extra {list(self.added)}); "
                "pass adapt=True (--adapt) to zero the weights of extra bands and drop "
                "those of missing bands (documented in docs/weights.md)",
                key="bands",
            )

    @property
    def exact(self) -> bool:
        """True when the mapped network computes the same function (no band dropped)."""
        return not self.dropped

    @property
    def identity(self) -> bool:
        return self.source == self.target

    def remap(self, weight: Tensor, name: str = "first layer") -> Tensor:
        """Re-order the input-channel axis (dim 1) of a first-layer weight.

        Args:
            weight: [out, C_source, ...].
            name: the weight's key, for error messages.

        Returns:
            [out, C_target, ...]: column ``j`` is the source column of band ``target[j]``,
            or zeros for an added band.

        Raises:
            CheckpointError: the weight does not have ``len(source)`` input channels.
        """
        if weight.ndim < 2 or weight.shape[1] != len(self.source):
            raise CheckpointError(
                f"{name} has {weight.shape[1] if weight.ndim > 1 else '?'} input channels "
                f"but the source declares {len(self.source)} bands {list(self.source)}"
            )
        return _by_band(weight, self.source, self.target)

    def feed(self, x: Tensor) -> Tensor:
        """What the *source* network sees when the mapped network is fed ``x`` [B, C_t, ...]:
        the source's channels gathered from ``x``, zeros for dropped bands (tests use this
        to compare both networks)."""
        return _by_band(x, self.target, self.source)

    def describe(self) -> dict[str, object]:
        """JSON record of the mapping (written beside the imported weights)."""
        return {
            "source_channels": list(self.source),
            "channels": list(self.target),
            "added_zero_weight": list(self.added),
            "dropped": list(self.dropped),
            "exact": self.exact,
        }


def _by_band(t: Tensor, have: Sequence[str], want: Sequence[str]) -> Tensor:
    """``t`` [N, len(have), ...] with its dim-1 channels re-ordered by band name to ``want``:
    [N, len(want), ...], zeros for a band of ``want`` that ``have`` lacks."""
    out = t.new_zeros((t.shape[0], len(want), *t.shape[2:]))
    index = {b: i for i, b in enumerate(have)}
    for j, b in enumerate(want):
        if b in index:
            out[:, j] = t[:, index[b]]
    return out
