"""Helpers shared by the published-weights tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsfuse.models.checkpoints import check_encoder_bands, load_encoder
from rsfuse.models.encoders import create_encoder


def permute_input(x: Tensor, source: tuple[str, ...], target: list[str]) -> Tensor:
    """``x`` in the source channel order → the same bands in ``target`` order."""
    return x[:, [source.index(b) for b in target]]


def encoder_json(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text())


def load_as_classification_encoder(path: Path) -> nn.Module:
    """Build and load an imported encoder the way the classification task does
    (``create_encoder(backbone, in_chans, backbone_kwargs)`` + ``load_encoder``), from
    the usage the JSON records."""
    meta = encoder_json(path)
    usage = meta["usage"]["classification"]
    enc = create_encoder(usage["backbone"], len(meta["bands"]), usage["backbone_kwargs"])
    check_encoder_bands(path, meta["bands"])
    load_encoder(enc, path)
    return enc.eval()


def assert_same(a: Tensor, b: Tensor, atol: float = 1e-5) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=atol, rtol=1e-5), f"max abs difference {err}"
