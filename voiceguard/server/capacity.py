"""The calls of every worker process of one server, counted together.

With ``voiceguard serve --workers N`` each worker is a process with calls of its own. To hold
the whole server to ``--max-calls``, and to let the ``/healthz`` of any worker say whether the
*server* can take another call, the workers count their calls and their media streams waiting
for Twilio's ``start`` in files of the directory they share (the one prometheus_client's
multiprocess mode keeps the metrics in, ``PROMETHEUS_MULTIPROC_DIR``):

* each worker writes its own counts to ``voiceguard_calls_<pid>.counts`` (two 64-bit integers:
  calls, waiting streams);
* every change and every reading holds an exclusive ``flock`` on ``voiceguard_calls.lock``, so
  a stream is admitted by summing the whole server's calls and counting one more in one step
  (:meth:`SharedCalls.admit`): two workers never both take the last place;
* a worker that is gone leaves its file behind. The supervisor of ``voiceguard serve`` removes
  it as soon as it notices the worker exited (:func:`forget_worker`, with the worker's live
  gauges), and every reading drops the file of a process that no longer exists (a worker killed
  while nothing was watching).

An admission costs tens of microseconds (a lock, a listing of the directory, a small read per
worker); it happens once per call, never per media message. POSIX only (``fcntl``).

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import fcntl
import glob
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Final, final

__all__ = ("CallCounts", "SharedCalls", "clear_directory", "forget_worker")

_LOCK_NAME: Final = "voiceguard_calls.lock"
_PREFIX: Final = "voiceguard_calls_"
_SUFFIX: Final = ".counts"
_COUNTS: Final = struct.Struct("<qq")
_OPEN: Final = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallCounts:
    """Calls and waiting streams, of one worker or of the whole server.

    Attributes:
        calls: Calls in progress (media streams past Twilio's ``start``).
        pending: Media streams accepted and waiting for their ``start``.
    """

    calls: int
    pending: int


@final
class SharedCalls:
    """This worker's calls and waiting streams, in a directory every worker of the server shares.

    Args:
        directory: The directory the workers share (it must exist).
        pid: This worker's process id; the current process's by default.

    Raises:
        OSError: If the directory cannot be written.
    """

    def __init__(self, directory: str | os.PathLike[str], *, pid: int | None = None) -> None:
        self.directory = os.fspath(directory)
        self.pid = os.getpid() if pid is None else pid
        self._lock = os.open(os.path.join(self.directory, _LOCK_NAME), _OPEN, 0o600)
        self._file = os.open(_counts_path(self.directory, self.pid), _OPEN, 0o600)
        self._calls = 0
        self._pending = 0
        with self._locked():
            self._write()

    @property
    def own(self) -> CallCounts:
        """This worker's counts."""
        return CallCounts(calls=self._calls, pending=self._pending)

    def admit(self, limit: int) -> bool:
        """Count one more call of this worker if the whole server has fewer than *limit*.

        Returns:
            True if the call was counted (call :meth:`release` when it ends); False if the
            server is full.
        """
        with self._locked():
            if self._sum().calls >= limit:
                return False
            self._calls += 1
            self._write()
        return True

    def release(self) -> None:
        """A call :meth:`admit` counted has ended."""
        with self._locked():
            self._calls = max(0, self._calls - 1)
            self._write()

    def set_pending(self, count: int) -> None:
        """This worker now has *count* media streams waiting for their ``start``."""
        if count != self._pending:
            with self._locked():
                self._pending = count
                self._write()

    def totals(self) -> CallCounts:
        """The whole server's counts: every live worker's, this one's included."""
        with self._locked():
            return self._sum()

    def close(self) -> None:
        """Remove this worker's counts (it takes no more calls) and close the files."""
        with self._locked():
            with suppress(FileNotFoundError):
                os.unlink(_counts_path(self.directory, self.pid))
            os.close(self._file)
        os.close(self._lock)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _write(self) -> None:
        os.pwrite(self._file, _COUNTS.pack(self._calls, self._pending), 0)

    def _sum(self) -> CallCounts:
        calls, pending = self._calls, self._pending
        for pid, path in _workers(self.directory):
            if pid == self.pid:
                continue
            if not _alive(pid):
                _forget(self.directory, pid)
                continue
            theirs = _read(path)
            calls += theirs.calls
            pending += theirs.pending
        return CallCounts(calls=calls, pending=pending)


def forget_worker(directory: str | os.PathLike[str], pid: int) -> None:
    """A worker process has exited: drop its calls and its live gauges from *directory*.

    Its calls no longer count against the server's limit, and its ``livesum`` gauges
    (``voiceguard_calls_active``, ``voiceguard_streams_pending``) leave the sums
    (prometheus_client's ``multiprocess.mark_process_dead``); its counters stay in the totals.

    Args:
        directory: The directory the workers share.
        pid: The process id of the worker that exited.
    """
    directory = os.fspath(directory)
    fd = os.open(os.path.join(directory, _LOCK_NAME), _OPEN, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _forget(directory, pid)
    finally:
        os.close(fd)  # closing the file releases the lock


def clear_directory(directory: str | os.PathLike[str]) -> None:
    """Remove what an earlier run left in *directory*: metrics (``*.db``) and call counts.

    prometheus_client's multiprocess mode needs its directory wiped before the processes start,
    or the counters of the last run would be added to this one's.

    Args:
        directory: The directory the workers are to share.
    """
    directory = os.fspath(directory)
    for pattern in ("*.db", f"{_PREFIX}*{_SUFFIX}", _LOCK_NAME):
        for path in glob.glob(os.path.join(glob.escape(directory), pattern)):
            with suppress(FileNotFoundError):
                os.unlink(path)


def _forget(directory: str, pid: int) -> None:
    """Drop *pid*'s counts and live gauges (the caller holds the lock)."""
    from prometheus_client.multiprocess import mark_process_dead  # noqa: PLC0415 - server extra

    with suppress(FileNotFoundError):
        os.unlink(_counts_path(directory, pid))
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _counts_path(directory: str, pid: int) -> str:
    return os.path.join(directory, f"{_PREFIX}{pid}{_SUFFIX}")


def _workers(directory: str) -> Iterator[tuple[int, str]]:
    """The pid and counts file of every worker that wrote one."""
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                number = name[len(_PREFIX) : -len(_SUFFIX)]
                if number.isdigit() and int(number) > 0:
                    yield int(number), entry.path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists (another user's, so a recycled pid): its file goes when forgotten
    return True


def _read(path: str) -> CallCounts:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return CallCounts(calls=0, pending=0)
    try:
        data = os.pread(fd, _COUNTS.size, 0)
    finally:
        os.close(fd)
    if len(data) < _COUNTS.size:
        return CallCounts(calls=0, pending=0)
    calls, pending = _COUNTS.unpack(data)
    return CallCounts(calls=max(0, calls), pending=max(0, pending))
