"""rsfuse: learning from paired Sentinel-1 SAR and Sentinel-2 multispectral imagery."""

from rsfuse.errors import CheckpointError, ConfigError, DataError, RsfuseError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "RsfuseError", "__version__"]
