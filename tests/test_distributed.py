"""Key gathering across DDP ranks, with 2 CPU processes on the gloo backend."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from rsfuse.distributed import concat_all_gather, rank, world_size
from rsfuse.losses.infonce import MoCoV3Loss

N, D, TAU = 4, 8, 0.2


def _vectors(r: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + r)
    return torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


def _worker(r: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=world)
    try:
        q, k = _vectors(r)
        gathered = concat_all_gather(k)
        loss = MoCoV3Loss(TAU)(q, k)
        local = MoCoV3Loss(TAU, gather=False)(q, k)
        torch.save(
            {
                "rank": rank(),
                "world": world_size(),
                "gathered": gathered,
                "loss": loss,
                "local": local,
            },
            Path(out_dir) / f"rank{r}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_keys_are_gathered_from_every_rank_and_labels_offset(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    keys = torch.cat([_vectors(r)[1] for r in range(2)])
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert got["rank"] == r and got["world"] == 2
        torch.testing.assert_close(got["gathered"], keys)  # rank order, rank 0 first
        q, _ = _vectors(r)
        logits = F.normalize(q, dim=1) @ F.normalize(keys, dim=1).t() / TAU  # [N, 2N]
        expected = F.cross_entropy(logits, torch.arange(N) + r * N) * 2 * TAU
        torch.testing.assert_close(got["loss"], expected)
        # the negatives of the other rank change the loss: the gather really happened
        assert abs(got["loss"].item() - got["local"].item()) > 1e-3


def test_single_process_gather_is_identity() -> None:
    x = torch.randn(3, 2)
    assert concat_all_gather(x) is x and world_size() == 1 and rank() == 0
