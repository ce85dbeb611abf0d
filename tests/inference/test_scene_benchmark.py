"""The scene-inference benchmark runs end to end on a tiny scene (figures are not asserted:
speed targets live in benchmarks/, never in tests)."""

from __future__ import annotations

import json
from pathlib import Path

from rsfuse.benchmarks.scene_inference import main


def test_scene_benchmark_smoke(tmp_path: Path, capsys) -> None:
    out = tmp_path / "res.json"
    main(["--data", str(tmp_path / "d"), "--sizes", "128", "--threads", "1", "--json", str(out)])
    res = json.loads(out.read_text())
    (r,) = res["results"]
    assert r["size"] == 128 and r["pixels"] == 128 * 128 and r["windows"] >= 1
    assert r["rss_peak_mb"] >= r["rss_ready_mb"] > 0
    assert all(r["cog_check"].values()), r["cog_check"]
    assert r["tile_windows"] > r["windows"]
    assert "10980" in capsys.readouterr().out
