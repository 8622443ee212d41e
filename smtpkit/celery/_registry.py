"""The Submitters of a Celery worker process: named factories, one Submitter each per process.

:func:`register_submitter` names a way to build a :class:`~smtpkit.Submitter`;
:func:`get_submitter` builds it on first use in each process and keeps it (and its logged-in
connections) for every later task; Celery's worker shutdown signals close them. This is the
only module of :mod:`smtpkit.celery` that imports Celery.

Invariants:
    * Submitters are keyed by configuration name and process id: nothing made in a parent
      process is used after a fork, and closing never touches a parent's sockets.
    * A factory runs outside the registry's lock, once per name at a time (other threads
      wait for it), so it may itself call :func:`get_submitter` for another name; asking
      for the name it is building is a :class:`~smtpkit.ConfigurationError`.
    * Registering a name again closes the Submitters made from the old factory here; one
      built while the factory was replaced is closed, never handed out.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable

from celery import signals

from smtpkit.drivers import Submitter
from smtpkit.errors import ConfigurationError

__all__ = [
    "DEFAULT_NAME",
    "SubmitterFactory",
    "close_submitters",
    "get_submitter",
    "register_submitter",
]

#: The configuration name used when none is given.
DEFAULT_NAME = "default"

SubmitterFactory = Callable[[], Submitter]


@dataclasses.dataclass(eq=False)
class _Build:
    """A Submitter being made by ``thread`` (an ident); ``done`` is set when it finished."""

    thread: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class _Registry:
    """Named Submitter factories, and the Submitters this process made from them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factories: dict[str, SubmitterFactory] = {}
        self._made: dict[tuple[str, int], Submitter] = {}
        self._building: dict[tuple[str, int], _Build] = {}

    def register(self, name: str, factory: SubmitterFactory) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a Submitter configuration needs a non-empty name")
        if not callable(factory):
            raise ConfigurationError(f"the factory for {name!r} must be callable")
        with self._lock:
            self._factories[name] = factory
            stale = [key for key in self._made if key[0] == name]
            dropped = [self._made.pop(key) for key in stale]
        for submitter in dropped:
            submitter.close()

    def get(self, name: str) -> Submitter:
        key = (name, os.getpid())
        me = threading.get_ident()
        while True:
            # The user's factory never runs under self._lock: it may call get_submitter()
            # itself. One thread builds each name; the others wait for it, then look again.
            with self._lock:
                submitter = self._made.get(key)
                if submitter is not None:
                    return submitter
                factory = self._factory(name)
                build = self._building.get(key)
                if build is None:
                    build = self._building[key] = _Build(me)
                    break
            if build.thread == me:
                raise ConfigurationError(
                    f"the factory for {name!r} asks for the Submitter it is making",
                    hint="a factory may call get_submitter() for other names, not its own",
                )
            build.done.wait()
        try:
            submitter = self._build(name, factory)
        finally:
            with self._lock:
                del self._building[key]
            build.done.set()
        with self._lock:
            if self._factories.get(name) is factory and key not in self._made:
                self._made[key] = submitter
                return submitter
        # register() replaced the factory while it ran: this Submitter is stale.
        submitter.close()
        return self.get(name)

    def _factory(self, name: str) -> SubmitterFactory:
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigurationError(
                f"no Submitter configuration named {name!r} in this process (registered: {known})",
                hint="call smtpkit.celery.register_submitter(name, factory) in the "
                "module that defines your Celery app, so workers run it too",
            )
        return factory

    @staticmethod
    def _build(name: str, factory: SubmitterFactory) -> Submitter:
        submitter = factory()
        if not isinstance(submitter, Submitter):
            raise ConfigurationError(f"the factory for {name!r} did not return a Submitter")
        # Keep connections between tasks: one login per connection, not per message
        # (Gmail answers repeated logins with 454 4.7.0 Too many login attempts).
        submitter.__enter__()
        return submitter

    def close(self) -> None:
        pid = os.getpid()
        with self._lock:
            mine = [key for key in self._made if key[1] == pid]
            closing = [self._made.pop(key) for key in mine]
            # Entries of other processes (copied by fork) are dropped without touching
            # their sockets, which belong to the parent.
            self._made = {key: s for key, s in self._made.items() if key[1] == pid}
        for submitter in closing:
            submitter.close()


_registry = _Registry()


def register_submitter(name: str, factory: SubmitterFactory) -> None:
    """Name a way to build a Submitter, for tasks to send with.

    Call it at import time of the module that defines the Celery app, so every worker
    process has it. The factory runs lazily, once per worker process, on the first task
    that names it; build token providers inside it, so each process has its own (a
    ``token_store`` URL option or :class:`smtpkit.oauth.FileTokenStore` shares rotated
    refresh tokens between processes through the file, replaced atomically).

    Example::

        register_submitter("default", lambda: Submitter.from_env())
        register_submitter(
            "gmail",
            lambda: Submitter.from_url(
                "smtp+starttls://me%40gmail.com@smtp.gmail.com?token_store=/etc/app/gmail.json"
            ),
        )

    Registering a name again replaces it (and closes the Submitters made from it here).
    """
    _registry.register(name, factory)


def get_submitter(name: str = DEFAULT_NAME) -> Submitter:
    """The Submitter this process uses for ``name`` (made on first use).

    Raises:
        ConfigurationError: no configuration of that name was registered.
    """
    return _registry.get(name)


def close_submitters() -> None:
    """Close this process's Submitters (run at worker shutdown; safe to call any time)."""
    _registry.close()


def _close_on_shutdown(**_: object) -> None:
    close_submitters()


# weak=False: the receivers are module functions, kept alive anyway.
signals.worker_process_shutdown.connect(_close_on_shutdown, weak=False)
signals.worker_shutdown.connect(_close_on_shutdown, weak=False)
