"""Tests of the ViT → UPerNet segmentation network."""

from __future__ import annotations

import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.models.encoders import create_encoder
from rsfuse.models.upernet import (
    ViTFeaturePyramid,
    ViTUPerNet,
    default_out_indices,
    vit_block_maps,
)
from rsfuse.models.vit import GatedViT

VIT = {"patch_size": 8, "embed_dim": 32, "depth": 4, "num_heads": 2}


def test_default_out_indices_are_evenly_spaced_and_end_at_the_last_block() -> None:
    assert default_out_indices(12) == [2, 5, 8, 11]
    assert default_out_indices(24) == [5, 11, 17, 23]
    assert default_out_indices(4) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        default_out_indices(0)


def test_pyramid_scales_are_4_2_1_half() -> None:
    maps = [torch.randn(2, 32, 6, 4) for _ in range(4)]
    out = ViTFeaturePyramid(32)(maps)
    assert [tuple(o.shape[-2:]) for o in out] == [(24, 16), (12, 8), (6, 4), (3, 2)]
    assert all(o.shape[:2] == (2, 32) for o in out)


def test_gated_vit_block_maps_are_the_chosen_blocks() -> None:
    torch.manual_seed(0)
    vit = GatedViT(3, shortcut_every=2, **VIT).eval()
    x = torch.randn(2, 3, 48, 32)
    maps = vit_block_maps(vit, x, [0, 3])
    assert [tuple(m.shape) for m in maps] == [(2, 32, 6, 4), (2, 32, 6, 4)]
    tokens, last = vit.forward_features(x, return_blocks=4)
    # token l = (row, col) row-major → map[:, :, row, col]
    assert torch.allclose(maps[0][:, :, 1, 2], last[0][:, 1 * 4 + 2])
    assert torch.allclose(maps[1].flatten(2).transpose(1, 2), tokens)


def test_timm_vit_block_maps_and_upernet_shape() -> None:
    torch.manual_seed(0)
    vit = create_encoder(
        "vit_tiny_patch16_224", 5, {"img_size": 32, **VIT, "dynamic_img_size": True}
    )
    maps = vit_block_maps(vit, torch.randn(1, 5, 32, 48), [1, 2, 3, 3])
    assert tuple(maps[0].shape) == (1, 32, 4, 6)
    net = ViTUPerNet(vit, num_classes=7, decoder_channels=16)
    assert net.pad_multiple == 16
    assert tuple(net(torch.randn(2, 5, 32, 48)).shape) == (2, 7, 32, 48)


def test_upernet_gradients_reach_every_chosen_block_and_nothing_else() -> None:
    torch.manual_seed(0)
    vit = GatedViT(4, **{**VIT, "depth": 6})
    net = ViTUPerNet(vit, num_classes=3, out_indices=[0, 1, 2, 3], decoder_channels=16)
    net(torch.randn(2, 4, 32, 32)).square().mean().backward()
    grads = [b.mlp.fc2.weight.grad for b in vit.blocks]
    assert all(g is not None and g.abs().sum() > 0 for g in grads[:4])
    assert all(g is None for g in grads[4:])  # blocks 5, 6 feed no pyramid level


def test_bad_out_indices_are_config_errors() -> None:
    vit = GatedViT(3, **VIT)
    with pytest.raises(ConfigError, match="out_indices"):
        ViTUPerNet(vit, 3, out_indices=[0, 1, 2])
    with pytest.raises(ConfigError, match="out_indices"):
        ViTUPerNet(vit, 3, out_indices=[0, 1, 2, 4])
