"""The documented pretrain → fine-tune walk of every method runs as the config READMEs write it.

For each method the test takes the ``bash`` block of its config folder's README that
synthesises data, pretrains and fine-tunes (MGSViT: two pretrainings and the fused
fine-tuning; DINO-MM and MoCo-MM: pretraining and linear probe; CromSS: CromSS-midF and the
DFC2020 PSPNet), and runs its commands in order, in process, from an empty folder. The
only changes to the lines: ``rsfuse synth``'s ``--n`` is small (and a synthesised folder is
reused by a later block asking for the same data), and every ``rsfuse fit`` gets the quick-run
flags the READMEs give (:data:`QUICK`). It then checks that each pretraining printed where
it exported its encoders, that the files are inside its run folder, and that the fine-tune
printed that it loaded exactly those files, with the bands their JSON lists.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from pathlib import Path

import pytest

from rsfuse.training.configs import config_root

ROOT = config_root()

#: Appended to every documented ``rsfuse fit`` line: the quick run the READMEs name (one epoch
#: of two training batches of 2 samples, one validation batch, no sanity check).
QUICK = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.num_sanity_val_steps=0",
    "--data.init_args.batch_size=2",
]

#: Locations synthesised per layout instead of the README's ``--n`` (enough for two training
#: batches, a validation batch and the pretraining health checks' holdout).
SMALL_N = {"bigearthnet-v2": 32, "noldo-s12": 8, "dfc2020": 12}

#: method → (README, pretraining configs, fine-tuning config) as the README names them.
WALKS = {
    "mgsvit": (
        "mgsvit/README.md",
        ["mgsvit/pretrain/c4_s1", "mgsvit/pretrain/c4_s2"],
        "mgsvit/ssl/ablation_base",
    ),
    "dino-mm": ("dino_mm/README.md", ["dino_mm/dino_mm_pretrain"], "dino_mm/eval/linear_probe"),
    "moco-mm": ("dino_mm/README.md", ["dino_mm/moco_mm_pretrain"], "dino_mm/eval/linear_probe"),
    "cromss": (
        "cromss/README.md",
        ["cromss/cromss_midf"],
        "segmentation/dfc2020_pspnet_finetune",
    ),
}

_BASH = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
_EXPORTED = re.compile(r"^\[rsfuse\] exported (\S+) encoder to (.+)$", re.M)
_LOADED = re.compile(r"^\[rsfuse\] loaded the (?:(\S+) )?encoder from (\S+) \(bands ([^);]+)", re.M)


def walk_block(readme: str, pretrain: str) -> list[list[str]]:
    """The commands (argv lists, continuation lines joined) of the README's bash block that
    synthesises data and runs ``pretrain``."""
    text = (ROOT / readme).read_text()
    for block in _BASH.findall(text):
        lines = [ln.split(" #")[0].strip() for ln in re.sub(r"\\\n\s*", " ", block).splitlines()]
        argvs = [shlex.split(ln) for ln in lines if ln.startswith("rsfuse ")]
        if any(a[1] == "synth" for a in argvs) and any(
            a[1] == "fit" and f"--config={pretrain}" in _joined(a) for a in argvs
        ):
            return argvs
    raise AssertionError(f"{readme} has no bash block that synthesises data and runs {pretrain}")


def _joined(argv: list[str]) -> set[str]:
    """``--key value`` pairs of ``argv`` written as ``--key=value``."""
    out = set(argv)
    out.update(f"{a}={b}" for a, b in itertools.pairwise(argv) if a.startswith("--"))
    return out


def _option(argv: list[str], name: str) -> str:
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    raise AssertionError(f"{shlex.join(argv)} has no {name}")


@pytest.fixture(scope="module")
def synthesised() -> dict[tuple[str, int], Path]:
    """Synthesised folders by (layout, n), shared by the walks of this module."""
    return {}


def synth(argv: list[str], cache: dict[tuple[str, int], Path], factory, capsys) -> None:
    """Run a README's ``rsfuse synth`` line with a small ``--n`` (or link a folder already
    synthesised with the same layout and n) at its ``--root``."""
    from rsfuse.cli import run

    layout, root = _option(argv, "--layout"), Path(_option(argv, "--root"))
    n = SMALL_N[layout]
    key = (layout, n)
    if key not in cache:
        folder = factory.mktemp(layout) / "data"
        args = list(argv[1:])
        i = args.index("--n") if "--n" in args else args.index("-n")
        args[i + 1] = str(n)
        args[args.index("--root") + 1] = str(folder)
        run([*args, "--no-progress"])
        capsys.readouterr()
        cache[key] = folder
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(cache[key], target_is_directory=True)


@pytest.mark.parametrize("method", list(WALKS))
def test_documented_pretrain_then_finetune(
    method: str, tmp_path: Path, monkeypatch, capsys, synthesised, tmp_path_factory
) -> None:
    from rsfuse.cli import run

    readme, pretrains, finetune = WALKS[method]
    argvs = walk_block(readme, pretrains[0])
    text = " ".join((ROOT / readme).read_text().split())
    assert " ".join(QUICK) in text, f"{readme} does not document the quick-run flags {QUICK}"
    monkeypatch.chdir(tmp_path)
    exported: dict[Path, str] = {}  # resolved file → the pretraining config that wrote it
    loaded: list[tuple[Path, str]] = []
    ran: list[str] = []
    for argv in argvs:
        if argv[1] == "synth":
            synth(argv, synthesised, tmp_path_factory, capsys)
            continue
        assert argv[1] == "fit", shlex.join(argv)
        configs = [_option(argv[i:], "--config") for i, a in enumerate(argv) if a == "--config"]
        if not ({*pretrains, finetune} & set(configs)):
            continue  # a block may hold another method's pair (dino_mm/README.md: both)
        run([*argv[1:], *QUICK])
        out = capsys.readouterr().out
        ran.append(configs[0])
        if configs[0] in pretrains:
            found = _EXPORTED.findall(out)
            assert found, f"{shlex.join(argv)} printed no '[rsfuse] exported … encoder to …'"
            run_folder = _run_folder(argv, configs[0])
            for _, path in found:
                p = Path(path.strip()).resolve()
                assert p.is_file() and p.with_suffix(".json").is_file(), p
                assert p.is_relative_to(run_folder), f"{p} is not in the run folder {run_folder}"
                exported[p] = configs[0]
        else:
            found = _LOADED.findall(out)
            assert found, f"{shlex.join(argv)} printed no '[rsfuse] loaded the … encoder from …'"
            for _, path, bands in found:
                p = (tmp_path / path).resolve()
                loaded.append((p, bands))
                meta = json.loads(p.with_suffix(".json").read_text())
                assert bands.split() == [str(b) for b in meta["bands"]], (p, bands)
    assert ran == [*pretrains, finetune], f"{readme}: ran {ran}"
    assert loaded, "the fine-tune loaded nothing"
    missing = [str(p) for p, _ in loaded if p not in exported]
    assert not missing, f"the fine-tune read {missing}; the pretraining wrote {list(exported)}"
    if method != "cromss":  # CromSS-midF exports S1 and S2; the DFC2020 PSPNet reads S2
        assert {p for p, _ in loaded} == set(exported)


def _run_folder(argv: list[str], config: str) -> Path:
    """``--trainer.default_root_dir`` of the line, else the one its config sets."""
    try:
        return Path(_option(argv, "--trainer.default_root_dir")).resolve()
    except AssertionError:
        from rsfuse.training.configs import load_config

        return Path(load_config(config)["trainer"]["default_root_dir"]).resolve()
