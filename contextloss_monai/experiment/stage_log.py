"""Where a stage's log lines go when the experiment runner runs it: to the stage's log file, and to the terminal
only when asked (``--verbose``); the stage's progress bar stays on the terminal either way."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["stage_output"]


class _Tee:
    """A text stream that writes to several streams (the terminal and the log file)."""

    def __init__(self, *streams: IO[str]) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self.streams[-1], "encoding", "utf-8")

    def fileno(self) -> int:  # what writes below Python (faulthandler) reaches the terminal
        return self.streams[0].fileno()


def _stream_handlers() -> list[logging.StreamHandler]:
    """The plain stream handlers (not files) of the root logger and of every logger made so far."""
    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]


def _point(handler: logging.StreamHandler, stream: IO[str]) -> None:
    """Point ``handler`` at ``stream`` (``setStream`` without flushing the old stream, which may be closed)."""
    with handler.lock:
        handler.stream = stream


@contextlib.contextmanager
def stage_output(log_file: str | os.PathLike, verbose: bool = False) -> Iterator[Path]:
    """Send what a stage writes to standard output — its logging (the bundle's ``logging.conf`` logs to standard
    output, as do MONAI's module loggers) and Python's warnings — to ``log_file`` (appended), and also to the
    terminal with ``verbose``. Standard error (progress bars, tracebacks) is left alone. Everything is restored
    when the block ends.

    Args:
        log_file: the stage's log (its folder is created).
        verbose: also show the lines on the terminal.
    """
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    with log_file.open("a", encoding="utf-8") as log:
        target = _Tee(terminal, log) if verbose else log
        # handlers made before the stage (MONAI's module loggers) hold the standard output of their time; point
        # them at the target for the stage (those on standard error stay)
        moved = [(h, h.stream) for h in _stream_handlers()
                 if h.stream not in (sys.stderr, sys.__stderr__) and getattr(h.stream, "name", None) != "<stderr>"]
        for handler, _ in moved:
            _point(handler, target)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(target):
                yield log_file
        finally:
            logging.captureWarnings(False)
            for handler, stream in moved:
                _point(handler, stream)
            # handlers the stage configured (its logging.conf) still point at the log file: back to the terminal
            for handler in _stream_handlers():
                if handler.stream in (log, target):
                    _point(handler, terminal)
