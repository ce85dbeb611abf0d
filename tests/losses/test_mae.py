import numpy as np
import pytest
import torch

from rsfuse.errors import ConfigError, DataError
from rsfuse.losses.mae import MAEReconstructionLoss
from rsfuse.models.vit import patchify, random_masking
from tests.conformance import load


def test_patchify_order_reproduces_mae() -> None:
    ref = load("mae")
    got = patchify(torch.from_numpy(ref["imgs"]), 8)
    np.testing.assert_allclose(got.numpy(), ref["patches"], atol=1e-6)


def test_random_masking_from_given_noise_reproduces_mae() -> None:
    ref = load("mae")
    kept, mask, ids_restore = random_masking(
        torch.from_numpy(ref["tokens"]), 0.75, noise=torch.from_numpy(ref["noise"])
    )
    np.testing.assert_allclose(kept.numpy(), ref["kept_tokens"], atol=1e-6)
    np.testing.assert_array_equal(mask.numpy(), ref["mask"])
    np.testing.assert_array_equal(ids_restore.numpy(), ref["ids_restore"])


@pytest.mark.parametrize("norm_pix", [0, 1])
def test_loss_reproduces_mae(norm_pix: int) -> None:
    ref = load("mae")
    target = patchify(torch.from_numpy(ref["imgs"]), 8)
    loss = MAEReconstructionLoss(norm_pix=bool(norm_pix))(
        target, torch.from_numpy(ref["pred"]), torch.from_numpy(ref["mask"])
    )
    assert loss.item() == pytest.approx(float(ref[f"loss_normpix_{norm_pix}"]), rel=1e-5)


@pytest.mark.parametrize(("n", "ratio"), [(16, 0.75), (100, 0.9), (49, 0.75), (10, 0.5)])
def test_masking_keeps_round_count_and_marks_the_rest(n: int, ratio: float) -> None:
    tokens = torch.arange(3 * n * 2, dtype=torch.float32).reshape(3, n, 2)
    kept, mask, ids_restore = random_masking(tokens, ratio)
    n_keep = round(n * (1 - ratio))
    assert kept.shape == (3, n_keep, 2)
    assert (mask.sum(dim=1) == n - n_keep).all()
    for b in range(3):
        kept_ids = (kept[b, :, 0] - tokens[b, 0, 0]).long() // 2  # token index from its value
        assert mask[b, kept_ids].eq(0).all()  # kept tokens are marked 0
        assert len(set(kept_ids.tolist())) == n_keep
        assert torch.equal(torch.argsort(ids_restore[b]).argsort(), ids_restore[b])


def test_masking_rejects_bad_ratio_and_noise() -> None:
    with pytest.raises(ConfigError, match="mask_ratio"):
        random_masking(torch.zeros(1, 4, 2), 1.0)
    with pytest.raises(DataError, match="noise"):
        random_masking(torch.zeros(1, 4, 2), 0.5, noise=torch.zeros(1, 5))


def test_loss_counts_masked_patches_only() -> None:
    target = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    # masked patches 0 and 2: per-patch MSE 1 and 9 → mean 5; patch 1 (MSE 4) is ignored
    assert MAEReconstructionLoss()(target, pred, mask).item() == pytest.approx(5.0)
    pred2 = pred.clone()
    pred2[0, 1] = 100.0  # a visible patch cannot change the loss
    assert MAEReconstructionLoss()(target, pred2, mask).item() == pytest.approx(5.0)


def test_loss_shape_mismatch() -> None:
    with pytest.raises(DataError, match="shapes"):
        MAEReconstructionLoss()(torch.zeros(1, 3, 2), torch.zeros(1, 3, 3), torch.zeros(1, 3))
