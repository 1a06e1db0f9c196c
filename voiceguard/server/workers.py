"""``voiceguard serve --workers N``: the directory the workers share, and their supervisor.

The workers of one server share a directory (prometheus_client's multiprocess directory,
``PROMETHEUS_MULTIPROC_DIR``): each writes its metrics (:mod:`voiceguard.server.metrics`) and
its calls (:mod:`voiceguard.server.capacity`) there, so that every worker's ``/metrics`` shows
the whole server's, and the call limit and ``/healthz`` are the whole server's.

* :func:`shared_directory` makes the directory before the workers start and names it in the
  environment they inherit: a fresh private one (``tempfile.mkdtemp``, removed when the server
  stops), or the ``PROMETHEUS_MULTIPROC_DIR`` the user set (kept, but wiped of an earlier
  run's files first, as prometheus_client's multiprocess mode requires).
* :class:`WorkerSupervisor` is uvicorn's supervisor of the worker processes, which also
  forgets a worker that exited (:func:`~voiceguard.server.capacity.forget_worker`): its calls
  stop counting against the limit and its live gauges leave the sums. uvicorn checks its
  workers every half second and replaces one that died or hangs (``keep_subprocess_alive``);
  the supervisor compares the workers' process ids after each check (and after a ``SIGHUP``
  restart or a ``SIGTTOU``, which happen in the same loop).

Imports uvicorn; only ``voiceguard serve`` imports this module.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import final

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from voiceguard.server.capacity import clear_directory, forget_worker
from voiceguard.server.metrics import MULTIPROCESS_ENV

__all__ = ("WorkerSupervisor", "shared_directory")


@contextmanager
def shared_directory(environ: MutableMapping[str, str]) -> Iterator[tuple[str, bool]]:
    """The directory the workers share, named in *environ* as ``PROMETHEUS_MULTIPROC_DIR``.

    Set it before the workers start (they inherit *environ*: ``os.environ``), and before they
    import ``prometheus_client``.

    Args:
        environ: The environment; ``PROMETHEUS_MULTIPROC_DIR`` in it is the user's directory.

    Yields:
        The directory, and whether it is the user's (kept at the end) rather than a private one
        (removed at the end).

    Raises:
        OSError: If the directory cannot be made or wiped.
    """
    given = environ.get(MULTIPROCESS_ENV)
    if given:
        os.makedirs(given, mode=0o700, exist_ok=True)
        clear_directory(given)
        yield given, True
        return
    path = tempfile.mkdtemp(prefix="voiceguard-workers-")
    environ[MULTIPROCESS_ENV] = path
    try:
        yield path, False
    finally:
        environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@final
class WorkerSupervisor(Multiprocess):
    """uvicorn's ``Multiprocess`` supervisor, forgetting each worker that exits.

    Args:
        config: uvicorn's config, with ``workers`` set.
        sockets: The listening sockets the workers share.
        directory: The directory the workers share.
    """

    def __init__(self, config: Config, sockets: list[socket.socket], *, directory: str) -> None:
        super().__init__(config, sockets)
        self.directory = directory
        self._known: set[int] = set()

    def init_processes(self) -> None:
        super().init_processes()
        self._forget_exited()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._forget_exited()

    def forget_all(self) -> None:
        """The server stopped: forget every worker (for a directory that outlives the run)."""
        for pid in self._known:
            forget_worker(self.directory, pid)
        self._known = set()

    def _forget_exited(self) -> None:
        running = {p.pid for p in self.processes if p.pid is not None}
        for pid in self._known - running:
            forget_worker(self.directory, pid)
        self._known = running
