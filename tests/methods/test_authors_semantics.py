"""The authors' semantics of MGSViT, MoCo v3 / MoCo-MM and DINO-MM that rsfuse defaults to.

GMU, projector / predictor and momentum against MGSViT's own code
(``tests/data/conformance/mgsvit.npz``); the momentum encoder is deterministic; the
augmentation defaults follow the authors' training scripts, with the paper-text variants
one argument away.
"""

from __future__ import annotations

import json

import kornia.augmentation as K
import numpy as np
import pytest
import torch

from rsfuse.data.transforms import (
    MultiCropAugmentation,
    RandomBrightnessContrast,
    RandomBrightnessOrContrast,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomSolarize,
    mgsvit_ssl_augmentation,
)
from rsfuse.methods.dino_mm import DINOMM
from rsfuse.methods.mgsvit import MGSViTPretraining
from rsfuse.methods.moco_mm import MoCoMM
from rsfuse.models.fusion import GatedMultimodalUnit
from rsfuse.models.heads import projection_mlp
from rsfuse.models.moco import MoCoV3
from tests.conformance import load

REF = load("mgsvit")
TINY_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _t(name: str) -> torch.Tensor:
    return torch.from_numpy(REF[name])


# ------------------------------------------------------------------------------ GMU
def test_gmu_reproduces_mgsvit_code() -> None:
    gmu = GatedMultimodalUnit(("s1", "s2"), (8, 8), hidden_dim=8)  # defaults: MGSViT's code
    gmu.load_state_dict(
        {
            "w1.weight": _t("gmu.hidden1.weight"), "w1.bias": _t("gmu.hidden1.bias"),
            "w2.weight": _t("gmu.hidden2.weight"), "w2.bias": _t("gmu.hidden2.bias"),
            "wz.weight": _t("gmu.hidden_sigmoid.weight"), "wz.bias": _t("gmu.hidden_sigmoid.bias"),
        }
    )  # fmt: skip
    h = gmu({"s1": _t("gmu_x_s1"), "s2": _t("gmu_x_s2")})
    np.testing.assert_allclose(gmu.last_gate.numpy(), REF["gmu_z"], atol=1e-6)
    np.testing.assert_allclose(h.detach().numpy(), REF["gmu_h"], atol=1e-6)
    # the printed Eq. 4 (gate on the raw features) gives another gate with the same weights
    eq4 = GatedMultimodalUnit(("s1", "s2"), (8, 8), hidden_dim=8, gate_input="eq4")
    eq4.load_state_dict(gmu.state_dict())
    eq4({"s1": _t("gmu_x_s1"), "s2": _t("gmu_x_s2")})
    assert not np.allclose(eq4.last_gate.numpy(), REF["gmu_z"], atol=1e-3)


# ------------------------------------------------------------------------------ MoCo v3 heads
def _structure(seq: torch.nn.Sequential) -> list[dict]:
    out = []
    for i, m in enumerate(seq):
        if isinstance(m, torch.nn.Linear):
            out.append({"idx": i, "type": "Linear", "in": m.in_features, "out": m.out_features,
                        "bias": m.bias is not None})  # fmt: skip
        elif isinstance(m, torch.nn.BatchNorm1d):
            out.append({"idx": i, "type": "BatchNorm1d", "num_features": m.num_features,
                        "affine": m.affine, "eps": m.eps, "momentum": m.momentum,
                        "track_running_stats": m.track_running_stats})  # fmt: skip
        else:
            out.append({"idx": i, "type": type(m).__name__, "inplace": m.inplace})
    return out


def test_projector_and_predictor_match_mgsvit_and_moco_v3_vit() -> None:
    ref = json.loads(str(REF["mlp_structure_json"]))
    moco = MoCoV3(torch.nn.Identity(), 16, hidden_dim=32, out_dim=8)  # MoCo v3 ViT defaults
    assert _structure(moco.projector) == ref["projector"]
    assert _structure(moco.predictor) == ref["predictor"]  # last BatchNorm kept
    proj, pred = projection_mlp(3, 16, 32, 8), projection_mlp(2, 8, 32, 8)
    proj.load_state_dict({k[5:]: _t(k) for k in REF if k.startswith("proj.")})
    pred.load_state_dict({k[5:]: _t(k) for k in REF if k.startswith("pred.")})
    x = _t("mlp_x")
    proj.eval(), pred.eval()
    with torch.no_grad():
        np.testing.assert_allclose(proj(x).numpy(), REF["proj_out_eval"], atol=1e-5)
        np.testing.assert_allclose(pred(proj(x)).numpy(), REF["pred_out_eval"], atol=1e-5)
        proj.train(), pred.train()
        np.testing.assert_allclose(proj(x).numpy(), REF["proj_out_train"], atol=1e-5)
        np.testing.assert_allclose(pred(proj(x)).numpy(), REF["pred_out_train"], atol=1e-5)
    # MoCo v3's ResNet variant: one argument away
    resnet_style = MoCoV3(torch.nn.Identity(), 16, hidden_dim=32, out_dim=8, pred_last_bn=False)
    assert not isinstance(resnet_style.predictor[-1], torch.nn.BatchNorm1d)


# ------------------------------------------------------------------------------ momentum
def _mgsvit(**kw) -> MGSViTPretraining:
    return MGSViTPretraining(
        modality="s1", backbone_kwargs=TINY_VIT, crop_size=16, decoder_dim=16, decoder_heads=2,
        proj_hidden_dim=16, proj_dim=8, **kw,
    )  # fmt: skip


def test_mgsvit_momentum_constant_by_default_cosine_on_request() -> None:
    epochs, iters = len(REF["momentum_default"]), REF["momentum_cos_iters4"].shape[1]
    total = epochs * iters
    const = _mgsvit()
    got = [const.momentum_at(e * iters, total) for e in range(epochs)]
    np.testing.assert_allclose(got, REF["momentum_default"], atol=1e-12)
    cos = _mgsvit(momentum_schedule="cosine")
    got = [[cos.momentum_at(e * iters + i, total) for i in range(iters)] for e in range(epochs)]
    np.testing.assert_allclose(got, REF["momentum_cos_iters4"], atol=1e-12)
    np.testing.assert_allclose([row[0] for row in got], REF["momentum_cos_epoch_start"], atol=1e-12)


def test_mgsvit_adamw_betas_are_the_authors() -> None:
    from types import SimpleNamespace

    m = _mgsvit()
    m._trainer = SimpleNamespace(  # what configure_optimizers reads of a Trainer
        datamodule=SimpleNamespace(batch_size=32), world_size=1, accumulate_grad_batches=1,
        estimated_stepping_batches=100, max_epochs=10,
    )  # fmt: skip
    opt = m.configure_optimizers()["optimizer"]
    m._trainer = None
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)


# ------------------------------------------------------------------------------ determinism
def test_momentum_encoder_is_deterministic_in_train_mode() -> None:
    torch.manual_seed(0)
    model = MoCoMM(backbone_kwargs={**TINY_VIT, "drop_path_rate": 0.5}, hidden_dim=16,
                   out_dim=8, crops_size=16)  # fmt: skip
    model.train()
    x = torch.randn(4, 14, 16, 16)
    torch.testing.assert_close(model.moco.key(x), model.moco.key(x))  # keys: no drop-path
    q1, q2 = model.moco.encoder(x), model.moco.encoder(x)  # the online encoder keeps it
    assert not torch.allclose(q1, q2)


def test_moco_mm_default_vit_is_moco_v3_vit_small() -> None:
    model = MoCoMM(hidden_dim=16, out_dim=8, crops_size=16)
    enc = model.moco.encoder
    assert enc.num_features == 384 and len(enc.blocks) == 12
    assert enc.blocks[0].attn.num_heads == 12
    assert all(type(b.drop_path1).__name__ == "Identity" for b in enc.blocks)


# ------------------------------------------------------------------------------ augmentations
def test_mgsvit_views_follow_the_authors_code_and_the_paper_on_request() -> None:
    def ops(aug):
        return [type(op) for op in aug.intensity], aug.intensity[2].p

    code = [mgsvit_ssl_augmentation(16, view=v) for v in (1, 2)]
    assert ops(code[0]) == ([RandomBrightnessContrast, RandomGrayscale, RandomGaussianBlur], 1.0)
    assert ops(code[1])[1] == 0.1
    geo = list(code[0].geometric)
    assert any(isinstance(g, K.RandomHorizontalFlip) for g in geo)
    paper = mgsvit_ssl_augmentation(16, recipe="paper", view=2)
    assert ops(paper) == ([RandomBrightnessOrContrast, RandomGrayscale, RandomGaussianBlur], 1.0)
    assert not any(isinstance(g, K.RandomHorizontalFlip) for g in paper.geometric)
    m = _mgsvit()
    assert [a.intensity[2].p for a in m.view_augmentations] == [1.0, 0.1]


def test_brightness_and_contrast_is_multiplicative_then_contrast() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 5, 5) + 0.5
    op = RandomBrightnessContrast(0.4, p=1.0)
    y = op(x)
    params = op._params
    b = params["brightness_factor"].view(-1, 1, 1, 1)
    c = params["contrast_factor"].view(-1, 1, 1, 1)
    assert bool(((b >= 0.6) & (b <= 1.4)).all()) and bool(((c >= 0.6) & (c <= 1.4)).all())
    z = x * b
    mu = z.mean((-2, -1), keepdim=True)
    torch.testing.assert_close(y, (z - mu) * c + mu)


def test_solarize_direction() -> None:
    x = torch.tensor([0.1, 0.5, 0.9]).view(1, 1, 1, 3)
    below = RandomSolarize(0.5, 1.0, p=1.0, direction="below")(x)
    above = RandomSolarize(0.5, 1.0, p=1.0, direction="above")(x)
    torch.testing.assert_close(below.flatten(), torch.tensor([0.9, 0.5, 0.9]))
    torch.testing.assert_close(above.flatten(), torch.tensor([0.1, 0.5, 0.1]))


def test_dino_mm_augments_the_14_channel_stack_as_its_code() -> None:
    dino = DINOMM(backbone_kwargs=TINY_VIT, out_dim=16, head_hidden_dim=16,
                  head_bottleneck_dim=8, global_crops_size=16, local_crops_number=0)  # fmt: skip
    g2 = dino.augment.global_views[1]
    assert g2.joint_intensity and isinstance(g2.intensity[0], RandomBrightnessContrast)
    assert [op.direction for op in g2.intensity if isinstance(op, RandomSolarize)] == ["below"]
    # grayscale over all 14 channels: SAR and optical bands share one mean
    batch = {"s2": torch.rand(3, 12, 8, 8), "s1": torch.rand(3, 2, 8, 8) + 10.0}
    aug = MultiCropAugmentation(8, (1.0, 1.0), 0, grayscale_p=1.0, color_p=0.0,
                                blur_p=(0.0, 0.0, 0.0), solarize_p=0.0)  # fmt: skip
    v = aug(batch)[0]
    stack = torch.cat([v["s2"], v["s1"]], 1)
    assert torch.allclose(stack, stack[:, :1].expand_as(stack))
    per_sensor = MultiCropAugmentation(8, (1.0, 1.0), 0, grayscale_p=1.0, color_p=0.0,
                                       blur_p=(0.0, 0.0, 0.0), solarize_p=0.0,
                                       joint_sensors=False)(batch)[0]  # fmt: skip
    assert float(per_sensor["s1"].min()) > 9.0 > float(per_sensor["s2"].max())


@pytest.mark.parametrize("rotation", ["any", "right_angles"])
def test_cromss_rotation(rotation: str) -> None:
    """Any angle in ±90° (CromSS code: albumentations Rotate, p = 0.2) or quarter turns."""
    from rsfuse.data.transforms import RandomRot90, segmentation_augmentation

    torch.manual_seed(0)
    aug = segmentation_augmentation(rotation=rotation)
    last = list(aug.geometric)[-1]
    assert last.p == 0.2
    if rotation == "right_angles":
        assert isinstance(last, RandomRot90)
        return
    always = segmentation_augmentation(rotation=rotation, rotate_p=1.0)
    batch = {"s2": torch.rand(256, 2, 12, 12), "mask": torch.randint(0, 3, (256, 12, 12))}
    out = always(batch)
    angles = list(always.geometric)[-1]._params["angle"]
    assert float(angles.abs().max()) <= 90.0 and float(angles.abs().max()) > 80.0
    assert float(((angles % 90) != 0).float().mean()) == 1.0  # not quarter turns
    assert set(out["mask"].unique().tolist()) <= {0, 1, 2}  # nearest, reflected corners
