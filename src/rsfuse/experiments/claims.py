"""The seed papers' claims and their verdicts: *holds* or *does not hold*, with the numbers.

A :class:`Claim` names a paper (by title), where in it the claim is made, and what it says:
that one result is higher than another (``better > worse + margin``) or at least as high
(``better ≥ worse``, "never worse than"). :func:`judge` decides it from per-seed values of
both sides:

* the differences ``d_s = better_s − worse_s`` are paired by seed where both sides ran with
  the same seeds (otherwise the two means are compared, unpaired, with Welch's standard
  error);
* a ``>`` claim **holds** when the mean difference exceeds the margin significantly: a
  one-sided t-test at the 5 % level, ``mean(d) − margin > t₀.₉₅(n − 1) · std(d) / √n``
  (:data:`T95`; 2.92 standard errors with 3 seeds). A difference above the margin but not
  significant **does not hold**, and the verdict says "not significant over n seeds";
* a ``≥`` claim **holds** when the mean difference is at least the margin (the fused model's
  mean at least the single sensor's); a shortfall within the spread is still a shortfall
  and is said to be one;
* with one seed there is no spread: the verdict rests on the single difference and says
  "1 seed, no spread" (the demo; the experiments run three seeds);
* a claim's ``note`` (for instance "one pretraining run; the seeds vary the downstream
  training") is added to its reason.

Every experiment and the demo build their claims here, print one line per verdict
(:meth:`Verdict.line`) and write them with :func:`write_verdicts` as ``claims.md``,
``claims.csv`` and ``claims.json``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rsfuse.experiments.runner import mean_std, write_csv, write_json, write_text

__all__ = [
    "CROMSS",
    "DINO_MM",
    "FUSION_GOAL",
    "MGSVIT",
    "RULE",
    "SHORT",
    "T95",
    "Claim",
    "Verdict",
    "judge",
    "ordering",
    "per_seed",
    "t95",
    "verdict_table",
    "write_verdicts",
]

#: One-sided 95 % quantiles of Student's t with 1 … 10 degrees of freedom (then 1.645).
T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812)


def t95(df: int) -> float:
    """One-sided 95 % quantile of Student's t with ``df`` degrees of freedom (≥ 1)."""
    return T95[df - 1] if df <= len(T95) else 1.645


#: The three seed papers, by title.
MGSVIT = (
    "Multi-label remote sensing classification with self-supervised gated multi-modal "
    "transformers (MGSViT)"
)
DINO_MM = "Self-supervised Vision Transformers for Joint SAR-optical Representation Learning"
CROMSS = "CromSS: Cross-modal pretraining with noisy labels for remote sensing image segmentation"
#: Not a paper's claim but the reason to fuse (MGSViT §2: optical data "can only be
#: effectively used in sunny days"): a fused model never worse than its better sensor.
FUSION_GOAL = "Cloud-robust fusion (why S1 and S2 are fused)"

#: Short names of the papers for tables and printed lines.
SHORT = {MGSVIT: "MGSViT", DINO_MM: "DINO-MM", CROMSS: "CromSS", FUSION_GOAL: "fusion"}


@dataclass(frozen=True)
class Claim:
    """``better > worse + margin`` on ``metric``, as ``paper`` states it at ``where``.

    Attributes:
        paper: the paper's title.
        where: where the paper makes the claim ("Table 1", "§IV-C").
        better: the result the paper finds higher (a name as the tables print it).
        worse: the result it finds lower.
        metric: what is compared ("micro mAP", "mIoU"), for the printed line.
        margin: how much higher (in the metric's units, 0.2 = 20 points of a fraction).
        scale: factor for printing (100: fractions as %).
        note: the claim in the paper's words, when a comparison alone does not say it.
        relation: ``">"`` (higher) or ``">="`` (at least as high: never worse).
    """

    paper: str
    where: str
    better: str
    worse: str
    metric: str = "micro mAP"
    margin: float = 0.0
    scale: float = 100.0
    note: str = ""
    relation: str = ">"

    def __post_init__(self) -> None:
        if self.relation not in (">", ">="):
            raise ValueError(f"relation must be '>' or '>=', got {self.relation!r}")

    @property
    def statement(self) -> str:
        """``"better > worse"`` (with the margin when there is one)."""
        gap = f" by more than {self.scale * self.margin:g}" if self.margin else ""
        rel = "≥" if self.relation == ">=" else ">"
        return f"{self.better} {rel} {self.worse}{gap} ({self.metric})"


@dataclass(frozen=True)
class Verdict:
    """The verdict on one :class:`Claim` and the numbers it rests on.

    ``better_mean`` / ``worse_mean`` and their standard deviations are over seeds;
    ``diff_mean`` / ``diff_std`` are of the (paired) differences; ``seeds`` is how many
    values the difference rests on (0: a side was not run).
    """

    claim: Claim
    holds: bool
    better_mean: float
    better_std: float
    worse_mean: float
    worse_std: float
    diff_mean: float
    diff_std: float
    seeds: int
    paired: bool
    reason: str

    @property
    def word(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"not run"``."""
        if self.seeds == 0:
            return "not run"
        return "holds" if self.holds else "does not hold"

    def number(self, mean: float, std: float) -> str:
        """``"mean ± std"`` in the claim's scale (no ± for one seed; ``"-"`` for NaN)."""
        s = self.claim.scale
        if math.isnan(mean):
            return "-"
        return f"{s * mean:.1f}" + (f" ± {s * std:.1f}" if self.seeds > 1 else "")

    def line(self) -> str:
        """One printed line: verdict, the claim, the numbers and the reason."""
        c = self.claim
        name = SHORT.get(c.paper, c.paper)
        if self.seeds == 0:
            return f"[not run] {name} {c.where}: {c.statement} ({self.reason})"
        diff = f"{c.scale * self.diff_mean:+.1f}"
        if self.seeds > 1:
            diff += f" ± {c.scale * self.diff_std:.1f}"
        return (
            f"[{self.word}] {name} {c.where}: {c.statement}: {c.better} "
            f"{self.number(self.better_mean, self.better_std)} vs {c.worse} "
            f"{self.number(self.worse_mean, self.worse_std)}, difference {diff} ({self.reason})"
        )

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV / JSON."""
        out = {k: v for k, v in asdict(self).items() if k != "claim"}
        out.update({f"claim_{k}": v for k, v in asdict(self.claim).items()})
        out["verdict"] = self.word
        out["statement"] = self.claim.statement
        return out


def _finite(values: Mapping[int, float]) -> dict[int, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def judge(claim: Claim, better: Mapping[int, float], worse: Mapping[int, float]) -> Verdict:
    """The verdict on ``claim`` from per-seed values ``{seed: value}`` of both sides.

    Paired by seed when both sides have the same seeds; otherwise the means are compared
    with Welch's standard error (``diff_std`` is then that standard error times √n).
    """
    b, w = _finite(better), _finite(worse)
    bm, bs = mean_std(list(b.values()))
    wm, ws = mean_std(list(w.values()))
    if not b or not w:
        missing = claim.better if not b else claim.worse
        nan = float("nan")
        return Verdict(claim, False, bm, bs, wm, ws, nan, nan, 0, False, f"{missing}: no result")
    paired = set(b) == set(w)
    if paired:
        d = [b[k] - w[k] for k in sorted(b)]
        dm, ds = mean_std(d)
        n = len(d)
        se = ds / math.sqrt(n) if n > 1 else 0.0
    else:
        dm = bm - wm
        n = min(len(b), len(w))
        se = math.sqrt(
            (bs**2 / len(b) if len(b) > 1 else 0) + (ws**2 / len(w) if len(w) > 1 else 0)
        )
        ds = se * math.sqrt(n)
    excess = dm - claim.margin
    seeds = f"{n} seeds" if n > 1 else "1 seed, no spread"
    seeds += "" if paired else ", unpaired"
    scale = claim.scale
    if claim.relation == ">=":
        holds = excess >= 0
        why = seeds
        if not holds and se > 0 and -excess <= se:
            why = f"short by {scale * -excess:.1f}, within one standard error; {seeds}"
    else:
        bar = t95(n - 1) * se if n > 1 else 0.0
        holds = excess > bar
        why = seeds
        if not holds and excess > 0:
            why = f"above the margin but not significant (needs > {scale * bar:.1f}); {seeds}"
    if claim.note:
        why += f"; {claim.note}"
    return Verdict(claim, holds, bm, bs, wm, ws, dm, ds, n, paired, why)


def ordering(
    paper: str, where: str, names: Sequence[str], metric: str = "micro mAP"
) -> list[Claim]:
    """A claimed order ``names[0] < names[1] < …`` as one claim per neighbouring pair."""
    return [Claim(paper, where, hi, lo, metric) for lo, hi in itertools.pairwise(names)]


def per_seed(
    rows: Iterable[Mapping[str, Any]], value: str, seed: str = "seed", **where: Any
) -> dict[int, float]:
    """``{seed: row[value]}`` of the rows whose fields equal ``where`` (one row per seed)."""
    out: dict[int, float] = {}
    for r in rows:
        if all(r.get(k) == v for k, v in where.items()):
            out[int(r[seed])] = float(r[value])
    return out


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a markdown table: paper, where, claim, verdict, numbers."""
    lines = [
        "| paper | where | claim | verdict | better | worse | difference | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        c = v.claim
        lines.append(
            f"| {SHORT.get(c.paper, c.paper)} | {c.where} | {c.statement} | **{v.word}** | "
            f"{v.number(v.better_mean, v.better_std)} | {v.number(v.worse_mean, v.worse_std)} | "
            f"{v.number(v.diff_mean, v.diff_std)} | {v.seeds} |"
        )
    return "\n".join(lines)


#: The verdict rule in one paragraph, for every claims.md.
RULE = (
    "Verdicts: a claim 'A > B' holds when the mean difference over seeds (paired by seed) "
    "exceeds its margin significantly (one-sided t-test at 5 %: more than t(0.95, n-1) "
    "standard errors, 2.92 with 3 seeds); a claim 'A ≥ B' holds when the mean difference is "
    "at least 0. With one seed there is no spread and the verdict rests on the single "
    "difference. 'difference' is the mean ± standard deviation of the per-seed differences."
)


def write_verdicts(out: str | Path, verdicts: Sequence[Verdict], header: str = "") -> str:
    """Write ``claims.md`` (``header`` + :func:`verdict_table` + the rule),
    ``claims.csv`` and ``claims.json`` into ``out``; return the markdown."""
    out = Path(out)
    md = (header + "\n\n" if header else "") + verdict_table(verdicts) + "\n\n" + RULE + "\n"
    write_text(out / "claims.md", md)
    write_csv(out / "claims.csv", [v.row() for v in verdicts])
    write_json(out / "claims.json", [v.row() for v in verdicts])
    return md
