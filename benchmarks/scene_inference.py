"""Whole-scene inference benchmark; see :mod:`rsfuse.benchmarks.scene_inference` (``--help``)."""

import sys

from rsfuse.benchmarks.scene_inference import main

if __name__ == "__main__":
    main(sys.argv[1:])
