"""One writer per warehouse: an exclusive lock held for the whole of a run.

Mutual exclusion is an `flock` on `<root>/.epiatlas.lock`, which the kernel releases when the holder
dies, so a killed run never blocks the next one. The file also records the holder (pid, host, start
time, a token the run's steps use to recognise their own lock) for error messages; a record left by a
process that no longer exists is a stale lock and is taken over with a log line.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from epiatlas.errors import WarehouseLockedError

LOCK_FILE = ".epiatlas.lock"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a warehouse lock."""

    pid: int
    host: str
    started_at: str
    token: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started_at}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _read_holder(fd: int) -> LockHolder | None:
    """The holder recorded in the lock file, None when the file is empty or unreadable as a record."""
    raw = os.pread(fd, 65536, 0)
    try:
        return LockHolder(**json.loads(raw)) if raw.strip() else None
    except (ValueError, TypeError):
        return None


def recorded_holder(root: Path) -> LockHolder | None:
    """The holder recorded in `<root>/.epiatlas.lock`, without taking the lock."""
    path = Path(root) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


class WarehouseLock:
    """Exclusive, non-blocking lock on one warehouse root; use as a context manager around a run."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_FILE
        self.holder: LockHolder | None = None
        self._fd: int | None = None

    def _clear_instructions(self) -> str:
        return f"if that process is not running any more, delete {self.path} and try again"

    def acquire(self) -> LockHolder:
        """Take the lock at once or raise WarehouseLockedError naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = holder.describe() if holder else "another process"
            raise WarehouseLockedError(
                f"warehouse {self.path.parent} is in use by another run ({who}); wait for it to finish or stop it; "
                + self._clear_instructions()
            ) from None
        try:
            self._take_over(fd, _read_holder(fd))
        except BaseException:
            os.close(fd)  # closing releases the flock
            raise
        self._fd = fd
        return self.holder

    def _take_over(self, fd: int, previous: LockHolder | None) -> None:
        """Record this process as holder, refusing a record whose process may still be running."""
        if previous is not None:
            if previous.host != socket.gethostname() or pid_alive(previous.pid):
                raise WarehouseLockedError(
                    f"warehouse {self.path.parent} carries a lock record of {previous.describe()} that this host "
                    "cannot verify as finished; " + self._clear_instructions()
                )
            log.warning(
                "taking over the stale lock on %s left by %s (that process is gone)", self.path.parent, previous.describe()
            )
        self.holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(self.holder)).encode(), 0)
        os.fsync(fd)

    def release(self) -> None:
        """Clear the record and drop the lock (the file stays: removing it would race with a waiting opener)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)
            self._fd = None
            self.holder = None

    def __enter__(self) -> WarehouseLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
