"""``FileTokenStore``: a refresh token (and how to use it) in a private JSON file.

The file's content is a :class:`~smtpkit.oauth._stored_grant.StoredGrant` (its format is
drawn in :mod:`smtpkit.oauth._stored_grant`); this module keeps it on disk.

Invariants:
    * Every write goes to a new file created with mode 0600 in the same directory, is
      fsynced, and replaces the old file with ``os.replace``: a reader sees the old file or
      the new one, never a torn one, and the token is never readable by others.
    * ``save(refresh_token)`` keeps the other fields. Writes are serialised between threads
      (a lock per store object) and between processes (``fcntl.flock`` on the sidecar file
      ``<store>.lock``, mode 0600, never deleted). :meth:`FileTokenStore.locked` holds both
      around a read-refresh-write sequence; waiting for it is bounded.
    * Where ``fcntl`` does not exist (Windows), or the lock file cannot be created (a
      read-only directory), only the in-process lock applies; the latter is logged.
    * Errors name the path, never the content.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from smtpkit.errors import ConfigurationError, StoreLockTimeout
from smtpkit.oauth._stored_grant import STORE_VERSION, StoredGrant

if sys.platform != "win32":
    import fcntl

__all__ = ["LOCK_TIMEOUT", "STORE_VERSION", "FileTokenStore", "StoreLockTimeout", "StoredGrant"]

logger = logging.getLogger("smtpkit.oauth")

#: Owner read/write only: the file holds a long-lived credential.
FILE_MODE = 0o600
#: A store larger than this is not a token store.
MAX_STORE_BYTES = 64 * 1024
#: Seconds ``save()`` and ``write()`` wait for another process holding the store's lock.
LOCK_TIMEOUT = 30.0
# Polling the lock: first and longest sleep between attempts, seconds.
_POLL_FIRST = 0.002
_POLL_MAX = 0.05


class FileTokenStore:
    """Persist a refresh token in a mode-0600 JSON file, replaced atomically.

    ::

        store = FileTokenStore("~/.config/smtpkit/alice.json")
        provider = RefreshTokenProvider(url, client_id, store=store)

    A provider given ``store=`` refreshes under :meth:`locked`: it re-reads the file, adopts
    a refresh token another process saved, refreshes, and saves the rotated token before
    the lock is released, so processes sharing the file never use a stale refresh token.

    Args:
        path: the file (``~`` is expanded). Its directory must exist.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(
                f"a token store path must be a str or a path, got {type(path).__name__}",
                hint="e.g. FileTokenStore('~/.config/smtpkit/me.json')",
            )
        self._path = Path(path).expanduser()
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        # Reentrant: save() inside locked() must not wait for itself. _depth counts the
        # owning thread's nesting; only the outermost level takes the file lock.
        self._lock = threading.RLock()
        self._depth = 0
        self._warned_unlocked = False

    @property
    def path(self) -> Path:
        """The store file."""
        return self._path

    @property
    def lock_path(self) -> Path:
        """The sidecar file locked with ``fcntl.flock`` (``<path>.lock``)."""
        return self._lock_path

    @contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the store exclusively: other threads, and other processes, wait.

        Reentrant within a thread (``save()`` inside it takes no second lock). The file lock
        is released when the block ends, or by the OS if the process dies.

        Args:
            timeout: seconds to wait for the lock.

        Raises:
            StoreLockTimeout: the lock was not obtained within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            raise StoreLockTimeout(
                f"token store {self._path}: another thread held the lock for {timeout:.0f} s"
            )
        fd: int | None = None
        try:
            if self._depth == 0:
                fd = self._lock_file(deadline, timeout)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock
            self._lock.release()

    def _lock_file(self, deadline: float, timeout: float) -> int | None:
        """Open and ``flock`` the lock file; ``None`` where no file lock can be had."""
        if sys.platform == "win32":  # pragma: no cover - no fcntl
            return None
        try:
            # O_NOFOLLOW: never lock (or create) through a symlink someone else put there.
            fd = os.open(
                self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
            )
        except OSError as error:
            if not self._warned_unlocked:
                self._warned_unlocked = True
                logger.warning(
                    "cannot create the lock file %s (%s): no cross-process lock for %s",
                    self._lock_path,
                    error.strerror,
                    self._path,
                )
            return None
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
                # The umask, or an older file; someone else's file can still be locked.
                with contextlib.suppress(OSError):
                    os.fchmod(fd, FILE_MODE)
            pause = _POLL_FIRST
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as error:
                    if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                else:
                    return fd
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreLockTimeout(
                        f"token store {self._path}: another process held {self._lock_path.name} "
                        f"for {timeout:.0f} s"
                    )
                time.sleep(min(pause, left))
                pause = min(pause * 2, _POLL_MAX)
        except BaseException:
            os.close(fd)
            raise

    def load(self) -> str | None:
        """The stored refresh token, or ``None`` when the file does not exist.

        Raises:
            ConfigurationError: the file is not a store or has no refresh token.
        """
        data = self._read_raw()
        if data is None:
            return None
        token = data.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise ConfigurationError(f"{self._path}: no refresh_token in the token store")
        return token

    def read_json(self) -> dict[str, object] | None:
        """The file's JSON object as is, or ``None`` when the file does not exist.

        Raises:
            ConfigurationError: the file is not a JSON object.
        """
        return self._read_raw()

    def read(self) -> StoredGrant | None:
        """The whole stored grant, or ``None`` when the file does not exist.

        Raises:
            ConfigurationError: the file is not a complete store.
        """
        data = self._read_raw()
        return None if data is None else StoredGrant.from_json(data, str(self._path))

    def save(self, refresh_token: str) -> None:
        """Replace the stored refresh token, keeping the other fields (an ``on_rotate`` hook).

        Holds :meth:`locked` (waiting up to :data:`LOCK_TIMEOUT`) around the read and write.

        Raises:
            ConfigurationError: an empty token, or the existing file is not a store.
            OSError: the file could not be written.
            StoreLockTimeout: the lock was not obtained (a transient
                :class:`~smtpkit.errors.TokenRefreshError`, also a ``TimeoutError``).
        """
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ConfigurationError("refresh_token must be a non-empty str")
        with self.locked():
            data = self._read_raw() or {"smtpkit_store": STORE_VERSION}
            data["refresh_token"] = refresh_token
            self._write_raw(data)

    def write(self, grant: StoredGrant) -> None:
        """Write ``grant`` as the whole store (under :meth:`locked`, like :meth:`save`).

        Raises:
            OSError: the file could not be written, or the lock not obtained.
        """
        with self.locked():
            self._write_raw(grant.to_json())

    def _read_raw(self) -> dict[str, object] | None:
        try:
            with self._path.open("rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                raw = handle.read(MAX_STORE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise ConfigurationError(
                f"cannot read token store {self._path}: {error.strerror}"
            ) from None
        if stat.S_IMODE(mode) & 0o077:
            logger.warning(
                "token store %s is readable by other users (mode %o); chmod 600 it",
                self._path,
                stat.S_IMODE(mode),
            )
        data: object = None
        if len(raw) <= MAX_STORE_BYTES:
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                data = None
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"{self._path} is not a smtpkit token store (expected a JSON object)"
            )
        return data

    def _write_raw(self, data: Mapping[str, object]) -> None:
        payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
        directory = self._path.parent
        temp = directory / f".{self._path.name}.{secrets.token_hex(6)}.tmp"
        # O_EXCL: never write through a file or symlink someone else put there.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            try:
                os.fchmod(fd, FILE_MODE)  # the umask may have removed bits we want exact
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_directory(directory)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._path)!r})"


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
