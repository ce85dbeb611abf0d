"""Training throughput benchmark; see :mod:`rsfuse.benchmarks.train_throughput` (``--help``)."""

import sys

from rsfuse.benchmarks.train_throughput import main

if __name__ == "__main__":
    main(sys.argv[1:])
