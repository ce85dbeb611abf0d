"""Throughput benchmarks (``rsfuse benchmark NAME``); each module exposes ``main(argv)``."""
