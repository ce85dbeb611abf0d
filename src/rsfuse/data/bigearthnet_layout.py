"""On-disk layout of BigEarthNet v1 and v2 (reBEN): the path conventions, in one place.

Both the readers (:mod:`rsfuse.data.bigearthnet`) and the synthetic writers
(:mod:`rsfuse.data.synthetic.bigearthnet`) build paths with these functions, so the two
cannot drift apart. The layouts are the published ones (see ``shared/REFERENCE.md``):

v1 (BigEarthNet-MM)::

    ROOT/BigEarthNet-v1.0/<s2_name>/<s2_name>_B01.tif … _B12.tif, _B8A.tif
    ROOT/BigEarthNet-v1.0/<s2_name>/<s2_name>_labels_metadata.json      (labels: 43 names)
    ROOT/BigEarthNet-S1-v1.0/<s1_name>/<s1_name>_VV.tif, _VH.tif
    ROOT/BigEarthNet-S1-v1.0/<s1_name>/<s1_name>_labels_metadata.json   (corresponding_s2_patch)
    ROOT/train.csv, val.csv, test.csv       ("s2_name,s1_name" per line, no header;
                                             TorchGeo's bigearthnet-{split}.csv also accepted)
    ROOT/patches_with_seasonal_snow.csv, patches_with_cloud_and_shadow.csv   (one s2 name/line)

v2 (reBEN)::

    ROOT/metadata.parquet   (patch_id, labels, split, country, s1_name, s2v1_name,
                             contains_seasonal_snow, contains_cloud_or_shadow)
    ROOT/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_Bxx.tif     tile = patch_id minus "_r_c"
    ROOT/BigEarthNet-S1/<product>/<s1_name>/<s1_name>_VV.tif      product = s1_name minus
                                                                  "_TILE_r_c"
    ROOT/Reference_Maps/<tile>/<patch_id>/<patch_id>_reference_map.tif
"""

from __future__ import annotations

from pathlib import Path

#: Patch size on the 10 m grid (pixels); a band of resolution r m is 120*10/r pixels wide.
PATCH_SIZE_10M = 120
#: Stored dtypes of the published band files (v1 and v2): S2 reflectance x 10000 as uint16,
#: S1 backscatter in dB as float32. Anything else is refused by the readers.
S2_DTYPES: tuple[str, ...] = ("uint16",)
S1_DTYPES: tuple[str, ...] = ("float32",)

V1_S2_DIR = "BigEarthNet-v1.0"
V1_S1_DIR = "BigEarthNet-S1-v1.0"
V1_SPLIT_FILES = {
    "train": ("train.csv", "bigearthnet-train.csv"),
    "val": ("val.csv", "bigearthnet-val.csv"),
    "test": ("test.csv", "bigearthnet-test.csv"),
}
V1_SNOW_FILE = "patches_with_seasonal_snow.csv"
V1_CLOUD_FILE = "patches_with_cloud_and_shadow.csv"

V2_METADATA = "metadata.parquet"
V2_S2_DIR = "BigEarthNet-S2"
V2_S1_DIR = "BigEarthNet-S1"
V2_MAPS_DIR = "Reference_Maps"
#: rsfuse split names → the values in v2's ``split`` column.
V2_SPLIT_VALUES = {"train": "train", "val": "validation", "test": "test"}


def native_size(resolution: int, patch_size_10m: int = PATCH_SIZE_10M) -> int:
    """Pixels per side of a band with ``resolution`` metres for a patch of the given 10 m size."""
    return patch_size_10m * 10 // resolution


def v1_s2_band(root: Path, s2_name: str, band: str) -> Path:
    return Path(root) / V1_S2_DIR / s2_name / f"{s2_name}_{band}.tif"


def v1_s2_metadata(root: Path, s2_name: str) -> Path:
    return Path(root) / V1_S2_DIR / s2_name / f"{s2_name}_labels_metadata.json"


def v1_s1_band(root: Path, s1_name: str, band: str) -> Path:
    return Path(root) / V1_S1_DIR / s1_name / f"{s1_name}_{band}.tif"


def v1_s1_metadata(root: Path, s1_name: str) -> Path:
    return Path(root) / V1_S1_DIR / s1_name / f"{s1_name}_labels_metadata.json"


def v2_s2_tile(patch_id: str) -> str:
    return "_".join(patch_id.split("_")[:-2])


def v2_s1_product(s1_name: str) -> str:
    return "_".join(s1_name.split("_")[:-3])


def v2_s2_band(root: Path, patch_id: str, band: str) -> Path:
    return Path(root) / V2_S2_DIR / v2_s2_tile(patch_id) / patch_id / f"{patch_id}_{band}.tif"


def v2_s1_band(root: Path, s1_name: str, band: str) -> Path:
    return Path(root) / V2_S1_DIR / v2_s1_product(s1_name) / s1_name / f"{s1_name}_{band}.tif"


def v2_reference_map(root: Path, patch_id: str) -> Path:
    return (
        Path(root) / V2_MAPS_DIR / v2_s2_tile(patch_id) / patch_id / f"{patch_id}_reference_map.tif"
    )
