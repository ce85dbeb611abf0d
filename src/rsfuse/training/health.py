"""Pretraining health checks: is the encoder learning, or has it collapsed?

A self-supervised run can "train" for days while its representation degenerates: every
input mapped to one point, or DINO's teacher drifting to uniform outputs (entropy → log K).
:class:`PretrainingHealth` is a Lightning callback that measures, every ``every_n_epochs``
epochs and once more at the end of ``fit``, on a small labelled holdout (the first
``max_samples`` samples of the validation dataloader, normalised as training batches are, in
eval mode, with the random state saved and restored so training is not changed):

* **k-NN probe** (weighted k-NN of Wu et al. 2018 as used by DINO, leave-one-out on the
  holdout): features ``f`` [N, D] are L2-normalised, ``s_ij = ẑ_i·ẑ_j``; for each sample the
  ``k`` most similar others ``j ∈ N_k(i)`` vote with weights ``w_ij = softmax_j(s_ij / T)``::

      score_i = Σ_{j ∈ N_k(i)} w_ij · y_j                                         (1)

  ``y_j`` [L] multi-hot labels. Reported: micro mAP of ``score`` (torchmetrics) beside the
  **label prior**, the micro mAP of scoring every sample with the holdout's class frequencies
  (the label-frequency baseline). Features that say nothing about the labels, collapsed ones
  included, score at or below the prior (their vote is a noisy estimate of it).
* **Embedding spread** (SimSiam, Chen & He 2021, §4.1): the per-dimension standard
  deviation of the L2-normalised features over the holdout, times ``√D``::

      r_d = √D · std_i(ẑ_id),   std_ratio = mean_d r_d,   low_std_fraction = mean_d [r_d < t]   (2)

  Isotropic (healthy) features give ``r_d ≈ 1`` (a unit vector with i.i.d. entries has std
  ``1/√D``); features collapsed to one point give 0. ``low_std_fraction`` counts the
  dimensions below the threshold (dimensional collapse).
* **DINO outputs** (DINO, Caron et al. 2021, §5.3 and Fig. 7; only for methods that
  provide them): with the teacher's centred, sharpened distribution ``P_t`` and the
  student's ``P_s`` on the same (un-augmented) holdout image::

      H_t = mean_i H(P_t,i),   H̄ = H(mean_i P_t,i),   KL = mean_i KL(P_t,i ‖ P_s,i)     (3)

  all in nats; ``H_t`` and ``H̄`` are also reported divided by ``log K``. Uniform collapse:
  ``H_t → log K`` (every output uniform); one-prototype collapse: ``H̄ → 0`` (every sample
  sent to the same prototype). In both cases ``KL → 0``: the student has nothing to learn.

**A run is flagged** (a :class:`CollapseWarning`, once per finding and fit, and "COLLAPSED"
in the summary) when any of these holds; the thresholds are :class:`HealthSettings` fields:

* ``std_ratio < 0.01`` (``std_ratio_min``): the features lie within about 1 % of one
  direction (``std_ratio² ≲ 1 − |mean ẑ|²``, one minus the mean cosine similarity).
  SimSiam's healthy projector outputs sit near 1; pooled *backbone* features share a large
  common direction, so healthy values start far lower (measured: 0.13 for randomly
  initialised ViTs that a k-NN probe reads 33 points above the prior, ``docs/health.md``),
  and only a value near 0 means collapse;
* ``H_t ≥ 0.95 · log K`` (``entropy_max``): the teacher's outputs are nearly uniform;
* ``H̄ ≤ 0.05 · log K`` (``mean_entropy_min``): the whole holdout uses ~``K^0.05``
  prototypes (2 of 65 536);
* k-NN micro mAP − label prior ``< 0.01`` (``knn_min_gain``), judged on holdouts of at
  least ``knn_min_samples`` (100) samples: the features tell the labels apart no better
  than class frequencies do. Features unrelated to the labels score 4–6 points *below* the
  prior (a 20-neighbour vote is a noisy estimate of it); in 100 draws of random features on
  100 or 256 samples none reached prior + 0.01 (``docs/health.md``). On smaller holdouts
  the probe is reported but not judged (with k ≥ N − 1 the leave-one-out vote is biased
  below the prior).

The metrics are logged as ``health/<features>/knn_map``, ``health/<features>/std_ratio``,
``health/<features>/low_std_fraction``, ``health/label_prior_map``,
``health/dino/teacher_entropy`` (nats), ``health/dino/teacher_entropy_rel`` and
``health/dino/mean_entropy_rel`` (÷ log K), ``health/dino/kl`` (nats) and
``health/collapsed`` (0 / 1); a summary is printed at the end of ``fit`` (rank 0).

The methods opt in through :class:`HealthChecked` (a ``health_checks`` hyper-parameter,
on by default, and :meth:`HealthChecked.health_outputs`); see ``docs/health.md``. Under DDP
every rank probes the same holdout (the loader is built without a distributed sampler), so
the logged values agree across ranks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from lightning import Callback, LightningModule, Trainer
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor
from torchmetrics.functional.classification import multilabel_average_precision

from rsfuse.errors import ConfigError

__all__ = [
    "CollapseWarning",
    "HealthChecked",
    "HealthOutputs",
    "HealthReport",
    "HealthSettings",
    "PretrainingHealth",
    "assess",
    "at_size",
    "dense_multi_hot",
    "embedding_spread",
    "knn_scores",
    "micro_map",
]


class CollapseWarning(UserWarning):
    """A pretraining run's representation has collapsed (see :mod:`rsfuse.training.health`)."""


@dataclass(frozen=True)
class HealthSettings:
    """What the health checks measure and when they flag a run (the ``health_checks`` dict).

    Args:
        every_n_epochs: check after every n-th training epoch (and at the end of ``fit``).
        max_samples: holdout size, taken from the start of the validation dataloader.
        k: neighbours of the k-NN probe (Eq. 1; DINO: 20).
        temperature: T of the k-NN vote weights (Eq. 1; DINO: 0.07).
        std_ratio_min: flag ``std_ratio`` (Eq. 2) below this.
        low_std_threshold: ``t`` of ``low_std_fraction`` (Eq. 2).
        entropy_max: flag a mean teacher entropy ≥ this · log K (uniform outputs).
        mean_entropy_min: flag an entropy of the mean teacher output ≤ this · log K.
        knn_min_gain: flag k-NN micro mAP − label prior below this ...
        knn_min_samples: ... on holdouts of at least this many samples.
        cache_mb: keep the normalised holdout in host memory between checks when it takes
            at most this many MiB (0: read it again for every check).
        warn: emit :class:`CollapseWarning` (the summary is printed either way).
    """

    every_n_epochs: int = 1
    max_samples: int = 256
    k: int = 20
    temperature: float = 0.07
    std_ratio_min: float = 0.01
    low_std_threshold: float = 0.1
    entropy_max: float = 0.95
    mean_entropy_min: float = 0.05
    knn_min_gain: float = 0.01
    knn_min_samples: int = 100
    cache_mb: int = 512
    warn: bool = True

    def __post_init__(self) -> None:
        key = "model.init_args.health_checks"
        if self.every_n_epochs < 1 or self.max_samples < 2 or self.k < 1:
            raise ConfigError(
                "every_n_epochs and k must be >= 1 and max_samples >= 2, got "
                f"{self.every_n_epochs}, {self.k}, {self.max_samples}",
                key=key,
            )
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}", key=key)

    @classmethod
    def from_config(
        cls, value: bool | Mapping[str, Any] | HealthSettings | None
    ) -> HealthSettings | None:
        """``True`` → defaults, ``False`` / ``None`` → ``None`` (off), a dict → its fields.

        Raises:
            ConfigError: an unknown key or a bad value.
        """
        if isinstance(value, HealthSettings):
            return value
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"expected true, false or a dict of settings, got {value!r}",
                key="model.init_args.health_checks",
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(
                f"unknown health-check settings {unknown}; expected some of {sorted(known)}",
                key="model.init_args.health_checks",
            )
        return cls(**dict(value))


@dataclass
class HealthOutputs:
    """What a method computes on one holdout batch for the health checks.

    Attributes:
        features: name → pooled features [B, D] of the encoder(s) the method exports
            (e.g. ``{"teacher": …}`` for DINO-MM, ``{"s1": …, "s2": …}`` for CromSS).
        labels: multi-hot labels [B, L] for the k-NN probe, or None (no probe).
        teacher_probs: DINO teacher distribution ``P_t`` [B, K] (centred, sharpened), or None.
        student_log_probs: DINO student ``log P_s`` [B, K], or None.
    """

    features: dict[str, Tensor]
    labels: Tensor | None = None
    teacher_probs: Tensor | None = None
    student_log_probs: Tensor | None = None


@dataclass
class HealthReport:
    """One health check: the epoch, the holdout size, its wall time, the logged metrics
    (names without the ``health/`` prefix) and the collapse findings (kind → message)."""

    epoch: int
    samples: int
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    findings: dict[str, str] = field(default_factory=dict)

    @property
    def collapsed(self) -> bool:
        """Whether any collapse criterion holds."""
        return bool(self.findings)


# ---------------------------------------------------------------------------- measures
def knn_scores(features: Tensor, labels: Tensor, k: int = 20, temperature: float = 0.07) -> Tensor:
    """Leave-one-out weighted k-NN label scores (Eq. 1).

    Args:
        features: [N, D] (any scale: they are L2-normalised here), N ≥ 2.
        labels: [N, L] multi-hot.
        k: neighbours (at most N − 1 are used).
        temperature: T of the softmax vote weights.

    Returns:
        scores [N, L] in [0, 1].
    """
    z = F.normalize(features.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))  # a sample is never its own neighbour
    top, idx = sim.topk(min(k, z.shape[0] - 1), dim=1)  # [N, k]
    w = torch.softmax(top / temperature, dim=1)
    return (w.unsqueeze(-1) * labels.float()[idx]).sum(dim=1)


def micro_map(scores: Tensor, labels: Tensor) -> float:
    """Micro-averaged average precision of scores [N, L] against multi-hot labels [N, L]
    (NaN when no label is positive)."""
    if not bool(labels.bool().any()):
        return float("nan")
    return float(
        multilabel_average_precision(
            scores.float(), labels.int(), num_labels=labels.shape[1], average="micro"
        )
    )


def embedding_spread(features: Tensor, low_threshold: float = 0.1) -> dict[str, float]:
    """Eq. 2: ``std_ratio`` (mean of √D · per-dimension std of the L2-normalised features;
    ≈ 1 isotropic, 0 collapsed) and ``low_std_fraction`` (dimensions below ``low_threshold``).

    Args:
        features: [N, D], N ≥ 2.
    """
    z = F.normalize(features.float(), dim=1)
    r = z.std(dim=0) * math.sqrt(z.shape[1])  # [D]
    return {
        "std_ratio": float(r.mean()),
        "low_std_fraction": float((r < low_threshold).float().mean()),
    }


class _DinoAccumulator:
    """Running sums of Eq. 3 over holdout batches (no [N, K] tensor is kept)."""

    def __init__(self) -> None:
        self.n = 0
        self.entropy = 0.0
        self.kl = 0.0
        self.prob_sum: Tensor | None = None

    def add(self, p_t: Tensor, log_p_s: Tensor) -> None:
        p_t, log_p_s = p_t.float(), log_p_s.float()
        plogp = torch.special.xlogy(p_t, p_t)  # 0 · log 0 = 0
        self.entropy += float(-plogp.sum())
        self.kl += float((plogp - p_t * log_p_s).sum())
        s = p_t.sum(dim=0).cpu()
        self.prob_sum = s if self.prob_sum is None else self.prob_sum + s
        self.n += p_t.shape[0]

    def metrics(self) -> dict[str, float]:
        assert self.prob_sum is not None and self.n > 0
        log_k = math.log(self.prob_sum.numel())
        mean_p = self.prob_sum / self.n
        mean_entropy = float(-torch.special.xlogy(mean_p, mean_p).sum())
        entropy = self.entropy / self.n
        return {
            "dino/teacher_entropy": entropy,
            "dino/teacher_entropy_rel": entropy / log_k,
            "dino/mean_entropy_rel": mean_entropy / log_k,
            "dino/kl": self.kl / self.n,
        }


def assess(metrics: Mapping[str, float], settings: HealthSettings, samples: int) -> dict[str, str]:
    """The collapse findings of one check's ``metrics`` on a holdout of ``samples``:
    kind → message (see the module docstring)."""
    out = {}
    prior = metrics.get("label_prior_map", float("nan"))
    judge_knn = samples >= settings.knn_min_samples
    for key, value in metrics.items():
        name = key.rsplit("/", 1)[0]
        if key.endswith("/std_ratio") and value < settings.std_ratio_min:
            out[key] = (
                f"{name}: embedding collapse, std ratio {value:.3f} < {settings.std_ratio_min}"
            )
        if key.endswith("/knn_map") and judge_knn and value - prior < settings.knn_min_gain:
            out[key] = (
                f"{name}: k-NN micro mAP {value:.3f} no better than the label prior "
                f"{prior:.3f} (gain < {settings.knn_min_gain})"
            )
    h = metrics.get("dino/teacher_entropy_rel")
    if h is not None and h >= settings.entropy_max:
        out["dino/uniform"] = (
            f"DINO: uniform teacher outputs, entropy {h:.3f}·log K >= {settings.entropy_max}·log K"
        )
    hm = metrics.get("dino/mean_entropy_rel")
    if hm is not None and hm <= settings.mean_entropy_min:
        out["dino/one_prototype"] = (
            f"DINO: one-prototype collapse, entropy of the mean teacher output {hm:.3f}·log K "
            f"<= {settings.mean_entropy_min}·log K"
        )
    return out


# ---------------------------------------------------------------------------- callback
class PretrainingHealth(Callback):
    """Health checks of a pretraining run (see the module docstring).

    The module must implement ``health_outputs(batch) -> HealthOutputs``
    (:class:`HealthChecked`). Results: :attr:`history` (one :class:`HealthReport` per check).

    Args:
        settings: :class:`HealthSettings` (default: all defaults).
    """

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self.history: list[HealthReport] = []
        self.skipped: str | None = None
        self._warned: set[str] = set()
        self._last_epoch: int | None = None
        self._cache: list = []

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.history, self.skipped, self._warned, self._last_epoch = [], None, set(), None
        self._cache = []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch
        self._last_epoch = epoch
        max_steps = trainer.max_steps if trainer.max_steps is not None else -1
        last = (
            (trainer.max_epochs is not None and 0 <= trainer.max_epochs <= epoch + 1)
            or (max_steps > 0 and trainer.global_step >= max_steps)
            or trainer.should_stop
        )
        if last or (epoch + 1) % self.settings.every_n_epochs == 0:
            report = self.check(trainer, pl_module, epoch)
            if report is not None:
                for k, v in report.metrics.items():
                    pl_module.log(f"health/{k}", v, on_step=False, on_epoch=True)
                pl_module.log("health/collapsed", float(report.collapsed), on_epoch=True)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        last = self._last_epoch
        if last is not None and (not self.history or self.history[-1].epoch != last):
            report = self.check(trainer, pl_module, last)  # the run stopped between checks
            if report is not None:
                values = {f"health/{k}": v for k, v in report.metrics.items()}
                values["health/collapsed"] = float(report.collapsed)
                for logger in trainer.loggers:
                    logger.log_metrics(values, step=trainer.global_step)
        if trainer.is_global_zero:
            print(self.summary(type(pl_module).__name__))

    # ------------------------------------------------------------------ the check
    def holdout(self, trainer: Trainer, pl_module: LightningModule) -> Iterator[dict]:
        """Normalised holdout batches on the module's device (≤ ``max_samples`` samples).

        The first batches of the validation dataloader (the datamodule's, else the
        trainer's), moved to the device and normalised by the datamodule's ``normalize``
        (never augmented). The first check keeps them in host memory when they take at
        most ``cache_mb``, so later checks of the fit neither read nor normalise again (and
        see the same samples even where a dataset draws, e.g., a random season per read).
        Yields nothing when the run has no validation data.
        """
        if self._cache:
            for batch in self._cache:
                yield move_data_to_device(batch, pl_module.device)
            return
        cache: list | None = [] if self.settings.cache_mb > 0 else None
        nbytes = 0
        dm = trainer.datamodule
        loader = None
        if dm is not None:
            try:
                loader = dm.val_dataloader()
            except (NotImplementedError, MisconfigurationException):
                loader = None  # a datamodule without a validation split
        if loader is None:
            loader = trainer.val_dataloaders
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        if loader is None:
            return
        normalize = getattr(dm, "normalize", None)
        seen = 0
        for batch in loader:
            batch = move_data_to_device(batch, pl_module.device)
            if callable(normalize):
                batch = normalize(batch)
            if cache is not None:
                nbytes += _nbytes(batch)
                if nbytes <= self.settings.cache_mb * 2**20:
                    cache.append(move_data_to_device(batch, "cpu"))
                else:
                    cache = None  # too large: read the holdout again at every check
            yield batch
            seen += _batch_size(batch)
            if seen >= self.settings.max_samples:
                break
        self._cache = cache or []

    @torch.no_grad()
    def check(
        self, trainer: Trainer, pl_module: LightningModule, epoch: int
    ) -> HealthReport | None:
        """Run one health check (eval mode, random state isolated); warn on new findings.

        Returns:
            The report (also appended to :attr:`history`), or None without holdout data.
        """
        s = self.settings
        start = time.perf_counter()
        feats: dict[str, list[Tensor]] = {}
        labels: list[Tensor] = []
        dino = _DinoAccumulator()
        count = 0
        was_training = pl_module.training
        pl_module.eval()
        try:
            with isolate_rng(), trainer.precision_plugin.forward_context():
                for batch in self.holdout(trainer, pl_module):
                    out: HealthOutputs = pl_module.health_outputs(batch)  # type: ignore[operator]
                    b = next(iter(out.features.values())).shape[0]
                    n = min(b, s.max_samples - count)
                    count += n
                    for name, f in out.features.items():
                        feats.setdefault(name, []).append(f[:n].float().cpu())
                    if out.labels is not None:
                        labels.append(out.labels[:n].float().cpu())
                    if out.teacher_probs is not None and out.student_log_probs is not None:
                        dino.add(out.teacher_probs[:n], out.student_log_probs[:n])
        finally:
            pl_module.train(was_training)
        if not feats:
            self.skipped = "no validation data to take a holdout from"
            return None
        report = HealthReport(epoch=epoch, samples=len(torch.cat(next(iter(feats.values())))))
        if report.samples < 2:
            self.skipped = f"a holdout of {report.samples} sample is too small"
            return None
        y = torch.cat(labels) if labels else None
        if y is not None and y.shape[0] == report.samples:
            report.metrics["label_prior_map"] = micro_map(y.mean(0).expand_as(y), y)
        for name, parts in feats.items():
            f = torch.cat(parts)
            report.metrics.update(
                {f"{name}/{k}": v for k, v in embedding_spread(f, s.low_std_threshold).items()}
            )
            if "label_prior_map" in report.metrics:
                scores = knn_scores(f, y, s.k, s.temperature)  # type: ignore[arg-type]
                report.metrics[f"{name}/knn_map"] = micro_map(scores, y)  # type: ignore[arg-type]
        if dino.n:
            report.metrics.update(dino.metrics())
        report.metrics = {k: v for k, v in report.metrics.items() if math.isfinite(v)}
        report.findings = assess(report.metrics, s, report.samples)
        report.seconds = time.perf_counter() - start
        self.history.append(report)
        new = [msg for kind, msg in report.findings.items() if kind not in self._warned]
        self._warned.update(report.findings)
        if new and s.warn:
            rank_zero_warn(
                f"{type(pl_module).__name__} looks collapsed after epoch {epoch}: "
                + "; ".join(new)
                + " (rsfuse health checks, docs/health.md)",
                category=CollapseWarning,
            )
        return report

    # ------------------------------------------------------------------ summary
    def summary(self, name: str = "model") -> str:
        """A few lines: the last check (and the first, for the trend) and the verdict."""
        p = "[rsfuse]"
        if not self.history:
            why = self.skipped or "no check ran"
            return f"{p} health checks of {name}: none ({why})"
        first, last = self.history[0], self.history[-1]
        m = last.metrics
        lines = [
            f"{p} health checks of {name}: {len(self.history)} check(s), last after epoch "
            f"{last.epoch}, holdout of {last.samples} samples, "
            f"{sum(r.seconds for r in self.history):.1f} s in all"
        ]
        names = sorted({k.rsplit("/", 1)[0] for k in m if k.endswith("/std_ratio")})
        for feat in names:
            parts = []
            if f"{feat}/knn_map" in m:
                trend = ""
                if len(self.history) > 1 and f"{feat}/knn_map" in first.metrics:
                    trend = f" (epoch {first.epoch}: {first.metrics[f'{feat}/knn_map']:.3f})"
                judged = last.samples >= self.settings.knn_min_samples
                parts.append(
                    f"k-NN micro mAP {m[f'{feat}/knn_map']:.3f}{trend} vs label prior "
                    f"{m['label_prior_map']:.3f}"
                    + ("" if judged else f" (not judged: < {self.settings.knn_min_samples})")
                )
            parts.append(
                f"embedding std ratio {m[f'{feat}/std_ratio']:.3f} "
                f"({100 * m[f'{feat}/low_std_fraction']:.0f} % of dims < "
                f"{self.settings.low_std_threshold})"
            )
            lines.append(f"{p}   {feat}: " + "; ".join(parts))
        if "dino/teacher_entropy" in m:
            lines.append(
                f"{p}   DINO: teacher entropy {m['dino/teacher_entropy']:.3f} nats "
                f"({m['dino/teacher_entropy_rel']:.3f}·log K), entropy of the mean output "
                f"{m['dino/mean_entropy_rel']:.3f}·log K, KL(teacher‖student) "
                f"{m['dino/kl']:.4f} nats"
            )
        verdict = "COLLAPSED: " + "; ".join(last.findings.values()) if last.collapsed else "healthy"
        lines.append(f"{p}   status: {verdict}")
        return "\n".join(lines)


def _nbytes(batch: Any) -> int:
    """Bytes of the tensors in a (nested) batch."""
    if isinstance(batch, Tensor):
        return batch.nelement() * batch.element_size()
    if isinstance(batch, Mapping):
        return sum(_nbytes(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(_nbytes(v) for v in batch)
    return 0


def _batch_size(batch: Any) -> int:
    for v in batch.values() if isinstance(batch, Mapping) else [batch]:
        if isinstance(v, Tensor) and v.ndim > 0:
            return int(v.shape[0])
    return 1


# ---------------------------------------------------------------------------- methods
def at_size(x: Tensor, size: int | None) -> Tensor:
    """[B, C, H, W] resized (bilinear) to ``size × size``, the side of the training views
    (unchanged when it already is or ``size`` is None)."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def dense_multi_hot(
    mask: Tensor, num_classes: int, ignore_index: int = 255, min_fraction: float = 0.05
) -> Tensor:
    """Scene labels of dense label maps: the classes that cover at least ``min_fraction`` of
    a patch's labelled pixels.

    Args:
        mask: [B, H, W] class indices (``ignore_index``: unlabelled).

    Returns:
        [B, num_classes] multi-hot (float); all zeros for a patch without labelled pixels.
    """
    valid = mask != ignore_index
    idx = torch.where(valid, mask, torch.zeros_like(mask)).long().flatten(1)  # [B, HW]
    counts = torch.zeros(mask.shape[0], num_classes, device=mask.device)
    counts.scatter_add_(1, idx, valid.flatten(1).float())
    total = counts.sum(dim=1, keepdim=True).clamp_min(1)
    return ((counts / total >= min_fraction) & (counts > 0)).float()


class HealthChecked:
    """Mixin of the pretraining methods: health checks on by default, off from YAML.

    Put it before :class:`~rsfuse.training.module.RsfuseModule` in the bases, call
    :meth:`set_health_checks` with the ``health_checks`` hyper-parameter (``True``,
    ``False`` or a dict of :class:`HealthSettings` fields) in ``__init__`` and implement
    :meth:`health_outputs`. ``configure_callbacks`` then adds :class:`PretrainingHealth`
    to every fit.
    """

    health_settings: HealthSettings | None = None

    def set_health_checks(self, value: bool | Mapping[str, Any] | None) -> None:
        """Validate and keep the ``health_checks`` setting.

        Raises:
            ConfigError: unknown keys or bad values.
        """
        self.health_settings = HealthSettings.from_config(value)

    def configure_callbacks(self) -> list[Callback]:
        """:class:`PretrainingHealth` unless ``health_checks`` is off."""
        return [] if self.health_settings is None else [PretrainingHealth(self.health_settings)]

    def health_outputs(self, batch: dict) -> HealthOutputs:
        """Features (and DINO distributions) of a normalised holdout batch, in eval mode."""
        raise NotImplementedError

    @staticmethod
    def health_labels(batch: dict) -> Tensor | None:
        """The batch's multi-hot scene labels [B, L] (``label``), or None."""
        y = batch.get("label")
        return y if isinstance(y, Tensor) and y.ndim == 2 else None
