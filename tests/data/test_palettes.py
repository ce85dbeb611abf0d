"""One colour per class, the same in every picture and raster rsfuse writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from rsfuse.data.classes import BEN19, BEN43, DFC2020, DFC2020_10, DW9, OSM13
from rsfuse.data.palettes import (
    FALLBACK_COLOURS,
    IGNORE_COLOUR,
    PALETTES,
    PATH_COLOURS,
    class_colours,
    colour_table,
    colourise,
    hex_to_rgb,
    palette_for,
)
from rsfuse.inference.outputs import PATH_CODES, PATH_COLORS, class_colormap


def _lab(colours: list[str]) -> np.ndarray:
    """CIE L*a*b* of ``#rrggbb`` colours (kornia's sRGB → Lab)."""
    import kornia

    rgb = torch.tensor([to_rgb(c) for c in colours], dtype=torch.float32).T[:, :, None]
    return kornia.color.rgb_to_lab(rgb)[..., 0].T.numpy()


def _rgb255(colour: str) -> tuple[int, int, int]:
    return tuple(round(255 * v) for v in hex_to_rgb(colour))  # type: ignore[return-value]


def test_every_nomenclature_has_one_colour_per_class_from_its_published_palette():
    assert PALETTES["dw"].classes == DW9
    assert PALETTES["dfc2020"].classes == DFC2020_10
    assert PALETTES["osm13"].classes == OSM13
    assert PALETTES["ben19"].classes == BEN19
    assert PALETTES["clc43"].classes == BEN43
    # published values, spot-checked: Dynamic World water / built, DFC2020 (SEN12MS
    # baseline) croplands / water, CLC continuous urban fabric / sea and ocean
    assert PALETTES["dw"].colour("Water") == "#419bdf"
    assert PALETTES["dw"].colour("Built area") == "#c4281b"
    assert PALETTES["dfc2020"].colour("Croplands") == "#c24f44"
    assert PALETTES["dfc2020"].colour("Water") == "#1c0dff"
    assert PALETTES["clc43"].colour("Continuous urban fabric") == "#e6004d"
    assert PALETTES["clc43"].colour("Sea and ocean") == "#e6f2ff"
    # BigEarthNet 19 takes the CLC colour of one of its level-3 classes
    assert PALETTES["ben19"].colour("Marine waters") == PALETTES["clc43"].colour("Sea and ocean")
    assert PALETTES["ben19"].colour("Inland waters") == PALETTES["clc43"].colour("Water bodies")
    # OSM water is blue (Dynamic World's water), never red
    r, g, b = hex_to_rgb(PALETTES["osm13"].colour("Water"))
    assert b > r and b > g


def test_names_select_their_nomenclature_even_for_shared_names():
    assert palette_for(DFC2020).name == "dfc2020"  # the 8 training classes keep their colours
    assert palette_for(DW9).name == "dw"
    assert palette_for(OSM13).name == "osm13"
    assert palette_for(BEN19).name == "ben19"
    # "Water" is in DW, OSM and DFC2020: its colour follows the nomenclature of the list
    assert class_colours(DW9)[DW9.index("Water")] == "#419bdf"
    assert class_colours(DFC2020)[DFC2020.index("Water")] == "#1c0dff"
    assert class_colours(OSM13)[OSM13.index("Water")] == "#419bdf"
    # the 8-class subset and the 10 stored classes agree class by class
    for n in DFC2020:
        assert (
            class_colours(DFC2020)[DFC2020.index(n)]
            == class_colours(DFC2020_10)[DFC2020_10.index(n)]
        )
    assert class_colours(["class_0", "class_1"]) == list(FALLBACK_COLOURS[:2])


def test_path_colours_are_used_by_no_class_and_differ_from_each_other():
    classes = [c for p in PALETTES.values() for c in p.colours] + list(FALLBACK_COLOURS)
    classes.append(IGNORE_COLOUR)
    paths = list(PATH_COLOURS.values())
    d = np.linalg.norm(_lab(paths)[:, None] - _lab(classes)[None], axis=-1)
    assert d.min() >= 25.0, d.min()  # CIE76 ΔE: clearly different colours
    dp = np.linalg.norm(_lab(paths)[:, None] - _lab(paths)[None], axis=-1)
    assert dp[~np.eye(len(paths), dtype=bool)].min() >= 40.0
    # the path COG's colour table is the same table
    for name, code in PATH_CODES.items():
        if name != "nodata":
            assert PATH_COLORS[code][:3] == _rgb255(PATH_COLOURS[name])
    assert PATH_COLORS[0][3] == 0


def test_colour_table_and_colourise_use_the_palette():
    table = class_colormap(DFC2020)
    for i, n in enumerate(DFC2020):
        assert table[i] == (*_rgb255(PALETTES["dfc2020"].colour(n)), 255)
    assert table[255] == (0, 0, 0, 0)
    assert colour_table(DW9) == class_colormap(DW9)
    mask = np.array([[0, 1], [7, 255]])
    rgb = colourise(mask, DFC2020)
    assert tuple(rgb[0, 0]) == hex_to_rgb("#009900")
    assert tuple(rgb[1, 0]) == hex_to_rgb("#1c0dff")
    assert tuple(rgb[1, 1]) == (1.0, 1.0, 1.0)


def _has_colour(png: Path, colour: str, tol: int = 1) -> bool:
    img = imread(str(png))[..., :3]
    img = (img * 255).round().astype(int) if img.dtype != np.uint8 else img.astype(int)
    return bool((np.abs(img - np.array(_rgb255(colour))).max(axis=-1) <= tol).any())


@pytest.fixture(scope="module")
def dfc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rsfuse.data.synthetic import synthesize

    return synthesize(
        "dfc2020", tmp_path_factory.mktemp("dfc"), n=2, seed=0, progress=False, patch_size=32
    )


def test_same_class_same_colour_in_dataset_plot_samples_png_cog_and_quicklook(
    dfc_root: Path, tmp_path: Path
):
    """Croplands and Water have the DFC2020 colours in every output."""
    from rsfuse.data.dfc2020 import DFC2020Dataset
    from rsfuse.inference import export_bundle
    from rsfuse.inference.predict import Options, predict_scene
    from rsfuse.plots.segmentation import plot_segmentation_samples
    from rsfuse.tasks.segmentation import SegmentationTask
    from tests.inference.conftest import fake_checkpoint, scene_arrays, write_raster

    expected = {n: PALETTES["dfc2020"].colour(n) for n in ("Croplands", "Water")}

    # 1. dataset.plot(): legend patches and mask pixels
    ds = DFC2020Dataset(dfc_root, split="test", patch_size=32)
    sample = dict(ds[0])
    mask = np.full((32, 32), DFC2020.index("Croplands"))
    mask[:, 16:] = DFC2020.index("Water")
    sample["mask"] = torch.from_numpy(mask)
    fig = ds.plot(sample)
    legend = {
        t.get_text(): h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)
    }
    for n, c in expected.items():
        assert tuple(legend[n].get_facecolor()[:3]) == pytest.approx(hex_to_rgb(c))
    fig.savefig(tmp_path / "plot.png", dpi=60)
    assert all(_has_colour(tmp_path / "plot.png", c) for c in expected.values())

    # 2. samples.png of the segmentation task
    png = plot_segmentation_samples(
        None, None, mask[None], mask[None], list(DFC2020), tmp_path / "samples.png"
    )
    assert all(_has_colour(png, c) for c in expected.values())

    # 3. + 4. rsfuse predict: the class map's colour table and the quick-look
    torch.manual_seed(0)
    task = SegmentationTask(
        modalities=["s2"], num_classes=8, class_names=list(DFC2020), architecture="unet",
        encoder="resnet18", decoder_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    ).eval()  # fmt: skip
    with torch.no_grad():  # predict Croplands left of centre, Water right of it
        task.model.segmentation_head[0].weight.zero_()
        task.model.segmentation_head[0].bias.copy_(torch.full((8,), -5.0))
        task.model.segmentation_head[0].bias[DFC2020.index("Croplands")] = 5.0
    bundle = export_bundle(fake_checkpoint(task, tmp_path / "t.ckpt", 32, "ssl4eo-s12-l1c"),
                           tmp_path / "bundle")  # fmt: skip
    from rsfuse import bands

    a = scene_arrays(64, 64)
    s2 = write_raster(tmp_path / "s2.tif", a["s2"], list(bands.S2_L1C_ORDER))
    report = predict_scene(
        bundle, tmp_path / "out" / "map.tif", s2=s2, clouds="none",
        options=Options(window=32, quicklook=True, progress=False),
    )  # fmt: skip
    with rasterio.open(report["outputs"]["main"]) as d:
        cmap = d.colormap(1)
    for n, c in expected.items():
        assert cmap[DFC2020.index(n)][:3] == _rgb255(c)
    assert _has_colour(Path(report["outputs"]["quicklook"]), expected["Croplands"])

    # 5. the synthetic scenes' reference rasters
    from rsfuse.data.synthetic.scene import write_scene

    root = write_scene(tmp_path / "scenes", n=1, size=64, progress=False, cloud_cover=0.0)
    with rasterio.open(root / "scene_000" / "reference_dfc2020.tif") as d:
        ref = d.colormap(1)
    with rasterio.open(root / "scene_000" / "reference_dw.tif") as d:
        ref_dw = d.colormap(1)
    for n, c in expected.items():
        assert ref[DFC2020.index(n)][:3] == _rgb255(c)
    assert ref_dw[DW9.index("Water")][:3] == _rgb255(PALETTES["dw"].colour("Water"))


def test_every_packaged_config_names_classes_of_a_nomenclature():
    """Config class names resolve to their dataset's palette (no silent fallback colours)."""
    from rsfuse.training.configs import config_root, list_configs, load_config

    checked = 0
    for name in list_configs():
        names = ((load_config(name).get("model") or {}).get("init_args") or {}).get("class_names")
        if names:
            assert palette_for(names) is not None, (name, config_root(), names)
            checked += 1
    assert checked >= 10
