"""``on_error="skip"``: the one mechanism every reader uses to step over bad samples.

A reader that mixes in :class:`SkipBadSamples` implements ``_read(index)`` (raising
:class:`~rsfuse.errors.DataError` for a bad sample) and ``sample_id(index)``. With
``on_error="raise"`` the error propagates; with ``"skip"`` the bad sample is logged, recorded
once in ``skipped`` and the next good one (``index + 1``, wrapping around) is returned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rsfuse.errors import ConfigError, DataError

#: Accepted ``on_error`` values.
ON_ERROR: tuple[str, ...] = ("raise", "skip")


class SkipBadSamples:
    """Mixin giving a map-style dataset ``on_error`` handling and its ``skipped`` report."""

    on_error: str
    #: ``(sample_id, message)`` of every sample skipped because of bad files
    skipped: list[tuple[str, str]]

    def _init_skipping(self, on_error: str) -> None:
        """Validate ``on_error`` and start an empty ``skipped`` report.

        Raises:
            ConfigError: ``on_error`` is not ``raise`` or ``skip``.
        """
        if on_error not in ON_ERROR:
            raise ConfigError(
                f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}", key="on_error"
            )
        self.on_error = on_error
        self.skipped = []
        self._skipped_ids: set[str] = set()

    # implemented by the reader
    def _read(self, index: int) -> Any:
        raise NotImplementedError

    def sample_id(self, index: int) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def _all_bad_where(self) -> tuple[str, Path | None]:
        """(words naming the sample set, file to name) for the every-sample-is-bad error."""
        return "", None

    def _record_skip(self, sid: str, message: str) -> None:
        if sid in self._skipped_ids:
            return
        self._skipped_ids.add(sid)
        self.skipped.append((sid, message))
        logging.getLogger(type(self).__module__).warning(
            "skipping %s sample %s: %s", type(self).__name__, sid, message
        )

    def __getitem__(self, index: int) -> Any:
        """Read sample ``index``.

        With ``on_error="skip"`` a bad sample is skipped and the next good one
        (``index + 1``, wrapping around) is returned instead.

        Raises:
            IndexError: index out of range.
            DataError: a bad sample (``on_error="raise"``), or every sample is bad.
        """
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        if self.on_error == "raise":
            return self._read(index)
        for k in range(n):
            j = (index + k) % n
            try:
                return self._read(j)
            except DataError as e:
                self._record_skip(self.sample_id(j), str(e))
        where, path = self._all_bad_where()
        raise DataError(
            f"every one of the {n} samples{where} is bad (on_error='skip'); first: "
            f"{self.skipped[0][1] if self.skipped else ''}",
            path=path,
        )
