"""Label-fraction subsets: drawn without replacement, reproducible, nested."""

from __future__ import annotations

import pytest
from torch.utils.data import Subset

from rsfuse.data.datamodules import BigEarthNetDataModule
from rsfuse.data.subsets import label_fraction_indices, label_fraction_subset
from rsfuse.errors import ConfigError

CASES = [(1000, 0.01, 10), (1000, 0.1, 100), (37, 0.1, 4), (5, 0.01, 1), (50, 1.0, 50)]


@pytest.mark.parametrize(("n", "fraction", "size"), CASES)
def test_no_duplicates_and_size(n: int, fraction: float, size: int) -> None:
    idx = label_fraction_indices(n, fraction, seed=0)
    assert len(idx) == size
    assert len(set(idx)) == len(idx)  # without replacement
    assert idx == sorted(idx) and all(0 <= i < n for i in idx)


def test_fixed_seed_reproducible_nested_and_seed_dependent() -> None:
    a = label_fraction_indices(500, 0.1, seed=7)
    assert a == label_fraction_indices(500, 0.1, seed=7)
    assert a != label_fraction_indices(500, 0.1, seed=8)
    assert set(label_fraction_indices(500, 0.01, seed=7)) <= set(a)  # 1 % inside 10 %


def test_subset_and_errors() -> None:
    data = list(range(200))
    sub = label_fraction_subset(data, 0.1, seed=1)
    assert isinstance(sub, Subset) and len(sub) == 20 and len({sub[i] for i in range(20)}) == 20
    assert label_fraction_subset(data, 1.0) is data
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError):
            label_fraction_indices(10, bad)
    with pytest.raises(ConfigError):
        label_fraction_indices(0, 0.5)


def test_datamodule_train_fraction_only_touches_train() -> None:
    dm = BigEarthNetDataModule("unused", train_fraction=0.1, fraction_seed=3)
    dm.dataset_class = lambda root, split, **kw: list(range(300 if split == "train" else 40))
    train, test = dm.split_dataset("train"), dm.split_dataset("test")
    assert len(train) == 30 and len(test) == 40
    assert list(train.indices) == label_fraction_indices(300, 0.1, 3)
    with pytest.raises(ConfigError, match="train_fraction"):
        BigEarthNetDataModule("unused", train_fraction=0.0)
