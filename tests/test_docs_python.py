"""docs/python.md runs as written: every ```python block, in order, in one namespace, in an
empty folder (the page's sizes are tiny)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_page_has_the_whole_path() -> None:
    code = "\n".join(blocks())
    for step in ("synthesize(", "DataModule(", "SegmentationTask(", "Trainer(", "build_run(",
                 "export_bundle(", "load_bundle(", "bundle.model(", "predict_scene("):  # fmt: skip
        assert step in code, step


def test_python_guide_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions on a shared CPU
    namespace: dict = {"__name__": "docs_python"}
    try:
        for i, code in enumerate(blocks()):
            try:
                exec(compile(code, f"{DOC.name} block {i + 1}", "exec"), namespace)
            except Exception as e:  # name the block that broke
                raise AssertionError(f"{DOC.name} block {i + 1} failed: {e!r}\n{code}") from e
    finally:
        torch.set_num_threads(threads)
    report = namespace["report"]
    assert Path(report["outputs"]["main"]).is_file()
    assert Path(report["outputs"]["quicklook"]).is_file()
    assert (tmp_path / "bundles" / "dfc2020-unet" / "bundle.json").is_file()
    assert namespace["classes"].shape == namespace["sample"]["mask"].shape
    assert os.path.isfile(tmp_path / "sample.png")
