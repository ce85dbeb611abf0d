"""The project's exception types.

Every error raised because of bad *input* (a file, a sample, a config key) is one of these,
and its message names the offending file, sample or key and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path


class RsfuseError(Exception):
    """Base class of every error rsfuse raises on purpose."""


class DataError(RsfuseError):
    """A dataset file or sample is missing, corrupt or inconsistent.

    Args:
        message: what is wrong.
        path: the file (or folder) concerned, if any.
        sample: the sample id concerned, if any.
    """

    def __init__(
        self, message: str, path: str | Path | None = None, sample: str | None = None
    ) -> None:
        self.path = None if path is None else Path(path)
        self.sample = sample
        where = []
        if path is not None:
            where.append(f"file {path}")
        if sample is not None:
            where.append(f"sample {sample}")
        prefix = f"[{'; '.join(where)}] " if where else ""
        super().__init__(prefix + message)


class ConfigError(RsfuseError):
    """A configuration value or key is unknown or invalid.

    Args:
        message: what is wrong.
        key: the config key concerned, if any.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"[config key {key!r}] {message}" if key else message)


class CheckpointError(RsfuseError):
    """A checkpoint or exported weight file does not match the model it is loaded into."""
