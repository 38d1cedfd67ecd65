"""The scoring log, written off the request path: one background thread, batched transactions.

A synchronous insert and commit per scored lead costs about as much as scoring it. Scoring requests
hand their rows here and answer at once; the thread commits whatever has gathered, many requests
per transaction. What this trades: rows of the last few milliseconds before a hard crash (a kill -9,
a power cut) can be lost. A clean shutdown flushes everything, and so does every outcome write
before it checks that its lead was scored, so an outcome never races its own lead's log row.
Outcomes themselves are acknowledged writes and stay synchronous (see serving.app).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from models import store

log = logging.getLogger(__name__)

Rows = Callable[[], list[dict[str, Any]]]


class ScoringLogWriter:
    """Collects row builders from requests; a daemon thread builds and commits them in batches.

    Requests submit a callable rather than rows, so that turning a scored lead into its log row
    (redaction, JSON-safe values) happens on this thread too, not while the client waits.
    """

    def __init__(self, engine: Engine, max_delay: float = 0.02, retry_seconds: float = 1.0):
        self._engine = engine
        self._max_delay = max_delay
        self._retry_seconds = retry_seconds
        self._pending: list[Rows] = []
        self._submitted = 0  # builders handed in, ever
        self._written = 0  # builders whose rows are committed
        self._condition = threading.Condition()
        self._stopping = False
        self.error: str | None = None  # the last failed write, until a write succeeds again
        self._thread = threading.Thread(target=self._run, name="scoring-log", daemon=True)
        self._thread.start()

    def submit(self, rows: Rows) -> None:
        with self._condition:
            self._pending.append(rows)
            self._submitted += 1
            self._condition.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted before this call is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            target = self._submitted
            self._condition.notify_all()
            while self._written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    @property
    def backlog(self) -> int:
        with self._condition:
            return self._submitted - self._written

    def close(self, timeout: float = 30.0) -> None:
        """Write what is pending, then stop the thread."""
        flushed = self.flush(timeout)
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._thread.join(timeout)
        if not flushed:
            log.error("scoring log: %d lead(s) not written at shutdown", self.backlog)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._stopping:
                    self._condition.wait()
                if not self._pending:  # stopping, and nothing left
                    return
            time.sleep(self._max_delay)  # let a burst of requests share one transaction
            with self._condition:
                batch, self._pending = self._pending, []
            self._write(batch)

    def _write(self, batch: list[Rows]) -> None:
        rows = []
        for build in batch:
            try:
                rows.extend(build())
            except Exception:  # a bug, not a transient failure: say so loudly, keep the rest
                log.exception("scoring log: could not build a log row; that lead is not logged")
        while True:
            try:
                store.log_scores(self._engine, rows)
            except Exception as exc:  # keep the rows and retry: the database may come back
                self.error = str(exc).splitlines()[0]
                log.error("scoring log write failed (will retry): %s", self.error)
                with self._condition:
                    if self._stopping:
                        log.error("scoring log: %d row(s) lost at shutdown", len(rows))
                        return
                time.sleep(self._retry_seconds)
                continue
            with self._condition:
                self._written += len(batch)
                self.error = None
                self._condition.notify_all()
            return
