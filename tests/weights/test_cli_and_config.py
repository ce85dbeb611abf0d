"""``rsfuse weights`` on the command line and the fine-tune config that starts from an
imported checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from rsfuse.cli import main, run
from rsfuse.errors import ConfigError
from tests.weights import fakes
from tests.weights.helpers import assert_same

REPO = Path(__file__).resolve().parents[2]
CONFIG = (
    REPO
    / "src"
    / "rsfuse"
    / "configs"
    / "segmentation"
    / "from_published"
    / "dfc2020_pspnet_cromss_midf.yaml"
)
TINY = REPO / "src" / "rsfuse" / "configs" / "segmentation" / "overrides" / "tiny_cpu.yaml"


def test_help_lists_the_weights_command(capsys: pytest.CaptureFixture) -> None:
    run(["--help"])
    assert "\n  weights" in capsys.readouterr().out
    run(["weights", "--help"])
    out = capsys.readouterr().out
    assert "import" in out and "sources" in out
    with pytest.raises(SystemExit):
        run(["weights", "import", "--help"])
    assert "--adapt" in capsys.readouterr().out


def test_sources_name_every_publisher(capsys: pytest.CaptureFixture) -> None:
    run(["weights", "sources"])
    out = capsys.readouterr().out
    for name in ("ssl4eo-moco", "ssl4eo-dino", "ssl4eo-mae", "ssl4eo-data2vec", "dino-mm"):
        assert f"{name}:" in out
    assert "cromss:" in out and "torchgeo:" in out
    assert "resnet50_sentinel2_all_moco" in out
    assert "MGSViT" in out


def test_import_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = fakes.save(fakes.dino_vit(14, patch=8).ckpt, tmp_path / "B14_vits8_dinomm_ep99.pth")
    run(["weights", "import", str(src), "--out", str(tmp_path / "enc")])
    out = capsys.readouterr().out
    assert "dino-mm" in out and "VV,VH" in out
    meta = json.loads((tmp_path / "enc.json").read_text())
    assert meta["bands"][-2:] == ["VV", "VH"]
    run([
        "weights", "import", str(src), "--out", str(tmp_path / "enc2"),
        "--bands", "B02,B03,B04,B08,VV,VH", "--adapt",
    ])  # fmt: skip
    meta2 = json.loads((tmp_path / "enc2.json").read_text())
    assert meta2["bands"] == ["B02", "B03", "B04", "B08", "VV", "VH"]
    assert meta2["channel_mapping"]["exact"] is False


def test_command_line_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="weights frob"):
        run(["weights", "frob"])
    src = fakes.save(fakes.mae_vit(13).ckpt, tmp_path / "mae.pth")
    with pytest.raises(SystemExit) as e:
        main(["weights", "import", str(src), "--out", str(tmp_path / "e"), "--bands", "B02,B03"])
    assert e.value.code == 1
    assert "adapt" in capsys.readouterr().err


def test_export_formats_on_the_command_line(tmp_path: Path) -> None:
    fake = fakes.mae_vit(13)
    src = fakes.save(fake.ckpt, tmp_path / "mae.pth")
    run(["weights", "import", str(src), "--out", str(tmp_path / "mae")])
    run(
        [
            "export",
            str(tmp_path / "mae.safetensors"),
            "--format",
            "torchgeo",
            "--out",
            str(tmp_path / "tg"),
        ]
    )
    assert {p.name for p in (tmp_path / "tg").iterdir()} == {"mae.ckpt", "mae.pth", "mae.json"}


def test_finetune_config_starts_from_the_imported_encoder(
    tmp_path: Path, dfc2020_root: Path
) -> None:
    """The config's one key (``model.init_args.encoder_checkpoint``) loads the imported
    CromSS S2 encoder into the PSPNet (checked weight by weight), and the config trains."""
    from rsfuse.tasks.segmentation import SegmentationTask

    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["model"]["init_args"]["encoder_checkpoint"].startswith("pretrained/")
    ckpt, branches = fakes.cromss("middle", full="resnet18")  # the CPU override's ResNet-18
    src = fakes.save(ckpt, tmp_path / "weights-cromss-13B-midFusion-epoch=199.ckpt")
    run(["weights", "import", str(src), "--out", str(tmp_path / "pretrained" / "cromss")])
    enc = tmp_path / "pretrained" / "cromss_s2.safetensors"
    init = {**cfg["model"]["init_args"], **yaml.safe_load(TINY.read_text())["model"]["init_args"]}
    init["encoder_checkpoint"] = str(enc)
    task = SegmentationTask(**init).eval()
    source = branches["s2"].encoder.state_dict()
    for k, v in task.model.encoder.state_dict().items():
        assert torch.equal(v, source[k]), k
    x = torch.randn(2, 13, 64, 64)
    with torch.no_grad():  # the override's depth-3 encoder: the first 3 stages
        assert_same(task.model.encoder(x)[-1], branches["s2"].encoder(x)[3])
    run(
        [
            "fit", "--config", str(CONFIG), "--config", str(TINY),
            f"--model.init_args.encoder_checkpoint={enc}",
            f"--data.init_args.root={dfc2020_root}", "--data.init_args.patch_size=32",
            "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}",
        ]
    )  # fmt: skip
