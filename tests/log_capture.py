"""A test helper: every log record of every logger, at DEBUG, through one handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

_H = TypeVar("_H", bound=logging.Handler)

#: Loggers the package quiets by default; opened up while capturing.
_QUIET = ("voiceguard", "websockets")


@contextmanager
def every_record(handler: _H) -> Iterator[_H]:
    """Give *handler* every record at DEBUG (the root and the quiet loggers opened) for the
    block, and put the levels back after."""
    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in _QUIET}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)
