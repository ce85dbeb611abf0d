"""Data throughput benchmark; see :mod:`rsfuse.benchmarks.data_throughput` (``--help``)."""

import sys

from rsfuse.benchmarks.data_throughput import main

if __name__ == "__main__":
    main(sys.argv[1:])
