"""DINOLoss and the teacher-temperature schedule against the DINO code's vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsfuse.errors import ConfigError
from rsfuse.losses.dino import DINOLoss, teacher_temp_schedule
from tests.conformance import load


def test_teacher_temp_schedule_reproduces_dino() -> None:
    ref = load("dino")
    got = teacher_temp_schedule(0.04, 0.07, 10, 20)
    np.testing.assert_allclose(got, ref["teacher_temp_schedule"], atol=1e-12)
    assert got[9] == pytest.approx(0.07) and got[0] == pytest.approx(0.04)  # endpoints included


def test_three_sequential_calls_reproduce_dino_losses_and_centres() -> None:
    ref = load("dino")
    loss_fn = DINOLoss(32, ncrops=4, warmup_teacher_temp=0.04, teacher_temp=0.07,
                       warmup_teacher_temp_epochs=10, nepochs=20, student_temp=0.1,
                       center_momentum=0.9)  # fmt: skip
    s = torch.from_numpy(ref["student_output"])
    t = torch.from_numpy(ref["teacher_output"])
    assert torch.equal(loss_fn.center, torch.zeros(1, 32))
    for i, epoch in enumerate(ref["epochs"]):
        loss = loss_fn(s, t, int(epoch))
        assert loss.item() == pytest.approx(float(ref["losses_sequential"][i]), rel=1e-5)
        np.testing.assert_allclose(loss_fn.center[0].numpy(), ref["centers_after"][i], atol=1e-5)


def test_loss_by_hand_skips_same_view_pairs_and_centre_comes_after() -> None:
    # 3 crops (2 global + 1 local), batch 1, K = 2; centre starts at c0 = [0.5, 0].
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
    f = DINOLoss(2, ncrops=3, teacher_temp=0.5, warmup_teacher_temp=0.5, student_temp=1.0,
                 center_momentum=0.75)  # fmt: skip
    f.center.copy_(torch.tensor([[0.5, 0.0]]))

    def softmax(v: list[float]) -> list[float]:
        e = [math.exp(x) for x in v]
        return [x / sum(e) for x in e]

    def ce(p: list[float], logits: list[float]) -> float:
        q = softmax(logits)
        return -sum(pi * math.log(qi) for pi, qi in zip(p, q))

    p0 = softmax([(1.0 - 0.5) / 0.5, 0.0])  # teacher global 0, centred
    p1 = softmax([(1.0 - 0.5) / 0.5, (2.0 - 0.0) / 0.5])  # teacher global 1
    crops = [[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]
    pairs = [(p0, crops[1]), (p0, crops[2]), (p1, crops[0]), (p1, crops[2])]  # no (i, i)
    expected = sum(ce(p, c) for p, c in pairs) / 4
    assert f(s, t, epoch=0).item() == pytest.approx(expected, rel=1e-6)
    # a loss that also counted same-view pairs would differ
    with_self = (expected * 4 + ce(p0, crops[0]) + ce(p1, crops[1])) / 6
    assert expected != pytest.approx(with_self, rel=1e-3)
    # centre after the loss: 0.75 · c0 + 0.25 · mean(t) = 0.75 · [0.5, 0] + 0.25 · [1, 1]
    torch.testing.assert_close(f.center, torch.tensor([[0.625, 0.25]]))


def test_gradient_reaches_student_only() -> None:
    s = torch.randn(8, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    DINOLoss(5, ncrops=4)(s, t, 0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_temperature_after_schedule_and_errors() -> None:
    f = DINOLoss(4, ncrops=2, warmup_teacher_temp=0.02, teacher_temp=0.06,
                 warmup_teacher_temp_epochs=3, nepochs=5)  # fmt: skip
    assert f.teacher_temp(0) == pytest.approx(0.02)
    assert f.teacher_temp(1) == pytest.approx(0.04)
    assert f.teacher_temp(99) == pytest.approx(0.06)
    with pytest.raises(ConfigError):
        teacher_temp_schedule(0.04, 0.07, 30, 20)
    with pytest.raises(ConfigError):
        DINOLoss(4, ncrops=2, student_temp=0.0)
    with pytest.raises(ConfigError):
        DINOLoss(4, ncrops=4)(torch.randn(10, 4), torch.randn(4, 4), 0)
