"""CromSS losses with smoothed labels and the validation loss, against the authors' code
(``tests/data/conformance/cromss_v2.npz``; inputs from ``cromss.npz``, epoch 40)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsfuse.data.label_smoothing import PRIOR_KEY, SpatialTemporalLabelSmoothing
from rsfuse.losses.cromss import CromSSLoss, WeightedCrossEntropyLoss, WeightedSoftDiceLoss
from rsfuse.methods.cromss import CromSS, variant_kwargs
from tests.conformance import load

V1, V2 = load("cromss"), load("cromss_v2")
LOGITS = {"s1": torch.from_numpy(V1["logits_s1"]), "s2": torch.from_numpy(V1["logits_s2"])}
Y = torch.from_numpy(V1["noisy_label"])
TARGET = torch.from_numpy(V2["smoothed_target"])
EPOCH = int(V2["epoch"])


def _mask(kind: str, s: str) -> torch.Tensor:
    return torch.from_numpy(V2[f"selection_mask_{kind}_e{EPOCH}_{s}"])


def _close(value: torch.Tensor | float, name: str) -> None:
    got = float(value)
    np.testing.assert_allclose(got, float(V2[name]), rtol=1e-5, atol=0, err_msg=name)


def test_smoothed_target_from_the_authors_prior() -> None:
    ls = SpatialTemporalLabelSmoothing(9, alpha=0.15, beta=0.05)
    out = ls.smooth(Y, torch.from_numpy(V2["prior_ts_b"]))
    np.testing.assert_allclose(out.numpy(), V2["smoothed_target"], atol=1e-6)
    season = int(V2["season"])
    for b in range(2):
        prior = ls.prior(V2["seasonal_labels_b"][b], season)
        np.testing.assert_allclose(prior, V2["prior_ts_b"][b], atol=1e-5)


@pytest.mark.parametrize("s", ["s1", "s2"])
def test_soft_dice_counts_every_class_with_smoothed_labels(s: str) -> None:
    dice = WeightedSoftDiceLoss()
    _close(dice(LOGITS[s], TARGET, labels=Y), f"dice_smoothed_{s}")
    _close(dice(LOGITS[s], TARGET, _mask("label", s), labels=Y), f"dice_smoothed_weighted_e40_{s}")
    # with hard labels the absent class 7 is zeroed but still counted in the mean
    hard = dice(LOGITS[s], Y)
    _close(hard, f"val_dice_{s}")
    assert float(hard) < float(V2[f"dice_smoothed_{s}"])


@pytest.mark.parametrize("s", ["s1", "s2"])
def test_cross_entropy_with_smoothed_labels(s: str) -> None:
    ce = WeightedCrossEntropyLoss()
    _close(ce(LOGITS[s], TARGET, labels=Y), f"ce_smoothed_{s}")
    _close(ce(LOGITS[s], TARGET, _mask("label", s), labels=Y), f"ce_smoothed_weighted_e40_{s}")
    _close(ce(LOGITS[s], Y), f"val_ce_{s}")


@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_training_losses_with_smoothing(kind: str) -> None:
    loss = CromSSLoss(2, consistency=kind)
    zs = [LOGITS["s1"], LOGITS["s2"]]
    sel = loss(
        zs, TARGET, labels=Y,
        label_masks=[_mask("label", "s1"), _mask("label", "s2")],
        consistency_masks=[_mask("consistency", "s1"), _mask("consistency", "s2")],
    )  # fmt: skip
    _close(sel["loss"], f"train_loss_ss_ls_e40_{kind}")
    _close(sel["con"], f"train_conloss_ss_ls_e40_{kind}")
    for i, s in enumerate(("s1", "s2")):
        _close(sel[f"ce_{i}"] + sel[f"dice_{i}"], f"train_segloss_ss_ls_e40_{kind}_{s}")
    plain = loss(zs, TARGET, labels=Y)
    _close(plain["loss"], f"train_loss_noss_ls_{kind}")
    _close(plain["con"], f"train_conloss_noss_ls_{kind}")


@pytest.mark.parametrize("variant", ["CromSS-midF", "CromSS-lateF"])
@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_validation_loss_is_the_authors_plain_loss(variant: str, kind: str) -> None:
    """validation_step computes CE + Dice on the integer labels + unweighted consistency,
    whatever the epoch: neither smoothing nor selection masks enter it."""
    tiny = {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8]}
    model = CromSS(**variant_kwargs(variant), consistency=kind, **tiny)
    batch = {"mask": Y, PRIOR_KEY: torch.from_numpy(V2["prior_ts_b"])}
    fusion = "midF" if variant.endswith("midF") else "lateF"
    for epoch in (0, EPOCH, 200):
        terms, sel = model.loss_terms(LOGITS, batch, epoch, train=False)
        assert sel is None
        _close(terms["loss"], f"val_loss_{fusion}_{kind}")
        _close(terms["con"], f"val_con_{kind}")
    # the training loss of epoch 40 on the same logits is the authors' training loss
    train, _ = model.loss_terms(LOGITS, batch, EPOCH, train=True)
    _close(train["loss"], f"train_loss_ss_ls_e40_{kind}")
    # "training" scores validation batches with the epoch's smoothing and masks instead
    alt = CromSS(**variant_kwargs(variant), consistency=kind, validation_loss="training", **tiny)
    terms, _ = alt.loss_terms(LOGITS, batch, EPOCH, train=False)
    assert float(terms["loss"]) == pytest.approx(float(train["loss"]), rel=1e-6)
