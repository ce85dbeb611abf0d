#!/usr/bin/env bash
# Fetch, on this (internet-connected) machine, the wheels rsfuse needs on the GPU machine of
# the `device` tool, whose image has PyTorch, Lightning, timm, torchmetrics, pandas, pyarrow,
# scipy, matplotlib, safetensors, fsspec and tqdm but not the packages below. They land in
# .whl/ (ignored by git; about 40 MB) and travel with `carry: [".whl"]`;
# benchmarks/gpu_train_check.sh installs them there. Versions as requirements/ci.txt pins.
#
#   bash benchmarks/gpu_wheels.sh        # then: device run, carry [".whl"],
#                                        #       command "bash benchmarks/gpu_train_check.sh"
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
mkdir -p .whl
PKGS=(
  jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.14.0
  kornia==0.9.0 kornia_rs==0.2.0
  segmentation_models_pytorch==0.6.0
  rasterio==1.4.4 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  lmdb==3.0.0
)
plat=()
for n in 28 27 17; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${plat[@]}" -d .whl "${PKGS[@]}"
du -sh .whl
