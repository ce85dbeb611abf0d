"""SSL4EO-S12 and TorchGeo checkpoints → rsfuse encoders give the source model's outputs.

Each case builds a checkpoint in the file's real layout (tests/weights/fakes.py), imports it
with ``import_weights`` (which writes ``ENC.safetensors`` + ``ENC.json``), loads the file
the way the classification task does, and compares features on the same input. A wrong
prefix, a kept head, a swapped key or channel, or a wrong head count changes the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rsfuse import bands
from rsfuse.data.transforms import Normalize
from rsfuse.errors import CheckpointError, ConfigError
from rsfuse.weights import import_weights
from rsfuse.weights.checkpoint_io import sha256_of
from tests.weights import fakes
from tests.weights.helpers import (
    assert_same,
    encoder_json,
    load_as_classification_encoder,
    permute_input,
)

L1C, L2A, S1 = bands.S2_L1C_ORDER, bands.S2_L2A_ORDER, bands.S1_ORDER

#: (builder, in_chans, file name as published, source, recipe)
CASES: dict[str, tuple[Callable[..., fakes.Fake], int, str, str, str]] = {
    "moco-v3-vits16-s2c": (
        fakes.moco_v3_vit,
        13,
        "B13_vits16_moco_0099_ckpt.pth",
        "ssl4eo-moco",
        "divide-10000",
    ),
    "moco-v3-vits16-s2a": (
        fakes.moco_v3_vit,
        12,
        "B12_vits16_moco_0099_ckpt.pth",
        "ssl4eo-moco",
        "divide-10000",
    ),
    "moco-v2-rn50-s2c": (
        fakes.moco_v2_resnet,
        13,
        "B13_rn50_moco_0099_ckpt.pth",
        "ssl4eo-moco",
        "divide-10000",
    ),
    "moco-v2-rn50-s1": (
        fakes.moco_v2_resnet,
        2,
        "B2_rn50_moco_0099_ckpt.pth",
        "ssl4eo-moco",
        "ssl4eo-window",
    ),
    "dino-vits16-s2c": (
        fakes.dino_vit,
        13,
        "B13_vits16_dino_0099_ckpt.pth",
        "ssl4eo-dino",
        "divide-10000",
    ),
    "dino-rn50-s2c": (
        fakes.dino_resnet,
        13,
        "B13_rn50_dino_0099_ckpt.pth",
        "ssl4eo-dino",
        "divide-10000",
    ),
    "mae-vits16-s2c": (fakes.mae_vit, 13, "B13_vits16_mae_ep99.pth", "ssl4eo-mae", "divide-10000"),
    "mae-vits16-s1": (fakes.mae_vit, 2, "B2_vits16_mae_ep99.pth", "ssl4eo-mae", "ssl4eo-window"),
    "data2vec-vits16-s2c": (
        fakes.data2vec_beit,
        13,
        "B13_vits16_data2vec_0099_ckpt.pth",
        "ssl4eo-data2vec",
        "divide-10000",
    ),
    "moco-v3-vits16-rgb": (
        fakes.moco_v3_vit,
        3,
        "B3_vits16_moco_ckpt.pth",
        "ssl4eo-moco",
        "divide-10000",
    ),
}
KIND_BANDS = {13: L1C, 12: L2A, 2: S1, 3: ("B04", "B03", "B02")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_published_checkpoint_imports_with_equal_outputs(case: str, tmp_path: Path) -> None:
    build, c, name, source, recipe = CASES[case]
    fake = build(in_chans=c)
    src = fakes.save(fake.ckpt, tmp_path / name)
    [path] = import_weights(src, tmp_path / "enc")
    meta = encoder_json(path)
    assert meta["source"]["name"] == source
    assert meta["source"]["sha256"] == sha256_of(src)
    assert meta["normalization_recipe"] == recipe
    published = KIND_BANDS[c]
    assert meta["channel_mapping"]["source_channels"] == list(published)
    assert meta["bands"] == list(published)  # rsfuse order = the published order here
    enc = load_as_classification_encoder(path)
    x = torch.randn(2, c, fakes.IMG, fakes.IMG)
    with torch.no_grad():
        assert_same(enc(permute_input(x, published, meta["bands"])), fake.features(x))
    Normalize.from_description(meta["normalization"])  # a valid rsfuse normalisation


def test_recorded_normalisations_are_the_authors(tmp_path: Path) -> None:
    """S2: x / 10000; S1: the +-2 sigma window of the SSL4EO-S12 50k statistics."""
    s2 = fakes.save(fakes.moco_v3_vit(13).ckpt, tmp_path / "s2.pth")
    s1 = fakes.save(fakes.mae_vit(2).ckpt, tmp_path / "s1.pth")
    [p2] = import_weights(s2, tmp_path / "s2enc")
    [p1] = import_weights(s1, tmp_path / "s1enc")
    n2 = Normalize.from_description(encoder_json(p2)["normalization"])
    x = torch.full((1, 13, 2, 2), 2500.0)
    assert torch.allclose(n2({"s2": x})["s2"], torch.full_like(x, 0.25))
    n1 = Normalize.from_description(encoder_json(p1)["normalization"])
    vv_mean, vv_std = -12.54847273, 5.25697717  # SSL4EO-S12 S1_MEAN / S1_STD (VV)
    s1x = torch.tensor([vv_mean + vv_std, -20.19237134]).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    out = n1({"s1": s1x.clone()})["s1"]
    assert torch.allclose(out[0, 0], torch.full((3, 3), 0.75), atol=1e-6)  # (mu+s - (mu-2s))/4s
    assert torch.allclose(out[0, 1], torch.full((3, 3), 0.5), atol=1e-6)


def test_dropped_parts_are_named(tmp_path: Path) -> None:
    src = fakes.save(fakes.moco_v2_resnet(13).ckpt, tmp_path / "moco.pth")
    [path] = import_weights(src, tmp_path / "enc")
    dropped = " ".join(encoder_json(path)["source"]["dropped"])
    for part in ("module.encoder_k.", "module.queue", "fc."):
        assert part in dropped


def test_ssl4eo_backbone_file_under_state_dict(tmp_path: Path) -> None:
    """``convert_model_torchvision.py`` writes ``{'state_dict': torchvision keys}``."""
    m = fakes.torchvision_resnet(13)
    state = {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}
    src = fakes.save({"state_dict": state}, tmp_path / "B13_rn50_moco_0099.pth")
    with pytest.raises(ConfigError, match="--source"):
        import_weights(src, tmp_path / "enc")  # a plain state dict does not name its source
    [path] = import_weights(src, tmp_path / "enc", source="ssl4eo-backbone")
    x = torch.randn(2, 13, 64, 64)
    with torch.no_grad():
        assert_same(load_as_classification_encoder(path)(x), fakes.resnet_features(m)(x))


@pytest.mark.parametrize(
    ("file", "kind"),
    [
        ("resnet50_sentinel2_all_moco-df8b932e.pth", "resnet"),
        ("resnet50_sentinel1_all_moco-906e4356.pth", "resnet"),
        ("vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth", "vit"),
        ("B13_vits16_mae_ep99_enc.pth", "vit-no-norm"),
    ],
)
def test_torchgeo_files_import_by_name(file: str, kind: str, tmp_path: Path) -> None:
    c = 2 if "sentinel1" in file else 13
    if kind == "resnet":
        model = fakes.timm_resnet(c)
        state = fakes.timm_state_dict(model)
    else:
        model = fakes.vit(c)
        state = fakes.timm_state_dict(model)
    if kind == "vit-no-norm":  # TorchGeo's loader tolerates a missing final norm
        state = {k: v for k, v in state.items() if not k.startswith("norm.")}
        with torch.no_grad():
            model.norm.weight.fill_(1.0)
            model.norm.bias.zero_()
    src = fakes.save(state, tmp_path / file)
    [path] = import_weights(src, tmp_path / "enc")
    meta = encoder_json(path)
    assert meta["source"]["name"] == "torchgeo"
    assert meta["source"]["torchgeo_weights"].endswith(
        {"resnet50_sentinel2_all_moco-df8b932e.pth": "SENTINEL2_ALL_MOCO"}.get(file, "")
    )
    assert meta["bands"] == list(L1C if c == 13 else S1)
    if kind == "vit-no-norm":
        assert meta["source"]["filled_with_initial_values"] == ["norm.bias", "norm.weight"]
    x = torch.randn(2, c, 32, 32)
    with torch.no_grad():
        assert_same(load_as_classification_encoder(path)(x), model(x))


def test_wrong_head_count_would_change_outputs(tmp_path: Path) -> None:
    """The head count is not in the weights: importing with another one gives other
    features, so the equality tests above do check it."""
    fake = fakes.dino_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "dino.pth")
    [path] = import_weights(src, tmp_path / "enc", num_heads=3)
    x = torch.randn(2, 13, 32, 32)
    with torch.no_grad():
        diff = (load_as_classification_encoder(path)(x) - fake.features(x)).abs().max()
    assert diff > 1e-3


def test_position_embedding_resampled_for_another_size(tmp_path: Path) -> None:
    fake = fakes.mae_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "mae.pth")
    [path] = import_weights(src, tmp_path / "enc", img_size=64)
    meta = encoder_json(path)
    assert meta["kwargs"]["img_size"] == 64
    enc = load_as_classification_encoder(path)
    assert enc(torch.randn(1, 13, 64, 64)).shape == (1, fakes.VIT_WIDTH)


def test_bad_inputs_raise_project_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        import_weights(garbage, tmp_path / "enc")
    with pytest.raises(CheckpointError, match="not found"):
        import_weights(tmp_path / "missing.pth", tmp_path / "enc")
    src = fakes.save(fakes.mae_vit(13).ckpt, tmp_path / "mae.pth")
    with pytest.raises(ConfigError, match="unknown source"):
        import_weights(src, tmp_path / "enc", source="nope")
    with pytest.raises(ConfigError, match="publishes"):
        import_weights(src, tmp_path / "enc", source="cromss")
    from safetensors.torch import save_file

    st = tmp_path / "vit.safetensors"
    save_file(fakes.timm_state_dict(fakes.vit(13)), str(st))
    with pytest.raises(ConfigError, match="overwrite the input"):
        import_weights(st, tmp_path / "vit", source="ssl4eo-backbone")
    broken = fakes.mae_vit(13).ckpt
    del broken["model"]["blocks.1.attn.qkv.weight"]
    src2 = fakes.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.qkv\.weight"):
        import_weights(src2, tmp_path / "enc2")
