"""The restricted unpickler: rebuilds (bytes, shape, id) tuples, refuses anything that runs code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from rsfuse.errors import DataError
from rsfuse.io.safe_pickle import safe_loads


class _Exploit:
    """Pickles as ``os.system("touch <marker>")`` — would run a shell command on pickle.loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_round_trip_of_the_authors_tuple(protocol: int) -> None:
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for ident in (1234567, np.int64(1234567), "dw_-0.05_32.9-20190816"):
        out = safe_loads(pickle.dumps((a.tobytes(), a.shape, ident), protocol=protocol))
        data, shape, got = out
        assert shape == (2, 3, 4)
        assert np.array_equal(np.frombuffer(data, np.uint8).reshape(shape), a)
        assert got == (1234567 if not isinstance(ident, str) else ident)
        assert type(got) in (int, str)  # numpy int64 comes back as a plain int


def test_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps((b"x", (1,), _Exploit(marker)))
    with pytest.raises(DataError) as e:
        safe_loads(payload, path=tmp_path / "dw_labels.lmdb", key=b"17")
    assert "posix.system" in str(e.value) or "nt.system" in str(e.value)
    assert "dw_labels.lmdb" in str(e.value) and "'17'" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    [[1, 2], {"a": 1}, 1.5, np.zeros(3, np.uint8), np.float64(2.0), (b"x", [1])],
)
def test_refuses_other_types(value: object) -> None:
    with pytest.raises(DataError, match="key 'k'"):
        safe_loads(pickle.dumps(value), path="f.lmdb", key="k")


def test_corrupt_stream_names_file_and_key() -> None:
    good = pickle.dumps((b"abc", (3,), 1))
    with pytest.raises(DataError, match=r"\[file s2\.lmdb\] key 's2_3'"):
        safe_loads(good[:-5], path="s2.lmdb", key="s2_3")
    with pytest.raises(DataError):
        safe_loads(b"not a pickle at all", path="s2.lmdb", key="0")
