"""Synthetic-world realism and learnability; see :mod:`rsfuse.benchmarks.world` (``--help``)."""

import sys

from rsfuse.benchmarks.world import main

if __name__ == "__main__":
    main(sys.argv[1:])
