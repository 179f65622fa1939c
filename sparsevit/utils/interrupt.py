"""Ctrl-C and ``kill`` as an exception: :func:`interrupts_raise` turns SIGINT and SIGTERM into :class:`Interrupted`
in the main thread, so a long run (the search) can save its state, say how to continue, and exit with the shell's
code for the signal (130 for SIGINT, 143 for SIGTERM)."""
import contextlib
import signal
import threading
from typing import Iterator, Sequence


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a ``BaseException``, as ``KeyboardInterrupt``: ``except Exception`` lets it
    through).

    Attributes:
        signum: the signal; ``name``: e.g. ``'SIGINT'``; ``exit_code``: ``128 + signum``.
        message: what the run saved and how to continue (set by whoever catches it first), else ``''``.
    """

    def __init__(self, signum: int, message: str = ''):
        super().__init__(signum, message)
        self.signum, self.message = signum, message
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return self.message or f'interrupted by {self.name}'


@contextlib.contextmanager
def interrupts_raise(signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, each of ``signals`` raises :class:`Interrupted` in the main thread (the previous handlers
    are restored after it). Outside the main thread this does nothing (Python delivers signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
