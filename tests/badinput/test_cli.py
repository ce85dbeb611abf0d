# ruff: noqa: E501  (case tables: one case per line)
"""Bad input on the ``rsfuse`` command line (issue 19, cases 2 and 7): every case ends in a
project error naming the file or key, printed by ``rsfuse`` as one line without a
traceback (``--debug`` shows it).

Add a case with one line in :data:`CKPT_CASES` (a damaged ``--ckpt_path``) or
:data:`COMMAND_CASES` (any other command line).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rsfuse.cli import main, run
from rsfuse.errors import CheckpointError, ConfigError, DataError
from rsfuse.training.configs import config_root

REPO = Path(__file__).resolve().parents[2]
S1_CONFIG = config_root() / "classification" / "ben_v2_s1.yaml"
TINY = config_root() / "overrides" / "tiny_cpu.yaml"


def lightning_args(root: Path, out: Path, *extra: str, cmd: str = "test") -> list[str]:
    return [
        cmd, "--config", str(S1_CONFIG), "--config", str(TINY),
        f"--data.init_args.root={root}", f"--trainer.default_root_dir={out}",
        "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1", "--trainer.max_epochs=1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def real_ckpt(ben_v2_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of one tiny S1 training step, written by ``rsfuse fit``."""
    out = tmp_path_factory.mktemp("fit")
    run(lightning_args(ben_v2_root, out, cmd="fit"))
    return sorted(out.rglob("*.ckpt"))[0]


# ----------------------------------------------------------------------- --ckpt_path cases
class Evil:
    """A pickle that would create ``marker`` when loaded with ``weights_only=False``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def missing(ckpt: Path, p: Path) -> None:
    pass


def folder(ckpt: Path, p: Path) -> None:
    p.mkdir()


def empty(ckpt: Path, p: Path) -> None:
    p.write_bytes(b"")


def truncated(ckpt: Path, p: Path) -> None:
    data = ckpt.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def garbage(ckpt: Path, p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 64)


def text(ckpt: Path, p: Path) -> None:
    p.write_text("model: not a checkpoint\n")


def code_execution(ckpt: Path, p: Path) -> None:
    torch.save({"state_dict": {}, "x": Evil(p.parent / "PWNED")}, p)


def raw_pickle(ckpt: Path, p: Path) -> None:
    p.write_bytes(pickle.dumps(Evil(p.parent / "PWNED")))


def bare_state_dict(ckpt: Path, p: Path) -> None:
    torch.save({"state_dict": torch.load(ckpt, weights_only=True)["state_dict"]}, p)


def not_a_dict(ckpt: Path, p: Path) -> None:
    torch.save(torch.zeros(3), p)


def wrong_shapes(ckpt: Path, p: Path) -> None:
    c = torch.load(ckpt, weights_only=True)
    key = next(k for k in c["state_dict"] if k.endswith("patch_embed.proj.bias"))
    c["state_dict"][key] = torch.zeros(7)
    torch.save(c, p)


def without_optimizer_state(ckpt: Path, p: Path) -> None:
    c = torch.load(ckpt, weights_only=True)
    del c["optimizer_states"]
    torch.save(c, p)


#: (id, how the file at --ckpt_path is made, subcommand, message)
CKPT_CASES: list[tuple[str, Callable[[Path, Path], None], str, str]] = [
    ("missing", missing, "test", "not found"),
    ("folder", folder, "test", "is a folder"),
    ("empty", empty, "test", "is empty"),
    ("truncated", truncated, "test", "truncated, or not a torch checkpoint"),
    ("garbage", garbage, "test", "objects other than tensors|not a torch checkpoint"),
    ("text", text, "validate", "refusing to load it|not a torch checkpoint"),
    ("code-execution", code_execution, "fit", "refusing to load it.*GLOBAL"),
    ("raw-pickle", raw_pickle, "test", "refusing to load it"),
    ("bare-state-dict", bare_state_dict, "test", "not written by a Lightning Trainer"),
    ("not-a-dict", not_a_dict, "test", "holds a Tensor"),
    ("wrong-shapes", wrong_shapes, "test", "does not fit this model.*size mismatch"),
    ("no-optimizer-state", without_optimizer_state, "fit", "does not fit this model or run"),
]


@pytest.mark.parametrize(
    "make, cmd, match", [c[1:] for c in CKPT_CASES], ids=[c[0] for c in CKPT_CASES]
)
def test_bad_ckpt_path_is_a_checkpoint_error_naming_the_file(
    make, cmd: str, match: str, real_ckpt: Path, ben_v2_root: Path, tmp_path: Path
) -> None:  # fmt: skip
    bad = tmp_path / "bad.ckpt"
    make(real_ckpt, bad)
    args = lightning_args(ben_v2_root, tmp_path / "run", "--ckpt_path", str(bad), cmd=cmd)
    with pytest.raises(CheckpointError, match=match) as e:
        run(args)
    assert str(bad) in str(e.value)
    assert not (tmp_path / "PWNED").exists(), "the checkpoint's code ran"


def test_a_ckpt_path_in_a_config_file_is_checked_too(tmp_path: Path, ben_v2_root: Path) -> None:
    cfg = tmp_path / "ckpt.yaml"
    cfg.write_text(f"ckpt_path: {tmp_path / 'nope.ckpt'}\n")
    args = lightning_args(ben_v2_root, tmp_path / "run", "--config", str(cfg))
    with pytest.raises(CheckpointError, match=r"nope\.ckpt not found"):
        run(args)


# ----------------------------------------------------------------------- other command lines
def bad_yaml(tmp: Path) -> list[str]:
    cfg = tmp / "broken.yaml"
    cfg.write_text("model:\n  init_args: {lr: [1, 2\n")
    return ["fit", "--config", str(cfg)]


def missing_config(tmp: Path) -> list[str]:
    return ["fit", "--config", str(tmp / "absent.yaml")]


def a_file(tmp: Path, name: str = "file.txt") -> Path:
    p = tmp / name
    p.write_text("I am a file\n")
    return p


#: (id, argv builder, error, message): every message must also name the file or key shown
COMMAND_CASES: list[tuple[str, Callable[[Path], list[str]], type[Exception], str]] = [
    ("yaml-syntax-error", bad_yaml, ConfigError, r"broken.yaml is not valid YAML at line \d+, column \d+"),
    ("missing-config", missing_config, ConfigError, "absent.yaml not found"),
    ("convert-out-file", lambda t: ["convert", "--dataset", "bigearthnet-v2", "--root", str(t), "--out", str(a_file(t))], ConfigError, "file.txt exists and is a file"),
    ("convert-out-is-root", lambda t: ["convert", "--dataset", "bigearthnet-v2", "--root", str(t), "--out", str(t), "--overwrite"], ConfigError, "is an input of this command"),
    ("convert-missing-root", lambda t: ["convert", "--dataset", "bigearthnet-v2", "--root", str(t / "nope"), "--out", str(t / "s")], DataError, "nope.*root folder not found"),
    ("export-out-file", lambda t: ["export", str(a_file(t, "m.ckpt")), "--out", str(a_file(t))], ConfigError, "file.txt exists and is a file"),
    ("export-out-is-checkpoint", lambda t: ["export", str(a_file(t, "m.ckpt")), "--out", str(t / "m.ckpt")], ConfigError, "m.ckpt exists and is a file"),
    ("synth-root-file", lambda t: ["synth", "--layout", "dfc2020", "--root", str(a_file(t)), "--n", "2"], ConfigError, "file.txt exists and is a file"),
    ("synth-n-zero", lambda t: ["synth", "--layout", "dfc2020", "--root", str(t / "d"), "--n", "0"], ConfigError, "'n'.*--n must be >= 1"),
    ("synth-cloud-cover", lambda t: ["synth", "--layout", "scene", "--root", str(t / "d"), "--cloud-cover", "2"], ConfigError, "cloud_cover"),
    ("demo-workdir-file", lambda t: ["demo", "--workdir", str(a_file(t))], ConfigError, "file.txt exists and is a file"),
    ("demo-epochs-negative", lambda t: ["demo", "--workdir", str(t / "w"), "--epochs", "-1"], ConfigError, "'epochs'.*--epochs must be >= 1"),
    ("demo-stage-epochs-negative", lambda t: ["demo", "--workdir", str(t / "w"), "--dino-epochs", "-2"], ConfigError, "'dino_epochs'.*>= 0"),
    ("predict-device-tpu", lambda t: ["predict", "--bundle", str(t), "--s2", str(t / "s2.tif"), "--out", str(t / "m.tif"), "--device", "tpu"], ConfigError, "'device'.*unknown device 'tpu'"),
    ("predict-device-cuda-9", lambda t: ["predict", "--bundle", str(t), "--s2", str(t / "s2.tif"), "--out", str(t / "m.tif"), "--device", "cuda:9"], ConfigError, "'device'.*cuda:9"),
]  # fmt: skip


#: (id, extra fit arguments, message): training settings no run can use
TRAINING_CASES: list[tuple[str, str, str]] = [
    ("negative-lr", "--model.init_args.lr=-1", "'lr'.*learning rate must be > 0"),
    ("negative-weight-decay", "--model.init_args.weight_decay=-0.1", "'weight_decay'.*>= 0"),
    ("negative-max-epochs", "--trainer.max_epochs=-5", "'trainer'.*max_epochs"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "match"), [c[1:] for c in TRAINING_CASES],
                         ids=[c[0] for c in TRAINING_CASES])  # fmt: skip
def test_bad_training_settings_are_config_errors(
    extra: str, match: str, ben_v2_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = lightning_args(ben_v2_root, tmp_path, extra, cmd="fit")
    with pytest.raises(ConfigError, match=match):
        run(args)
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rsfuse: error: ") and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize(
    "argv, error, match", [c[1:] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES]
)
def test_bad_command_lines_raise_project_errors(
    argv, error: type[Exception], match: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = argv(tmp_path)
    with pytest.raises(error, match=match):
        run(args)
    # and the command prints it as one line, no traceback
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsfuse: error: "), err


def test_a_config_error_raised_while_building_the_model_is_unwrapped(
    ben_v2_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """jsonargparse wraps it into "Does not validate against any of the Union subtypes";
    ``rsfuse`` shows the rsfuse error (the key and the problem) instead."""
    bad = ("--model.init_args.modalities=[s1,s2]", "--data.init_args.s2_bands=[B02,B99]")
    args = lightning_args(ben_v2_root, tmp_path, *bad, cmd="fit")
    with pytest.raises(ConfigError, match=r"'s2_bands'.*B99"):
        run(args)
    with pytest.raises(SystemExit):
        main(args)
    err = capsys.readouterr().err
    assert "B99" in err and "Union" not in err and "Traceback" not in err


# ----------------------------------------------------------------------- main()'s printing
def _raise(e: BaseException):
    def fake_run(argv) -> None:
        raise e

    return fake_run


def _wrapped() -> ValueError:
    try:
        try:
            raise ConfigError("bad value", key="model.lr")
        except ConfigError:
            raise ValueError("Does not validate against any of the Union subtypes") from None
    except ValueError as v:
        v.__context__ = ConfigError("bad value", key="model.lr")
        return v


@pytest.mark.parametrize(
    "exc, lines, code, text",
    [
        (DataError("truncated", path="/d/x.tif"), 1, 1, "rsfuse: error: [file /d/x.tif] truncated"),
        (_wrapped(), 1, 1, "[config key 'model.lr'] bad value"),
        (
            PermissionError(13, "Permission denied", "/d/out.tif"),
            2,
            1,
            "Permission denied: '/d/out.tif'",
        ),
        (KeyboardInterrupt(), 1, 130, "interrupted"),
    ],
    ids=["rsfuse-error", "wrapped-rsfuse-error", "os-error", "ctrl-c"],
)
def test_main_prints_one_or_two_lines(
    exc, lines: int, code: int, text: str, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("rsfuse.cli.run", _raise(exc))
    with pytest.raises(SystemExit) as e:
        main(["anything"])
    assert e.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == lines and text in err[0] and "Traceback" not in "".join(err)


def test_debug_shows_the_traceback(monkeypatch) -> None:
    seen: list[list[str]] = []

    def fake_run(argv) -> None:
        seen.append(list(argv))
        raise DataError("boom", path="x.tif")

    monkeypatch.setattr("rsfuse.cli.run", fake_run)
    with pytest.raises(DataError, match="boom"):
        main(["convert", "--debug", "--root", "r"])
    assert seen == [["convert", "--root", "r"]]  # --debug is not passed on


def test_an_unexpected_exception_keeps_its_traceback(monkeypatch) -> None:
    """A bug is not bad input: it is not hidden behind one line."""
    monkeypatch.setattr("rsfuse.cli.run", _raise(ZeroDivisionError("bug")))
    with pytest.raises(ZeroDivisionError):
        main(["anything"])
