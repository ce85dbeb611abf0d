"""Tests of GMU / concatenation fusion and the multi-modal classifier (MGSViT Eq. 2-5)."""

from __future__ import annotations

import math

import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.models.fusion import (
    ConcatFusion,
    GatedMultimodalUnit,
    MultiModalClassifier,
    drop_modalities,
)
from rsfuse.models.vit import GatedViT

X1 = torch.tensor([[1.0, -1.0]])
X2 = torch.tensor([[0.5, 2.0]])


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _gmu(gate: str) -> GatedMultimodalUnit:
    """A GMU whose gate reads the raw features (Eq. 4 as printed), weights set by hand."""
    g = GatedMultimodalUnit(("s1", "s2"), (2, 2), gate=gate, bias=False, gate_input="eq4")
    with torch.no_grad():
        g.w1.weight.copy_(torch.eye(2))
        g.w2.weight.copy_(2 * torch.eye(2))
        if gate == "scalar":
            g.wz.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))  # z = σ(x1_1 + x2_2)
        else:
            g.wz.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, -1.0]]))  # (x1_1, -x2_2)
    return g


def test_scalar_gmu_matches_hand_computation() -> None:
    h = _gmu("scalar")({"s1": X1, "s2": X2})
    z = _sig(1 + 2)
    h1 = [math.tanh(1), math.tanh(-1)]
    h2 = [math.tanh(1), math.tanh(4)]
    want = torch.tensor([[z * a + (1 - z) * b for a, b in zip(h1, h2)]])
    torch.testing.assert_close(h, want)


def test_vector_gmu_matches_hand_computation() -> None:
    g = _gmu("vector")
    h = g({"s1": X1, "s2": X2})
    z = [_sig(1), _sig(-2)]
    h1 = [math.tanh(1), math.tanh(-1)]
    h2 = [math.tanh(1), math.tanh(4)]
    want = torch.tensor([[zi * a + (1 - zi) * b for zi, a, b in zip(z, h1, h2)]])
    torch.testing.assert_close(h, want)
    assert g.last_gate.shape == (1, 2)


def test_gate_inputs_by_source() -> None:
    """mgsvit: gate on tanh(W x); arevalo: on W x before the tanh; eq4: on the raw x."""
    x1, x2 = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 2.0]])
    wz = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # z = σ(g_1 + g_4)
    a1, a2 = x1, 2 * x2  # W_1 = I, W_2 = 2 I
    expected = {
        "mgsvit": _sig(math.tanh(a1[0, 0]) + math.tanh(a2[0, 1])),
        "arevalo": _sig(a1[0, 0] + a2[0, 1]),
        "eq4": _sig(x1[0, 0] + x2[0, 1]),
    }
    for source, z in expected.items():
        g = GatedMultimodalUnit(("s1", "s2"), (2, 2), bias=False, gate_input=source)
        with torch.no_grad():
            g.w1.weight.copy_(torch.eye(2))
            g.w2.weight.copy_(2 * torch.eye(2))
            g.wz.weight.copy_(wz)
        g({"s1": x1, "s2": x2})
        assert float(g.last_gate) == pytest.approx(z, abs=1e-6), source
    assert GatedMultimodalUnit(dims=(3, 5), hidden_dim=4).wz.in_features == 8  # 2H
    assert GatedMultimodalUnit(dims=(3, 5), hidden_dim=4, gate_input="eq4").wz.in_features == 8
    assert GatedMultimodalUnit(dims=(3, 6), hidden_dim=4, gate_input="eq4").wz.in_features == 9
    with pytest.raises(ConfigError, match="gate_input"):
        GatedMultimodalUnit(gate_input="paper")


@pytest.mark.parametrize("gate", ["scalar", "vector"])
def test_gmu_gate_is_forced_to_the_present_modality(gate: str) -> None:
    g = GatedMultimodalUnit(("s1", "s2"), (3, 5), hidden_dim=4, gate=gate)
    x1, x2 = torch.randn(4, 3), torch.randn(4, 5)
    present = {"s1": torch.tensor([1, 1, 0, 0]).bool(), "s2": torch.tensor([1, 0, 1, 0]).bool()}
    h = g({"s1": x1, "s2": x2}, present)
    h1 = torch.tanh(g.w1(x1))
    h2 = torch.tanh(g.w2(x2))
    torch.testing.assert_close(h[1], h1[1])  # S2 absent: h = h_1
    torch.testing.assert_close(h[2], h2[2])  # S1 absent: h = h_2
    assert torch.count_nonzero(h[3]) == 0  # both absent
    # the absent input never matters
    h_again = g({"s1": x1, "s2": x2 + 100 * torch.randn(4, 5)}, present)
    torch.testing.assert_close(h_again[1], h[1])


def test_concat_fusion_zeroes_an_absent_modality() -> None:
    f = ConcatFusion(("s1", "s2"), (2, 3))
    out = f({"s1": torch.ones(2, 2), "s2": torch.ones(2, 3)}, {"s1": torch.tensor([True, False])})
    assert out.shape == (2, 5) and f.out_dim == 5
    assert out[1, :2].abs().sum() == 0 and out[1, 2:].sum() == 3


def _encoders() -> dict:
    kw = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "shortcut_every": 2}
    return {"s1": GatedViT(2, **kw), "s2": GatedViT(4, **kw)}


def _batch(b: int = 3) -> dict:
    return {
        "s1": torch.randn(b, 2, 32, 32),
        "s2": torch.randn(b, 4, 32, 32),
        "present": {"s1": torch.ones(b, dtype=torch.bool), "s2": torch.ones(b, dtype=torch.bool)},
    }


@pytest.mark.parametrize("fusion", ["concat", "gmu"])
def test_classifier_runs_with_a_modality_missing_and_trains_every_parameter(fusion: str) -> None:
    model = MultiModalClassifier(_encoders(), {"s1": 32, "s2": 32}, 5, fusion=fusion)
    batch = _batch()
    model(batch).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    s1_only = drop_modalities(batch, ["s2"])
    assert not s1_only["present"]["s2"].any() and s1_only["s2"].abs().sum() == 0
    assert batch["present"]["s2"].all()  # the original batch is untouched
    assert model(s1_only).shape == (3, 5)


def test_gmu_classifier_ignores_the_absent_sensor_data() -> None:
    model = MultiModalClassifier(_encoders(), {"s1": 32, "s2": 32}, 5, fusion="gmu").eval()
    batch = drop_modalities(_batch(), ["s1"])
    out = model(batch)
    batch["s1"] = torch.randn_like(batch["s1"])  # garbage in the absent sensor
    torch.testing.assert_close(model(batch), out)


def test_unknown_fusion_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        MultiModalClassifier(_encoders(), {"s1": 32, "s2": 32}, 5, fusion="sum")
