"""The async facade of a journal store: one worker thread owns the store (and its connection).

``ThreadedJournal`` runs any store (``SqliteStore``, ``PostgresStore``) on its own thread;
``SqliteJournal`` is the SQLite one. The async methods are not written by hand: ``forwarding``
generates one per method of the class's journal protocol (``RecoverableJournal`` for SQLite,
``Journal`` for PostgreSQL), each forwarding its arguments to the store method of the same name
on the worker thread. The class subclasses the protocol, so type checkers see the
protocol's signatures, and each generated method wraps the protocol's (``help()`` and
``inspect.signature`` show them). Adding an operation means writing it in the protocol and in
the store; the facade follows.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import outcome
import trio

from qfexbot.money.journal.lock import acquire_journal_lock
from qfexbot.money.journal.model import JournalClosed
from qfexbot.money.journal.protocol import RecoverableJournal
from qfexbot.money.journal.sqlite import SqliteStore

__all__ = ["SqliteJournal", "ThreadedJournal", "forwarding", "operations"]

C = TypeVar("C", bound=type)


def operations(protocol: type) -> dict[str, Callable[..., Any]]:
    """The async methods a journal protocol declares (its protocol bases' too), by name."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(protocol.__mro__):
        if klass is Protocol or not klass.__dict__.get("_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                found[name] = value
    return found


def _forwarder(name: str, spec: Callable[..., Any]) -> Callable[..., Any]:
    """An async method with ``spec``'s signature and docstring that runs the store's ``name``.

    Arguments cross to another thread: a one-shot ``Iterable`` (a generator, a dict view) is
    made a tuple first, in the caller's thread.
    """
    signature = inspect.signature(spec)
    iterables = tuple(
        p
        for p, param in signature.parameters.items()
        if str(param.annotation).startswith("Iterable")
    )

    @functools.wraps(spec)
    async def forward(self: ThreadedJournal, *args: Any, **kwargs: Any) -> Any:
        if iterables:
            bound = signature.bind(self, *args, **kwargs)
            for p in iterables:
                if p in bound.arguments:
                    bound.arguments[p] = tuple(bound.arguments[p])
            args, kwargs = bound.args[1:], bound.kwargs
        return await self._call(name, *args, **kwargs)

    return forward


def forwarding(cls: C) -> C:
    """Give ``cls`` a forwarder for every operation of its journal protocol(s) that no class of
    its own (protocols aside) defines."""
    own = [k for k in cls.__mro__ if not k.__dict__.get("_is_protocol", False)]
    for name, spec in operations(cls).items():
        if not any(name in k.__dict__ for k in own):
            forward = _forwarder(name, spec)
            forward.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, forward)
    return cls


_STOP = object()


class ThreadedJournal:
    """A journal store run on one dedicated thread, offered as async methods.

    A call that was submitted always completes on the worker thread and its result is awaited
    even if the caller is cancelled meanwhile (the cancellation is delivered at the caller's
    next checkpoint), so a committed write is never silently lost to its caller. A subclass
    adds the protocol (and ``forwarding``) and an ``open`` classmethod that awaits ``_opened``.

    Args:
      label: how errors and the thread name the journal (never a secret).
      make_store: builds the store, on the worker thread.
    """

    def __init__(self, label: str, make_store: Callable[[], Any]) -> None:
        self._label = label
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, args=(make_store,), name=f"qfexbot-journal:{label}", daemon=True
        )
        self._thread.start()

    async def _started(self) -> None:
        """Wait until the store is open; close and raise its error if it failed to open."""
        await trio.to_thread.run_sync(self._opened.wait)
        if self._open_error is not None:
            await self.close()
            raise self._open_error

    def _run(self, make_store: Callable[[], Any]) -> None:
        try:
            store = make_store()
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            store = None
        else:
            self._opened.set()
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                job(store)
        finally:
            if store is not None:
                store.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise JournalClosed(f"journal {self._label} is closed")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []

        def job(store: Any) -> None:
            if store is None:
                box.append(
                    outcome.Error(
                        JournalClosed(f"journal {self._label} failed to open: {self._open_error!r}")
                    )
                )
            else:
                box.append(outcome.capture(self._operate, store, method, args, kwargs))
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put(job)
        with trio.CancelScope(shield=True):
            await done.wait()
        return box[0].unwrap()

    @staticmethod
    def _operate(store: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One operation on the worker thread: heal a lost connection first, then run it."""
        store.heal()
        return getattr(store, method)(*args, **kwargs)

    async def close(self) -> None:
        """Finish queued work, close the store and join the worker thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)
        self._closed_hook()

    def _closed_hook(self) -> None:
        """Release what the subclass holds beside the store (after the thread ended)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@forwarding
class SqliteJournal(ThreadedJournal, RecoverableJournal):
    """The SQLite ``Journal``: async methods, all database work on one dedicated thread.

    Its ``Journal`` methods are the protocol's, generated by ``forwarding``: each queues the
    ``SqliteStore`` method of the same name on the worker thread and awaits the result.

    Use ``async with await SqliteJournal.open(path) as journal`` (or call ``close()``).

    Args:
      path: the SQLite file (parent directories are created).
      clock: wall-clock seconds for ``created_at``/``updated_at`` (tests inject one).

    Raises:
      sqlite3.Error: from ``open()`` if the file cannot be opened or migrated.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self._lock_fd: int | None = None
        self.path = Path(path)
        super().__init__(str(self.path), lambda: SqliteStore(self.path, clock=clock))

    @classmethod
    async def open(
        cls, path: str | Path, *, clock: Callable[[], float] = time.time
    ) -> SqliteJournal:
        """Create the journal and wait until the file is open and migrated."""
        lock_fd = acquire_journal_lock(path)
        try:
            journal = cls(path, clock=clock)
        except BaseException:
            os.close(lock_fd)
            raise
        journal._lock_fd = lock_fd
        await journal._started()
        return journal

    def _closed_hook(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
