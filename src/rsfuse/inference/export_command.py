"""``rsfuse export``: a task checkpoint → a model bundle, or its encoders for timm / TorchGeo.

The bundle format is :mod:`rsfuse.inference.bundle`; the timm and TorchGeo formats are
:mod:`rsfuse.weights.exporters`. This module only reads the command line and dispatches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rsfuse.data.transforms import NORMALIZE_MODES
from rsfuse.inference.bundle import export_bundle, read_bundle_config


def main(argv: Sequence[str]) -> None:
    """``rsfuse export``."""
    p = argparse.ArgumentParser(
        prog="rsfuse export",
        description=(
            "Write a self-describing model bundle (model.safetensors + bundle.json: "
            "architecture, task, class names, bands in channel order, normalisation "
            "statistics, patch size) from a Lightning checkpoint of a classification or "
            "segmentation task. `rsfuse predict --bundle DIR` and rsfuse.load_bundle(DIR) "
            "use it with no config file."
        ),
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        help="Lightning .ckpt of the trained task (with --format timm|torchgeo also a bundle "
        "folder or an rsfuse encoder .safetensors)",
    )
    p.add_argument("--out", required=True, type=Path, help="bundle (or export) folder to write")
    p.add_argument(
        "--format",
        choices=("bundle", "timm", "torchgeo"),
        default="bundle",
        help="bundle (default); timm: each encoder as NAME.safetensors that timm.create_model("
        "..., pretrained_cfg_overlay=dict(file=...)) loads; torchgeo: NAME.ckpt for TorchGeo "
        "trainers' weights= and NAME.pth; band order and normalisation in NAME.json "
        "(rsfuse.weights.exporters, docs/weights.md)",
    )
    p.add_argument(
        "--channel-order",
        help="--format timm|torchgeo: rsfuse (default), torchgeo-bigearthnet (VH,VV,B01...) "
        "or a comma-separated band list; the first layer is permuted to match",
    )
    p.add_argument(
        "--stats",
        help="statistics name in rsfuse.bands, only for checkpoints that do not record "
        "their normalisation (rsfuse datamodules record it)",
    )
    p.add_argument("--normalization", choices=NORMALIZE_MODES, help="with --stats")
    p.add_argument("--patch-size", type=int, help="training patch size, if not recorded")
    a = p.parse_args(list(argv))
    if a.format != "bundle":
        from rsfuse.weights.exporters import export_encoders

        kw = {"stats": a.stats, "normalization": a.normalization, "patch_size": a.patch_size}
        written = export_encoders(
            a.checkpoint, a.out, a.format, channel_order=a.channel_order, **kw
        )
        for path in written:
            print(f"wrote {path} + {path.with_suffix('.json').name} ({a.format})")
        return
    out = export_bundle(
        a.checkpoint, a.out, stats=a.stats, normalization=a.normalization, patch_size=a.patch_size
    )
    cfg = read_bundle_config(out)
    print(
        f"wrote {cfg['task']} bundle {out} ({len(cfg['class_names'])} classes, "
        f"modalities {'+'.join(cfg['modalities'])}, patch {cfg['patch_size']} px)"
    )
