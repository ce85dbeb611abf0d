"""Tests of GatedViT and the transformer-shortcut unit (MGSViT Eq. 1)."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from rsfuse.errors import DataError
from rsfuse.models.vit import GatedViT, TransformerShortcut, patchify, sincos_pos_embed_2d


class Double(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return 2 * h


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


H = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # [B=1, L=2, D=2]


def test_token_gate_matches_hand_computation() -> None:
    ts = TransformerShortcut([Double()], dim=2, gate="token")
    with torch.no_grad():
        ts.gate.weight.copy_(torch.tensor([[1.0, -1.0]]))  # F(h) = h_1 - h_2
    out = ts(H)
    # token 1: F = -1; token 2: F = 3; H_out = 2 H + σ(F) H
    want = torch.tensor([[[(2 + _sig(-1)) * 1, (2 + _sig(-1)) * 2], [(2 + _sig(3)) * 3, 0.0]]])
    torch.testing.assert_close(out, want)
    assert ts.gate_values(H).shape == (1, 2, 1)


def test_channel_gate_matches_hand_computation() -> None:
    ts = TransformerShortcut([Double()], dim=2, gate="channel")
    with torch.no_grad():
        ts.gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))  # F(h) = (h_1, -h_2)
    out = ts(H)
    want = torch.tensor([[[2 + _sig(1) * 1, 4 + _sig(-2) * 2], [6 + _sig(3) * 3, 0 + _sig(0) * 0]]])
    torch.testing.assert_close(out, want)
    assert ts.gate_values(H).shape == (1, 2, 2)


@pytest.mark.parametrize("order", ["rows_first", "mae"])
def test_sincos_positions_known_values(order: str) -> None:
    pe = sincos_pos_embed_2d(2, 3, 8, order)
    assert pe.shape == (6, 8)
    # patch (row 0, col 0): sin 0 = 0, cos 0 = 1 for both halves
    torch.testing.assert_close(pe[0], torch.tensor([0, 0, 1, 1, 0, 0, 1, 1.0]))
    # patch (row 1, col 2) = index 5: row half uses p=1, column half p=2 (ω_0 = 1, ω_1 = 0.01)
    row = [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]
    col = [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02)]
    # MAE's get_2d_sincos_pos_embed (MGSViT's code): the column half first
    want = row + col if order == "rows_first" else col + row
    torch.testing.assert_close(pe[5], torch.tensor(want))
    assert torch.equal(sincos_pos_embed_2d(2, 3, 8), sincos_pos_embed_2d(2, 3, 8, "mae"))


def test_patchify_order() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    p = patchify(x, 2)  # [1, 4, 2*2*2] in (p1 p2 c) order
    assert p.shape == (1, 4, 8)
    # patch 1 = rows 0-1, cols 2-3; first entries: pixel (0,2) of channel 0 then channel 1
    assert p[0, 1, :4].tolist() == [2.0, 18.0, 3.0, 19.0]
    with pytest.raises(DataError, match="patch size"):
        patchify(torch.zeros(1, 2, 5, 4), 2)


def test_n0_equals_a_plain_timm_vit_with_the_same_weights() -> None:
    torch.manual_seed(0)
    ours = GatedViT(3, patch_size=8, embed_dim=32, depth=2, num_heads=2, shortcut_every=0).eval()
    ref = timm.models.vision_transformer.VisionTransformer(
        img_size=32,
        patch_size=8,
        in_chans=3,
        embed_dim=32,
        depth=2,
        num_heads=2,
        class_token=False,
        global_pool="avg",
        fc_norm=False,
        num_classes=0,
    ).eval()
    sd = {k: v for k, v in ours.state_dict().items() if k.startswith(("blocks.", "norm."))}
    missing, _ = ref.load_state_dict(sd, strict=False)
    assert set(missing) == {"pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"}
    with torch.no_grad():
        # Linear over (p1 p2 c) == Conv2d with weight [D, c, p1, p2]
        w = ours.patch_embed.weight.view(32, 8, 8, 3).permute(0, 3, 1, 2)
        ref.patch_embed.proj.weight.copy_(w)
        ref.patch_embed.proj.bias.copy_(ours.patch_embed.bias)
        ref.pos_embed.copy_(sincos_pos_embed_2d(4, 4, 32, ours.pos_embed_order)[None])
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours.forward_features(x), ref.forward_features(x))
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("gate", ["token", "channel"])
def test_gradients_reach_every_parameter(gate: str) -> None:
    m = GatedViT(
        4,
        patch_size=8,
        embed_dim=32,
        depth=4,
        num_heads=2,
        shortcut_every=2,
        gate=gate,
        class_token=True,
        num_classes=3,
    )
    m(torch.randn(2, 4, 32, 32)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_shortcut_grouping_and_block_outputs() -> None:
    m = GatedViT(2, patch_size=8, embed_dim=32, depth=5, num_heads=2, shortcut_every=2)
    kinds = [type(u).__name__ for u in m.blocks]
    assert kinds == ["TransformerShortcut", "TransformerShortcut", "Block"]
    x = torch.randn(3, 2, 32, 48)  # non-square input: 4 x 6 patch grid
    tokens, last = m.forward_features(x, return_blocks=4)
    assert tokens.shape == (3, 24, 32) and len(last) == 4
    torch.testing.assert_close(last[-1], tokens)
    assert m.pooled_features(x, last_k=4).shape == (3, 128)


def test_img_size_resizes_and_channels_are_checked() -> None:
    m = GatedViT(2, img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    assert m.forward_features(torch.randn(1, 2, 20, 20)).shape == (1, 16, 32)
    with pytest.raises(DataError, match="2 channels"):
        m(torch.randn(1, 3, 32, 32))
