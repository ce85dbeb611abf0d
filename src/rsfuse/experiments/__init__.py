"""Paper experiments run by ``rsfuse experiment NAME`` (each module exposes ``main(argv)``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None`` or 0: leave torch's choice),
    restoring the previous count afterwards. One thread is often fastest on a busy CPU."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
