"""The one route from YAML to a run: rsfuse's LightningCLI, for the command and for Python.

``rsfuse fit|validate|test`` (:func:`run_cli`) and every experiment (:func:`build_run`)
build their model, datamodule and Trainer here, from the same YAML configs with the same
keys (TorchGeo-style ``class_path`` / ``init_args``): packaged configs by name
(:mod:`rsfuse.training.configs`) or files by path, later ``--config`` files and
``--key=value`` overrides winning. This is the only place rsfuse constructs a Trainer
(LightningCLI does, from the ``trainer`` section).

The datamodule's ``s2_bands`` and ``s2_product`` are linked into the model
(``link_arguments``): a config names the bands once, under ``data``, and the model is built
for them; :class:`~rsfuse.inputs.InputSpec` then checks model and data once when the run
starts.

Every run can be resumed exactly (:mod:`rsfuse.training.resume`): checkpoints go to
``<default_root_dir>/checkpoints/``, carry the random state, and ``--ckpt_path last`` is the
newest ``last.ckpt`` there.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.cli import LightningCLI

from rsfuse.errors import ConfigError, RsfuseError
from rsfuse.training.configs import read_config_file, resolve_config
from rsfuse.training.resume import ExactResume, LastCheckpoint, place_checkpoints, resolve_ckpt_path

__all__ = ["BuiltRun", "RsfuseCLI", "build_run", "resolve_config_args", "run_cli"]


class RsfuseCLI(LightningCLI):
    """LightningCLI over any rsfuse LightningModule and LightningDataModule (subclass mode)
    with the datamodule's bands linked into the model, and exact resume
    (:mod:`rsfuse.training.resume`): every run saves its random state
    (:class:`~rsfuse.training.resume.ExactResume`), writes ``last.ckpt`` (a
    :class:`~rsfuse.training.resume.LastCheckpoint` unless the config has a checkpoint
    callback of its own) into ``<default_root_dir>/checkpoints/``, and ``--ckpt_path last``
    means the newest last checkpoint there."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        for key in LINKED:
            parser.link_arguments(
                f"data.init_args.{key}", f"model.init_args.{key}", apply_on="parse"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The config's Trainer, with a :class:`LastCheckpoint` when checkpointing is on and
        the config names no checkpoint callback, and checkpoints in the run's folder."""
        cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_cfg = cfg.get("trainer") or {}
        callbacks = list(trainer_cfg.get("callbacks") or [])
        wants = trainer_cfg.get("enable_checkpointing") is not False
        if wants and not any(isinstance(c, Checkpoint) for c in callbacks):
            callbacks.append(LastCheckpoint())
        trainer = super().instantiate_trainer(**{"callbacks": callbacks, **kwargs})
        place_checkpoints(trainer)
        return trainer

    def _resolve_last(self, stage: str) -> None:
        cfg = self.config_init[stage]
        cfg["ckpt_path"] = resolve_ckpt_path(self.trainer, cfg.get("ckpt_path"), stage, self.model)

    def before_fit(self) -> None:
        """``--ckpt_path last``: the run's newest last checkpoint, or a fresh start."""
        self._resolve_last("fit")

    def before_validate(self) -> None:
        """``--ckpt_path last``: the run's newest last checkpoint, or a CheckpointError."""
        self._resolve_last("validate")

    def before_test(self) -> None:
        """``--ckpt_path last``: the run's newest last checkpoint, or a CheckpointError."""
        self._resolve_last("test")


#: Trainer defaults of every rsfuse run (a config's ``trainer`` section overrides them):
#: checkpoints written atomically beside their target (never half-written, never via $TMPDIR).
TRAINER_DEFAULTS: dict[str, Any] = {
    "plugins": [{"class_path": "rsfuse.io.checkpoint_io.AtomicCheckpointIO"}],
}


def trainer_defaults() -> dict[str, Any]:
    """:data:`TRAINER_DEFAULTS` and the callbacks every run has, whatever its config lists
    (LightningCLI appends them): a fresh :class:`ExactResume` (the random state in every
    checkpoint)."""
    return {**TRAINER_DEFAULTS, "callbacks": [ExactResume()]}


#: Model arguments that are taken from the datamodule's (``link_arguments``).
LINKED = ("s2_bands", "s2_product")


def check_linked_targets(args: Sequence[str]) -> None:
    """Refuse a model value that the link would silently replace with the data's.

    jsonargparse overwrites a link target given in a config or on the command line; a user
    who set ``model.init_args.s2_bands`` would get the data's bands without a word.

    Raises:
        ConfigError: naming the key and the config file (or ``the command line``).
    """

    def fail(key: str, where: str) -> None:
        raise ConfigError(
            f"model.init_args.{key} is taken from data.init_args.{key} (the data decides the "
            f"model's input); set it under data, not under model ({where})",
            key=f"model.init_args.{key}",
        )

    it = iter(args)
    for a in it:
        if a == "--config" or a.startswith("--config="):
            path = Path(next(it, "") if a == "--config" else a.split("=", 1)[1])
            for key in LINKED:
                if key in _model_init_args(path):
                    fail(key, str(path))
        for key in LINKED:
            if a.startswith((f"--model.init_args.{key}", f"--model.{key}")):
                fail(key, "the command line")


def _model_init_args(path: Path) -> dict[str, Any]:
    """``model.init_args`` of a YAML config ({} when absent or not a mapping)."""
    cfg = read_config_file(path) if path.is_file() else None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    init = model.get("init_args") if isinstance(model, dict) else None
    return init if isinstance(init, dict) else {}


def resolve_config_args(argv: Sequence[str]) -> list[str]:
    """``argv`` with every ``--config NAME`` turned into the file of that packaged config
    (paths to existing files are kept)."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--config":
            out += [a, str(resolve_config(next(it, "")))]
        elif a.startswith("--config="):
            out.append(f"--config={resolve_config(a.split('=', 1)[1])}")
        else:
            out.append(a)
    return out


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """jsonargparse and LightningCLI errors → :class:`ConfigError` (rsfuse errors raised
    while classes are built keep their type)."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except RsfuseError:
        raise
    except MisconfigurationException as e:  # Lightning's word for a bad trainer setting
        raise ConfigError(f"invalid trainer setting: {e}", key="trainer") from e
    except ArgumentError as e:
        cause = e.__cause__ or e.__context__
        while cause is not None and not isinstance(cause, RsfuseError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, RsfuseError):
            raise cause from None
        raise ConfigError(f"invalid configuration: {e}") from e


def run_cli(argv: Sequence[str], description: str = "") -> None:
    """``rsfuse fit|validate|test ARGS``: LightningCLI with packaged config names resolved."""
    args = resolve_config_args(argv)
    check_linked_targets(args)
    with _config_errors(), _args_not_argv():
        RsfuseCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            trainer_defaults=trainer_defaults(),
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False, "description": description},
        )


@contextlib.contextmanager
def _args_not_argv() -> Iterator[None]:
    """LightningCLI warns when given ``args`` while ``sys.argv`` has arguments too; rsfuse
    passes the command line it resolved (packaged config names → files) on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        yield


@dataclass
class BuiltRun:
    """A model, datamodule and Trainer built from configs (see :func:`build_run`)."""

    model: LightningModule
    datamodule: LightningDataModule
    trainer: Trainer
    config: dict[str, Any]


def build_run(
    configs: Sequence[str | Path],
    overrides: Sequence[str] = (),
    *,
    run_dir: str | Path | None = None,
    datamodule: LightningDataModule | None = None,
    seed: int | None = None,
    checkpoints: bool = False,
    quiet: bool = True,
) -> BuiltRun:
    """Build one run from configs the way ``rsfuse fit`` does, without running it.

    Args:
        configs: packaged config names or files, merged in order (a config, then its
            overrides: ``["mgsvit/ablation_c4_gmu", "mgsvit/overrides/tiny_cpu"]``).
        overrides: ``--key=value`` arguments applied last, e.g.
            ``["--trainer.max_epochs=3", "--data.init_args.root=/data/BEN"]``.
        run_dir: the run's folder: CSV logs and figures go there (default: the config's
            ``trainer.default_root_dir``).
        datamodule: a datamodule instance to use instead of the config's (e.g. one whose
            splits are already read into memory); the config's ``data`` section must still
            parse, because the model's bands are linked from it.
        seed: ``seed_everything`` of the run.
        checkpoints: keep the config's callbacks and checkpointing (off: no callbacks, no
            checkpoint files — experiments score the model after its last epoch).
        quiet: no progress bar and no model summary.

    Returns:
        The built :class:`BuiltRun`.

    Raises:
        ConfigError: an unknown config, key or value (naming it).
    """
    args: list[str] = []
    for c in configs:
        args += ["--config", str(resolve_config(c))]
    if seed is not None:
        args.append(f"--seed_everything={seed}")
    if not checkpoints:
        args += ["--trainer.callbacks=[]", "--trainer.enable_checkpointing=false"]
    if quiet:
        args += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    args += list(overrides)
    check_linked_targets(args)
    defaults: dict[str, Any] = trainer_defaults()
    if run_dir is not None:
        run_dir = Path(run_dir)
        defaults |= {
            "default_root_dir": str(run_dir),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}},
        }  # fmt: skip
    with _config_errors(), _quiet() if quiet else _null(), _args_not_argv():
        cli = RsfuseCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=args,
            trainer_defaults=defaults,
            save_config_callback=None,
            parser_kwargs={"exit_on_error": False},
        )
    config = cli.config.as_dict() if hasattr(cli.config, "as_dict") else dict(cli.config)
    return BuiltRun(cli.model, datamodule or cli.datamodule, cli.trainer, config)


@contextlib.contextmanager
def _null() -> Iterator[None]:
    yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No stdout and only Lightning warnings while a run is built (its device banner and
    tips would repeat for every run of an experiment)."""
    import logging

    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.setLevel(level)
