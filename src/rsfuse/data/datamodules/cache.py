"""In-memory cache of decoded samples for small datasets (demo, tests, experiments)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from torch.utils.data import Dataset
from tqdm.auto import tqdm

from rsfuse.data.sample import Sample


class InMemoryCache(Dataset):
    """Keeps every decoded sample of a dataset in memory after its first read.

    Meant for small datasets (demo, tests) read with ``num_workers=0``: each loader worker
    would hold its own copy. :meth:`preload` fills the cache with threads (rasterio
    releases the GIL while decoding).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        if index not in self._cache:
            self._cache[index] = self.dataset[index]
        return self._cache[index]

    def preload(self, threads: int = 4, desc: str = "caching") -> InMemoryCache:
        """Read every sample once, in ``threads`` threads, with a progress bar."""
        todo = [i for i in range(len(self)) if i not in self._cache]
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for i, s in tqdm(
                zip(todo, pool.map(self.dataset.__getitem__, todo)),
                total=len(todo),
                desc=desc,
                leave=False,
            ):
                self._cache[i] = s
        return self

    def __getattr__(self, name: str) -> Any:
        # delegate plot(), classes, skipped … to the wrapped dataset; never dunders such as
        # __getitems__ (the DataLoader would read batches from the source, past the cache)
        if name in ("dataset", "_cache") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
