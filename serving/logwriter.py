"""The scoring log, written off the request path by a writer process in batched transactions.

A synchronous insert and commit per scored lead costs about as much as scoring it, so requests hand
their rows over and answer at once. The writer is a process, not a thread: a writer thread in the
server shares the GIL with the event loop, and every hand-over of the GIL between them stalls the
loop (measured: throughput halved, for a writer whose own work is a tenth of a request's).
Requests send their rows, already encoded (`models.store.encode_log_row`), down a pipe (on the
event loop, a couple of milliseconds' worth per write); the writer process reads the pipe
continuously and commits what has gathered every `max_delay` seconds, in one statement.

What this trades: rows of the last few milliseconds before a hard crash (kill -9, power cut) can
be lost. A clean shutdown writes everything, and so does every outcome write before it checks that
its lead was scored (`flush`), so an outcome never races its own lead's log row. Outcomes
themselves are acknowledged writes and stay synchronous (see serving.app).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)


class ScoringLogWriter:
    """The server's end: `submit` rows, `flush` to wait until they are committed, `close`."""

    def __init__(
        self,
        database_url: str,
        max_delay: float = 0.02,
        retry_seconds: float = 1.0,
        gather: float = 0.002,
    ):
        self._args = (database_url, max_delay, retry_seconds)
        self._gather = gather
        self._send_lock = threading.Lock()  # requests submit from the loop and from worker threads
        self._flush_lock = threading.Lock()  # one flush reads the replies at a time
        self._pending: list[str] = []  # submitted on the event loop, not yet sent
        self._pending_lock = threading.Lock()
        self._send_scheduled = False
        self._tokens = itertools.count(1)
        self.error: str | None = None  # the writer's last failed write, until one succeeds again
        self._start()

    def submit(self, rows: list[str]) -> None:
        """Queue rows (`models.store.encode_log_row`'s) for the log; returns at once.

        On an event loop, the rows of the next `gather` seconds go down the pipe together, sent
        by the loop between requests: every pipe write wakes the writer process, which cost each
        request about 50 us on a virtual machine. Elsewhere (a worker thread) they go at once.
        """
        if not rows:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._pending_lock:
            self._pending.extend(rows)
            if self._send_scheduled:
                return
            self._send_scheduled = loop is not None
        if loop is None:
            self._send_pending()
        else:
            loop.call_later(self._gather, self._send_pending)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted before this call is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        self._send_pending()
        with self._flush_lock:
            token = next(self._tokens)
            self._send(("flush", token))
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    if not self._pipe.poll(remaining):
                        break
                    kind, value = self._pipe.recv()
                except (EOFError, OSError):
                    self.error = "the scoring-log writer process exited"
                    return False
                if kind == "error":
                    self.error = value
                elif kind == "flushed" and value == token:
                    return True
        return False

    def close(self, timeout: float = 30.0) -> None:
        """Write what is pending, then stop the writer process."""
        if not self.flush(timeout):
            log.error("scoring log: rows still pending at shutdown (%s)", self.error or "timeout")
        with contextlib.suppress(OSError):
            self._send(("close", None), restart=False)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()

    def _start(self) -> None:
        # spawn, not fork: the server has threads (and an event loop) that a fork would copy.
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe(duplex=True)  # rows one way, replies the other
        self._process = context.Process(
            target=_write_forever, args=(child, *self._args), name="scoring-log", daemon=True
        )
        self._process.start()
        child.close()

    def _send_pending(self) -> None:
        with self._pending_lock:
            rows, self._pending = self._pending, []
            self._send_scheduled = False
        if rows:
            self._send(("rows", rows))

    def _send(self, message: tuple[str, Any], restart: bool = True) -> None:
        with self._send_lock:
            try:
                self._pipe.send(message)
            except OSError:  # the writer died (e.g. killed): start another, resend this message
                if not restart:
                    raise
                log.error("scoring log: the writer process exited; rows it held are lost")
                self._process.join(0)
                self._start()
                self._pipe.send(message)


# -- the writer process ---------------------------------------------------------------------------
def _write_forever(
    conn: Connection, database_url: str, max_delay: float, retry_seconds: float
) -> None:
    """Read messages on a thread (so the server never blocks on a full pipe); commit batches."""
    inbox: list[tuple[str, Any]] = []
    arrived = threading.Condition()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the server went away: write what we have and stop
                message = ("close", None)
            with arrived:
                inbox.append(message)
                arrived.notify()
            if message[0] == "close":
                return

    threading.Thread(target=read, name="scoring-log-reader", daemon=True).start()
    sink = _Sink(database_url, retry_seconds, conn)
    while True:
        with arrived:
            while not inbox:
                arrived.wait()
        time.sleep(max_delay)  # let a burst of requests share one transaction
        with arrived:
            messages, inbox[:] = list(inbox), []
        rows = [row for kind, value in messages if kind == "rows" for row in value]
        sink.write(rows)
        for kind, value in messages:
            if kind == "flush":
                _reply(conn, ("flushed", value))
            elif kind == "close":
                return


class _Sink:
    """Commits rows; retries while the database is unreachable, drops (and names) bad rows."""

    def __init__(self, database_url: str, retry_seconds: float, conn: Connection) -> None:
        self._url, self._retry_seconds, self._conn = database_url, retry_seconds, conn
        self._engine = None
        self._failing = False

    def write(self, rows: list[str]) -> None:
        from models import store

        while rows:
            try:
                if self._engine is None:
                    self._engine = store.connect(self._url)
                store.insert_log_rows(self._engine, rows)
            except Exception as exc:
                if self._engine is None or _transient(exc):
                    self._failed(exc)  # unreachable or locked: keep the rows, try again
                    continue
                self._write_one_by_one(rows)  # a row the database refuses must not block the rest
            self._recovered()
            return

    def _write_one_by_one(self, rows: list[str]) -> None:
        from models import store

        for row in rows:
            try:
                store.insert_log_rows(self._engine, [row])
            except Exception as exc:
                lead_id = json.loads(row)[store.LOG_COLUMNS.index("lead_id")]
                log.error("scoring log: lead %r not logged: %s", lead_id, _first_line(exc))

    def _failed(self, exc: Exception) -> None:
        message = _first_line(exc)
        log.error("scoring log write failed (will retry): %s", message)
        if not self._failing:
            _reply(self._conn, ("error", message))
        self._failing = True
        time.sleep(self._retry_seconds)

    def _recovered(self) -> None:
        if self._failing:
            _reply(self._conn, ("error", None))
        self._failing = False


def _transient(exc: Exception) -> bool:
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def _reply(conn: Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
