"""Command-line helpers of the deployment tools (``tools/check_precision.py``, ``tools/export_onnx.py``)."""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


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


def run_reporting_errors(prog: str, run: Callable[[], dict]):
    """``run()``, or ``None`` after printing ``prog: error: ...`` on one line for a ValueError/KeyError/
    FileNotFoundError (bad input)."""
    try:
        return run()
    except (ValueError, KeyError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'{prog}: error: {" ".join(str(message).split())}', file=sys.stderr)
        return None


def write_json(path: str, result: dict) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
