"""rsfuse: learning from paired Sentinel-1 SAR and Sentinel-2 multispectral imagery."""

from __future__ import annotations

from typing import Any

from rsfuse.errors import CheckpointError, ConfigError, DataError, RsfuseError

__version__ = "0.2.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "RsfuseError",
    "__version__",
    "load_bundle",
]


def __getattr__(name: str) -> Any:
    """``rsfuse.load_bundle`` without importing torch for every ``import rsfuse``."""
    if name == "load_bundle":
        from rsfuse.inference.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'rsfuse' has no attribute {name!r}")
