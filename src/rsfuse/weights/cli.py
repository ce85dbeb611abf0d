"""``rsfuse weights``: import published pretrained weights, list the known sources."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from rsfuse.errors import ConfigError

USAGE = """\
usage: rsfuse weights <command> [options]

commands:
  import    published checkpoint -> rsfuse encoder (safetensors + JSON with bands in order,
            normalisation, source) or, for CromSS, a segmentation bundle:
            rsfuse weights import B13_vits16_moco.pth --out pretrained/moco_vits16_s2
  sources   list the publishers, file layouts, inputs and normalisations rsfuse knows

Each command explains itself with --help. See docs/weights.md.
"""


def _import(argv: Sequence[str]) -> None:
    from rsfuse.weights.importer import import_weights
    from rsfuse.weights.sources import INPUTS, SOURCES

    p = argparse.ArgumentParser(
        prog="rsfuse weights import",
        description=(
            "Import a published checkpoint (SSL4EO-S12 MoCo / DINO / MAE / data2vec full or "
            "backbone files, DINO-MM, CromSS, TorchGeo's re-hosted files) as an rsfuse encoder: "
            "ENC.safetensors + ENC.json with the input bands in the order the encoder is fed, "
            "the normalisation the weights expect and the source. The classification task "
            "loads it through model.init_args.encoder_checkpoints, the segmentation task "
            "through model.init_args.encoder_checkpoint. Nothing in the file is executed."
        ),
    )
    p.add_argument(
        "src", type=Path, help="the published file (.pth, .pth.tar, .ckpt, .safetensors)"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="encoder path ENC[.safetensors] (CromSS writes ENC_s1 and ENC_s2), or the bundle "
        "folder with --bundle",
    )
    p.add_argument(
        "--source",
        choices=sorted(SOURCES),
        help="publisher and method (default: recognised from the file name and structure)",
    )
    p.add_argument(
        "--input",
        dest="input_kind",
        choices=sorted(INPUTS),
        help="what the weights' input channels are (default: from the source and the "
        "channel count: 13 = S2 L1C, 12 = S2 L2A, 9 = S2 high-res (CromSS), 3 = S2 RGB, 2 = S1, "
        "14 = DINO-MM)",
    )
    p.add_argument(
        "--bands",
        help="comma-separated bands the rsfuse model will be fed, in order (default: the "
        "published bands in rsfuse order, S2 then VV, VH); a different set needs --adapt",
    )
    p.add_argument(
        "--adapt",
        action="store_true",
        help="allow --bands to differ from the published set: extra bands get zero weights "
        "(exact), missing bands are dropped (as if fed 0 after normalisation; not exact)",
    )
    p.add_argument(
        "--modality",
        choices=("s1", "s2"),
        help="multi-encoder sources (CromSS): import only this encoder",
    )
    p.add_argument("--img-size", type=int, help="ViTs: resample the position embedding")
    p.add_argument("--num-heads", type=int, help="ViTs: attention heads (default: standard)")
    p.add_argument(
        "--bundle",
        action="store_true",
        help="CromSS: write the whole U-Net (Dynamic World 9 classes) as a segmentation bundle "
        "for rsfuse predict (S2 unless --modality s1)",
    )
    p.add_argument("--patch-size", type=int, help="bundle patch size (default 256)")
    a = p.parse_args(list(argv))
    bands = [b for b in a.bands.split(",") if b.strip()] if a.bands else None
    written = import_weights(
        a.src,
        a.out,
        source=a.source,
        input_kind=a.input_kind,
        bands=bands,
        adapt=a.adapt,
        modalities=[a.modality] if a.modality else None,
        img_size=a.img_size,
        num_heads=a.num_heads,
        bundle=a.bundle,
        patch_size=a.patch_size,
    )
    for path in written:
        if a.bundle:
            cfg = json.loads((path / "bundle.json").read_text())
            print(f"wrote segmentation bundle {path} ({len(cfg['class_names'])} classes)")
            continue
        cfg = json.loads(path.with_suffix(".json").read_text())
        m = cfg["channel_mapping"]
        extra = "" if m["exact"] and not m["added_zero_weight"] else " (adapted, see JSON)"
        print(
            f"wrote {path} + {path.with_suffix('.json').name}: {cfg['model']} "
            f"({cfg['source']['name']}, {cfg['modality']}), bands {','.join(cfg['bands'])}{extra}, "
            f"normalisation {cfg['normalization_recipe']}"
        )


def _sources(argv: Sequence[str]) -> None:
    from rsfuse.weights.normalization import RECIPES
    from rsfuse.weights.sources import INPUTS, SOURCES, TORCHGEO_FILES

    p = argparse.ArgumentParser(
        prog="rsfuse weights sources",
        description="List the published weight sources rsfuse imports, with their inputs, "
        "normalisations and where each fact was read.",
    )
    p.parse_args(list(argv))
    for s in SOURCES.values():
        print(f"{s.name}: {s.title}")
        print(f"  paper: {s.paper}")
        print(f"  code:  {s.code}")
        print(f"  files: {s.files}")
        print(f"  layouts: {', '.join(s.layouts)}")
        for kind, rec in s.inputs.items():
            print(f"  input {kind}: {','.join(INPUTS[kind][1])}  normalisation {rec}")
        for n in s.notes:
            print(f"  note: {n}")
    print("\nnormalisations:")
    for r in RECIPES.values():
        print(f"  {r.name}: {r.note}")
    print("\nTorchGeo file names recognised:")
    for stem, (enum, kind) in TORCHGEO_FILES.items():
        print(f"  {stem}*  {enum}  ({kind})")
    print("\nMGSViT (wgd4510/MGSVit) publishes no weights.")


def main(argv: Sequence[str]) -> None:
    """``rsfuse weights``."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    if cmd == "import":
        _import(rest)
    elif cmd == "sources":
        _sources(rest)
    else:
        raise ConfigError(f"unknown command 'weights {cmd}'; expected import or sources")
