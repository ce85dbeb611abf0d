"""Every config folder has a README, and every ``rsfuse ...`` command quoted in those READMEs
parses as written: ``fit / validate / test`` with their packaged configs (LightningCLI's
``--print_config``: configs found, keys known, values valid), the other commands with their
own argument parsers. Nothing is trained or written."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from rsfuse.training.configs import config_root

ROOT = config_root()
READMES = sorted(ROOT.rglob("README.md"))
_BASH = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`(rsfuse [^`]+)`")


def commands(readme: Path) -> list[str]:
    """The ``rsfuse`` command lines of a README: bash blocks (continuation lines joined,
    comments dropped) and inline code spans that start with ``rsfuse`` and give options
    (a bare ``rsfuse predict`` in the text names a command, it is not one to run)."""
    text = readme.read_text()
    out: list[str] = []
    for block in _BASH.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("rsfuse "):
                out.append(line)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    out += [c for c in _INLINE.findall(prose) if " --" in c]
    return out


class _ParsedError(Exception):
    """Raised right after a command's arguments parsed: nothing runs."""


def parse_command(line: str) -> None:
    """Parse one ``rsfuse ...`` line as the command would, without running it.

    Raises:
        An rsfuse error, ``SystemExit`` from a parser, or AssertionError for a line that
        is not a command.
    """
    from rsfuse.cli import LIGHTNING_SUBCOMMANDS, run

    argv = shlex.split(line)
    assert argv[0] == "rsfuse", line
    argv = argv[1:]
    if argv[0] in LIGHTNING_SUBCOMMANDS:
        import rsfuse.data.datamodules
        import rsfuse.tasks.classification  # noqa: F401
        from rsfuse.training.cli import run_cli

        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e:
            run_cli([*argv, "--print_config"])
        assert e.value.code in (0, None), f"{line}: exit {e.value.code}"
        return
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _ParsedError

    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()):
        mp.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        with pytest.raises(_ParsedError):
            run(argv)


def test_every_config_folder_has_a_readme() -> None:
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert folders, ROOT
    missing = [f for f in folders if not (ROOT / f / "README.md").is_file()]
    assert not missing, f"config folders without a README.md: {missing}"


@pytest.mark.parametrize("readme", READMES, ids=[str(p.relative_to(ROOT)) for p in READMES])
def test_every_command_in_the_readme_parses(readme: Path) -> None:
    lines = commands(readme)
    assert lines, f"{readme} quotes no rsfuse command"
    failures = []
    for line in lines:
        try:
            parse_command(line)
        except BaseException as e:  # report every broken line at once
            failures.append(f"{line}\n    -> {type(e).__name__}: {e}")
    assert not failures, f"{readme}:\n" + "\n".join(failures)


def test_a_wrong_command_is_caught() -> None:
    """The check can fail: an unknown key, an unknown config and a bad option are refused."""
    bad = [
        "rsfuse fit --config classification/ben_v2_s1 --model.init_args.no_such_key=1",
        "rsfuse fit --config classification/no_such_config",
        "rsfuse synth --layout bigearthnet-v2 --root data/x --no-such-option",
        "rsfuse predict --bundle b --out m.tif --strikt",
    ]
    for line in bad:
        with pytest.raises((Exception, SystemExit)):
            parse_command(line)
