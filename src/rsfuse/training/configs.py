"""The YAML configs that ship inside the package, found by name.

Every config of ``rsfuse fit`` and of the experiments lives in ``rsfuse/configs/`` (installed
with the package, read through :mod:`importlib.resources`), grouped by method:
``classification/``, ``mgsvit/``, ``dino_mm/``, ``cromss/``, ``segmentation/``, ``demo/``
and ``overrides/``. A config is named by its path under that folder without ``.yaml``
(``classification/ben_v2_s1s2_early_fusion``, ``mgsvit/overrides/tiny_cpu``); a path to a
file of one's own works wherever a name does.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import yaml

from rsfuse.errors import ConfigError

__all__ = ["config_root", "list_configs", "load_config", "read_config_file", "resolve_config"]


def config_root() -> Path:
    """The folder of the packaged configs (a real directory: the package is not zipped)."""
    with as_file(files("rsfuse") / "configs") as root:
        return Path(root)


def list_configs(prefix: str = "") -> list[str]:
    """Names of the packaged configs (sorted), those under ``prefix`` if given."""
    root = config_root()
    names = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
    return [n for n in names if n.startswith(prefix)]


def resolve_config(name_or_path: str | Path) -> Path:
    """The file of a config given by path or by packaged name (``.yaml`` optional).

    An existing file path wins; otherwise the name is looked up under :func:`config_root`.

    Raises:
        ConfigError: neither a file nor a packaged config.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml")
    packaged = config_root() / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a file", key="config")
    close = [n for n in list_configs() if Path(name).name in n][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; `rsfuse configs` lists them"
    raise ConfigError(
        f"config file {name_or_path} not found, and no packaged config has that name{hint}",
        key="config",
    )


def read_config_file(path: str | Path) -> Any:
    """Parse one YAML config file; a syntax error names the file, line and column.

    Raises:
        ConfigError: unreadable file or invalid YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}", key="config") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            f"config file {path} is not valid YAML{where}: {problem}", key="config"
        ) from None


def _merge(base: dict, over: dict) -> dict:
    """Deep merge of YAML mappings (``over`` wins), as repeated ``--config`` flags do."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(*names: str | Path) -> dict[str, Any]:
    """The mapping of one or more configs merged in order (later ones win), e.g. a config
    and its tiny override — for reading a config's values; runs are built by
    :func:`rsfuse.training.cli.build_run`.

    Raises:
        ConfigError: a config that is absent or not valid YAML (naming the file).
    """
    out: dict[str, Any] = {}
    for name in names:
        path = resolve_config(name)
        cfg = read_config_file(path) or {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path} does not hold a mapping of config keys")
        out = _merge(out, cfg)
    return out
