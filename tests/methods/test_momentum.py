import pytest
import torch
from torch import nn

from rsfuse.errors import ConfigError
from rsfuse.models.momentum import ema_update, momentum_copy
from rsfuse.training.schedules import cosine_momentum


def test_ema_moves_key_by_one_minus_m_toward_query() -> None:
    torch.manual_seed(0)
    q = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    k = momentum_copy(q)
    with torch.no_grad():
        for p in q.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in k.parameters()]
    m = 0.9
    ema_update(k, q, m)
    for kb, ka, qp in zip(before, k.parameters(), q.parameters()):
        torch.testing.assert_close(ka - kb, (1 - m) * (qp - kb))


def test_momentum_copy_never_gets_gradients() -> None:
    q = nn.Linear(4, 3)
    k = momentum_copy(q)
    assert all(not p.requires_grad for p in k.parameters())
    out = k(torch.randn(2, 4)).sum() + q(torch.randn(2, 4)).sum()
    out.backward()
    assert all(p.grad is None for p in k.parameters())
    assert all(p.grad is not None for p in q.parameters())


def test_cosine_momentum_ends() -> None:
    assert cosine_momentum(0, 10, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(10, 10, 0.99) == pytest.approx(1.0)
    assert cosine_momentum(20, 10, 0.99) == pytest.approx(1.0)  # clipped
    assert cosine_momentum(5, 10, 0.996) == pytest.approx(0.998)
    with pytest.raises(ConfigError):
        cosine_momentum(0, 10, 1.5)
