"""CromSS losses and cross-modal sample selection against the authors' code
(``tests/data/conformance/cromss.npz``) and hand-computed edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.losses.cromss import (
    CromSSLoss,
    CrossModalConsistencyLoss,
    WeightedCrossEntropyLoss,
    WeightedSoftDiceLoss,
)
from rsfuse.losses.sample_selection import (
    CrossModalSampleSelection,
    class_balanced_selection,
    consistency_weights,
    cross_modal_enhancement,
    entropy_confidence,
    label_confidence,
    ramp,
    selection_ratio,
)
from tests.conformance import load

REF = load("cromss")
EPOCHS = [int(e) for e in REF["epochs"]]
T, R_INF = int(REF["T"]), float(REF["r_inf"])


def _t(name: str) -> torch.Tensor:
    return torch.from_numpy(REF[name])


def _close(a: torch.Tensor | float, name: str, rel: bool = False) -> None:
    ref = REF[name]
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, np.float64)
    if rel:
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=0, err_msg=name)
    else:
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def selection() -> dict[int, dict]:
    sel = CrossModalSampleSelection(9, r_inf=R_INF, ramp_epochs=T)
    return {e: sel(_t("logits_s1"), _t("logits_s2"), _t("noisy_label"), e) for e in EPOCHS}


def test_confidences_and_enhancement() -> None:
    y = _t("noisy_label")
    p1, p2 = _t("logits_s1").softmax(1), _t("logits_s2").softmax(1)
    c1, c2 = label_confidence(p1, y), label_confidence(p2, y)
    e1, e2 = entropy_confidence(p1), entropy_confidence(p2)
    _close(c1, "label_conf_s1")
    _close(c2, "label_conf_s2")
    _close(e1, "entropy_conf_s1")
    _close(e2, "entropy_conf_s2")
    for (a, b), kind in (((c1, c2), "label"), ((e1, e2), "entropy")):
        h1, h2 = cross_modal_enhancement(a, b)
        _close(h1, f"{kind}_conf_enh_s1")
        _close(h2, f"{kind}_conf_enh_s2")


def test_ramp_values() -> None:
    _close(np.array([ramp(e, T) for e in EPOCHS]), "ramp_values")
    assert selection_ratio(0, T, R_INF) == pytest.approx(1 - 0.5 * math.exp(-5))
    assert selection_ratio(80, T, R_INF) == selection_ratio(200, T, R_INF) == 0.5


@pytest.mark.parametrize("epoch", EPOCHS)
def test_selection_masks(selection: dict[int, dict], epoch: int) -> None:
    out = selection[epoch]
    for i, s in enumerate(("s1", "s2")):
        _close(out["label_masks"][i], f"selection_mask_label_e{epoch}_{s}")
        _close(out["consistency_masks"][i], f"selection_mask_consistency_e{epoch}_{s}")
    if epoch >= T:  # half of the pixels of each class keep weight 1 at r∞ = 0.5
        assert out["ratio"] == 0.5
        assert 0.45 < float((out["label_masks"][0] == 1).float().mean()) < 0.6


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_losses(selection: dict[int, dict], epoch: int, kind: str) -> None:
    out = selection[epoch]
    z1, z2, y = _t("logits_s1"), _t("logits_s2"), _t("noisy_label")
    ce, dice = WeightedCrossEntropyLoss(), WeightedSoftDiceLoss()
    for i, (z, s) in enumerate(((z1, "s1"), (z2, "s2"))):
        _close(ce(z, y, out["label_masks"][i]), f"weighted_ce_e{epoch}_{s}", rel=True)
        _close(dice(z, y, out["label_masks"][i]), f"weighted_dice_e{epoch}_{s}", rel=True)
    con = CrossModalConsistencyLoss(kind)  # type: ignore[arg-type]
    cm = out["consistency_masks"]
    _close(con(z1, z2, cm[1]) + con(z2, z1, cm[0]), f"consistency_loss_e{epoch}_{kind}", rel=True)
    total = CromSSLoss(2, consistency=kind)([z1, z2], y, None, out["label_masks"], cm)  # type: ignore[arg-type]
    _close(total["loss"], f"total_loss_e{epoch}_{kind}", rel=True)
    _close(total["con"], f"consistency_loss_e{epoch}_{kind}", rel=True)


def test_soft_target_equals_hard_for_one_hot() -> None:
    z, y = _t("logits_s1"), _t("noisy_label")
    oh = torch.nn.functional.one_hot(y, 9).permute(0, 3, 1, 2).float()
    w = torch.rand(y.shape, generator=torch.Generator().manual_seed(0))
    for loss in (WeightedCrossEntropyLoss(), WeightedSoftDiceLoss()):
        assert torch.allclose(loss(z, oh, w, labels=y), loss(z, y, w), atol=1e-6)
    # unweighted CE = torch's mean CE
    ref = torch.nn.functional.cross_entropy(z, y)
    assert torch.allclose(WeightedCrossEntropyLoss()(z, y), ref, atol=1e-6)


def test_ignore_index_and_gradients() -> None:
    z = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = torch.randint(3, (2, 4, 4), generator=torch.Generator().manual_seed(2))
    y_ign = y.clone()
    y_ign[0] = 255
    ce = WeightedCrossEntropyLoss()
    ref = torch.nn.functional.cross_entropy(z[1:], y[1:])
    assert torch.allclose(ce(z, y_ign), ref, atol=1e-6)
    # consistency: no gradient flows into the target branch
    z2 = torch.randn(2, 3, 4, 4, requires_grad=True)
    CrossModalConsistencyLoss("kl")(z, z2).backward()
    assert z2.grad is None and z.grad is not None
    # KL of a branch with itself is 0, CE equals its entropy
    assert float(CrossModalConsistencyLoss("kl")(z2, z2).detach()) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError):
        CrossModalConsistencyLoss("l2")  # type: ignore[arg-type]


def test_dice_hand_computed() -> None:
    # one pixel of class 0 predicted with p = (0.8, 0.2); class 1 absent → zeroed
    z = torch.log(torch.tensor([0.8, 0.2])).view(1, 2, 1, 1)
    y = torch.zeros(1, 1, 1, dtype=torch.long)
    expected = (1 - 2 * 0.8 / (0.8 + 1.0)) / 2
    assert float(WeightedSoftDiceLoss()(z, y)) == pytest.approx(expected, rel=1e-6)


def test_selection_edge_cases() -> None:
    labels = torch.tensor([[[0, 0, 0, 0, 1, 2]]])
    conf = torch.tensor([[[0.9, 0.6, 0.3, 0.0, 0.5, 0.0]]])
    # class 0: 4 pixels, r = 0.5 → n = 2, τ = 0.6; class 1: 1 pixel → n = int(0.5) = 0 →
    # weight 0; class 2: n = 0 as well
    w = class_balanced_selection(conf, labels, 0.5, num_classes=4)
    assert torch.allclose(w, torch.tensor([[[1.0, 1.0, 0.5, 0.0, 0.0, 0.0]]]))
    # r = 0.75: class 0 n = 3, τ = 0.3 → the 0-confidence pixel gets 0
    w = class_balanced_selection(conf, labels, 0.75, num_classes=4)
    assert torch.allclose(w, torch.tensor([[[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]]))
    # r = 1: class 0's τ is its smallest value 0 → τ = 0 → weight 1 for all its pixels; class
    # 1 → τ = 0.5 → 1; class 2's only value is 0 → τ = 0 → 1
    w = class_balanced_selection(conf, labels, 1.0, num_classes=4)
    assert torch.equal(w, torch.ones(1, 1, 6))
    # τ = 0 for a class whose n-th largest is 0: every pixel of the class gets 1
    conf0 = torch.tensor([[[0.4, 0.0, 0.0, 0.0, 0.5, 0.0]]])
    w = class_balanced_selection(conf0, labels, 0.75, num_classes=4)
    assert torch.equal(w[0, 0, :4], torch.ones(4))
    # class 3 absent from the batch and ignored pixels: weight 0, nothing crashes
    labels_ign = labels.clone()
    labels_ign[0, 0, 5] = 255
    w = class_balanced_selection(conf, labels_ign, 1.0, num_classes=4)
    assert float(w[0, 0, 5]) == 0.0 and float(w[0, 0, 4]) == 1.0
    # ramped consistency weights: 1 − ramp + ramp·c at e = 0, c from T on
    c = torch.tensor([0.2, 0.7])
    assert torch.allclose(consistency_weights(c, 0, 80), 1 - math.exp(-5) * (1 - c))
    assert torch.allclose(consistency_weights(c, 81, 80), c)
    with pytest.raises(ConfigError):
        CrossModalSampleSelection(9, r_inf=1.5)
