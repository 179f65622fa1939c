"""Command-line helpers of the tools (``tools/*.py``): the one-line error parser, argparse types, one-line
``prog: error: ...`` reports (exit status 2) and the JSON writer of the tools' ``--json`` outputs."""
import argparse
import os.path as osp
import sys
from typing import Callable, Optional

from . import files

#: Appended to a bad argument's message by :class:`OneLineParser`.
HELP_HINT = ' (see --help)'


class ConfigError(Exception):
    """A bad command line or config value: reported as one ``error:`` line, exit status 2 (:func:`fail`)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits 2.

    The line is ``{error_prog}: error: {message} (see --help)``.

    Args:
        error_prog: the program named in the error line. Default: ``prog``. A subcommand's parser (``prog`` is
            ``tool.py run``) names its tool with it, as the top-level parser does.
        *args, **kwargs: those of ``argparse.ArgumentParser``.
    """

    def __init__(self, *args, error_prog: Optional[str] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.error_prog = error_prog

    def error(self, message: str):
        self.exit(2, f'{self.error_prog or self.prog}: error: {message}{HELP_HINT}\n')


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'must be an integer >= {minimum}, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be an integer >= {minimum}, got {text}')
        return value

    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a number in [0, 1], got {text!r}') from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {text}')
    return value


def _one_line(message) -> str:
    """``message`` as text with every run of whitespace (newlines included) made one space."""
    return ' '.join(str(message).split())


def fail(prog: str, err: BaseException) -> None:
    """Print ``prog: error: err`` on one line to stderr and exit with status 2 (``prog`` may be a path: its base
    name is printed)."""
    message = _one_line(err) or type(err).__name__
    print(f'{osp.basename(prog)}: error: {message}', file=sys.stderr)
    sys.exit(2)


def run_reporting_errors(prog: str, run: Callable[[], dict]):
    """``run()``, or ``None`` after printing ``prog: error: ...`` on one line for a ValueError/KeyError/
    FileNotFoundError (bad input)."""
    try:
        return run()
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'{prog}: error: {_one_line(message)}', file=sys.stderr)
        return None


def write_json(path: str, data: dict, default: Optional[Callable] = None) -> None:
    """Write ``data`` to ``path`` as JSON indented by 2 (no trailing newline), atomically, creating its directory
    (:func:`sparsevit.utils.files.write_json`); ``default``: as ``json.dump``'s."""
    files.write_json(path, data, indent=2, default=default)


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace, *flags: str) -> None:
    """Before the work: ``parser.error`` (one line, exit 2) when the file of an output flag (e.g. ``'--json'``)
    cannot be written at the end (:func:`sparsevit.utils.files.check_output`); unset flags are skipped."""
    for flag in flags:
        path = getattr(args, flag.lstrip('-').replace('-', '_'))
        if path is not None:
            try:
                files.check_output(path, flag)
            except ValueError as err:
                parser.error(str(err))


def image_size(parser: argparse.ArgumentParser, values, flag: str = '--img_size'):
    """The values of an ``--img_size`` given ``nargs='+'``: one side (an int: a square, as the original's) or
    ``(H, W)``; ``parser.error`` (one line) for more than two."""
    values = list(values)
    if len(values) > 2:
        parser.error(f'{flag} takes one value (square) or two (H W), got {len(values)}')
    return values[0] if len(values) == 1 else tuple(values)
