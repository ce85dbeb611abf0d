"""CromSS U-Nets: middle fusion shares one decoder, late fusion has two, any input size."""

from __future__ import annotations

import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.models.unet import LateFusionUNet, MiddleFusionUNet, build_cromss_unet

TINY = {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]}
CH = {"s1": 2, "s2": 9}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions: one intra-op thread is faster than two on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(h: int = 40, w: int = 36) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {m: torch.randn(2, c, h, w, generator=g) for m, c in CH.items()}


def test_middle_fusion_shares_one_decoder() -> None:
    torch.manual_seed(0)
    net = build_cromss_unet("middle", CH, 9, **TINY)
    assert isinstance(net, MiddleFusionUNet)
    # exactly one decoder and one head module; two encoders with their own input channels
    decoders = [n for n, m in net.named_modules() if type(m).__name__ == "UnetDecoder"]
    assert decoders == ["decoder"]
    assert net.encoder("s1") is not net.encoder("s2")
    assert net.encoder("s1").conv1.in_channels == 2 and net.encoder("s2").conv1.in_channels == 9
    out = net(_inputs())
    assert list(out) == ["s1", "s2"] and out["s1"].shape == (2, 9, 40, 36)
    assert not torch.allclose(out["s1"], out["s2"])  # each modality predicted on its own
    # the shared decoder gets gradients from both branches
    out["s1"].sum().backward()
    g1 = net.decoder.blocks[0].conv1[0].weight.grad.clone()
    assert net.encoder("s2").conv1.weight.grad is None
    net.zero_grad()
    out = net(_inputs())
    out["s2"].sum().backward()
    assert net.decoder.blocks[0].conv1[0].weight.grad.abs().sum() > 0
    assert not torch.allclose(g1, net.decoder.blocks[0].conv1[0].weight.grad)


def test_late_fusion_and_single() -> None:
    net = build_cromss_unet("late", CH, 9, **TINY)
    assert isinstance(net, LateFusionUNet)
    decoders = [n for n, m in net.named_modules() if type(m).__name__ == "UnetDecoder"]
    assert decoders == ["unets.s1.decoder", "unets.s2.decoder"]
    n_late = sum(p.numel() for p in net.parameters())
    n_mid = sum(p.numel() for p in build_cromss_unet("middle", CH, 9, **TINY).parameters())
    dec = sum(p.numel() for p in net.unets["s1"].decoder.parameters())
    head = sum(p.numel() for p in net.unets["s1"].segmentation_head.parameters())
    assert n_late - n_mid == dec + head
    single = build_cromss_unet("single", {"s2": 13}, 9, **TINY)
    x = torch.randn(1, 13, 48, 48)
    assert list(single({"s2": x})) == ["s2"] and single({"s2": x})["s2"].shape == (1, 9, 48, 48)
    with pytest.raises(ConfigError):
        build_cromss_unet("middle", {"s2": 13}, 9, **TINY)
    with pytest.raises(ConfigError):
        build_cromss_unet("single", CH, 9, **TINY)
    with pytest.raises(ConfigError):
        build_cromss_unet("late", CH, 9, encoder="nope")
