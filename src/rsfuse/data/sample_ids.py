"""Sample ids kept as one NumPy bytes array, the form the readers index them in."""

from __future__ import annotations

import numpy as np

__all__ = ["SampleIdArray"]


class SampleIdArray:
    """Mixin of a reader that keeps its sample ids as one NumPy bytes array ``_ids``
    (one buffer, not a Python string per sample, to copy into each loader worker)."""

    _ids: np.ndarray

    def __len__(self) -> int:
        return len(self._ids)

    def sample_id(self, index: int) -> str:
        """The id of sample ``index``."""
        return self._ids[index].decode()

    @property
    def sample_ids(self) -> list[str]:
        """All sample ids, in index order."""
        return [b.decode() for b in self._ids]
