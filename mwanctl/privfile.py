"""The one way mwanctl writes a file that holds secrets (rendered config, the key store).

Why each step: the temp file is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600 so a
leftover file (maybe 0644) or a planted symlink at its name can never receive the secret; it lives
in the target's own directory (opened once, without following a symlink, and used by descriptor)
so the final ``rename`` is atomic and cannot be redirected; ``fsync`` of the file and of the
directory means a crash leaves the old file or the new one, never a torn one. A symlink (or any
non-regular file) at the target itself is refused rather than replaced or followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import Iterator

from mwanctl.errors import MwanctlError

__all__ = ["PrivateFileError", "exclusive_lock", "write_private"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class PrivateFileError(MwanctlError):
    """A private file could not be written safely (nothing was written to the target)."""


def _open_dir(directory: Path, create: bool) -> int:
    if create:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PrivateFileError(f"{directory} is a symlink or not a directory; refusing to write "
                                   f"private files into it") from None
        raise PrivateFileError(f"cannot open directory {directory}: {exc.strerror}") from None


def write_private(path: Path, data: str | bytes, *, create_dirs: bool = True) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600, never following a symlink."""
    payload = data.encode() if isinstance(data, str) else data
    path = Path(path)
    dfd = _open_dir(path.parent, create_dirs)
    tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            st = os.lstat(path.name, dir_fd=dfd)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            raise PrivateFileError(f"{path} is {kind}; refusing to write private data there "
                                   f"(remove it and run again)")
        try:
            fd = os.open(tmp, _FLAGS, 0o600, dir_fd=dfd)
        except OSError as exc:
            raise PrivateFileError(f"cannot create a temporary file next to {path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)   # the umask may only have narrowed it; make it exact
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        tmp = ""
        os.fsync(dfd)
    except OSError as exc:
        raise PrivateFileError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
        os.close(dfd)


# --------------------------------------------------------------------------- locking

_locks: dict[str, threading.RLock] = {}   # lock path -> serialises this process's threads
_depth: dict[str, int] = {}                # lock path -> nesting depth (only the outermost flocks)
_guard = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, timeout: float = 120.0) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``path`` (created 0600, never through a symlink).

    Other processes (and threads) wait up to ``timeout`` seconds, then get a clear error naming
    ``what``. Nested use in one thread is allowed: flock would otherwise deadlock against our own
    descriptor.
    """
    key = str(Path(path).absolute())
    with _guard:
        rlock = _locks.setdefault(key, threading.RLock())
    if not rlock.acquire(timeout=timeout):
        raise PrivateFileError(f"{what} is locked by another thread for more than {timeout:g} s")
    fd = -1
    try:
        if _depth.get(key, 0) == 0:
            fd = _flock(Path(path), what, timeout)
        _depth[key] = _depth.get(key, 0) + 1
        try:
            yield
        finally:
            _depth[key] -= 1
    finally:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        rlock.release()


def _flock(path: Path, what: str, timeout: float) -> int:
    dfd = _open_dir(path.parent, True)
    try:
        fd = os.open(path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError as exc:
        raise PrivateFileError(f"cannot open lock file {path}: {exc.strerror}") from None
    finally:
        os.close(dfd)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise PrivateFileError(
                    f"{what} is locked by another mwanctl run for more than {timeout:g} s "
                    f"(lock file {path}); wait for it to finish and run again") from None
            time.sleep(0.05)
