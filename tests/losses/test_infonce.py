import math

import numpy as np
import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.losses.infonce import MoCoV3Loss
from tests.conformance import load


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_ctr_reproduces_moco_v3(tau: float) -> None:
    ref = load("moco_v3")
    loss = MoCoV3Loss(temperature=tau)(
        torch.from_numpy(ref["q_raw"]), torch.from_numpy(ref["k_raw"])
    )
    expected = float(ref[f"loss_T{tau}"])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ctr_against_hand_computation_with_two_tau_factor() -> None:
    # q = [[1, 0], [0, 1]], k = [[1, 0], [1, 1]] (k2 normalised to [1,1]/√2), τ = 0.25 (so 2τ ≠ 1).
    q = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # norms must not matter
    k = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    tau = 0.25
    s = 1 / math.sqrt(2)
    # row 0: logits [1, s]/τ, target 0 ; row 1: logits [0, s]/τ, target 1
    ce0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(s / tau)))
    ce1 = -math.log(math.exp(s / tau) / (math.exp(0.0) + math.exp(s / tau)))
    expected = (ce0 + ce1) / 2 * 2 * tau
    got = MoCoV3Loss(temperature=tau)(q, k).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # without the 2τ factor the value would differ: make sure the test could fail
    assert got != pytest.approx((ce0 + ce1) / 2, rel=1e-3)


def test_symmetric_is_sum_of_both_directions() -> None:
    g = torch.Generator().manual_seed(0)
    q1, q2, k1, k2 = (torch.randn(5, 7, generator=g) for _ in range(4))
    f = MoCoV3Loss(0.2)
    assert f.symmetric(q1, q2, k1, k2).item() == pytest.approx((f(q1, k2) + f(q2, k1)).item())


def test_bad_temperature() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        MoCoV3Loss(temperature=0.0)


def test_momentum_schedule_reproduces_moco_v3() -> None:
    from rsfuse.training.schedules import cosine_momentum

    ref = load("moco_v3")
    got = [cosine_momentum(e, 100, 0.99) for e in ref["momentum_epochs"]]
    np.testing.assert_allclose(got, ref["momentum_values"], atol=1e-7, rtol=1e-5)
