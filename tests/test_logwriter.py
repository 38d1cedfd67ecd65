"""The scoring log's background writer: nothing submitted is lost, failures are retried."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from models import store
from serving.logwriter import ScoringLogWriter


@pytest.fixture
def engine(tmp_path):
    engine = store.connect(f"sqlite:///{tmp_path / 'log.db'}")
    yield engine
    engine.dispose()


def _rows(lead_id: str) -> list[dict]:
    return [{"lead_id": lead_id, "scored_at": datetime.now(UTC), "features": {"x": 1}}]


def _count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(store.scoring_log)).scalar()


def test_rows_from_many_threads_are_all_written_by_flush(engine) -> None:
    writer = ScoringLogWriter(engine, max_delay=0.001)

    def submit_many(offset: int) -> None:
        for i in range(250):
            writer.submit(lambda i=i: _rows(f"L{offset + i}"))

    threads = [threading.Thread(target=submit_many, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=10)
    assert _count(engine) == 1000 and writer.backlog == 0
    writer.close()


def test_close_writes_what_is_pending(engine) -> None:
    writer = ScoringLogWriter(engine, max_delay=0.5)  # nothing written before close on its own
    for i in range(10):
        writer.submit(lambda i=i: _rows(f"C{i}"))
    writer.close()
    assert _count(engine) == 10


def test_a_failing_database_is_retried_without_losing_rows(engine, monkeypatch) -> None:
    real, failures = store.log_scores, []

    def flaky(engine_, rows):
        if len(failures) < 2:
            failures.append(len(rows))
            raise RuntimeError("database is locked")
        real(engine_, rows)

    monkeypatch.setattr(store, "log_scores", flaky)
    writer = ScoringLogWriter(engine, max_delay=0.001, retry_seconds=0.01)
    writer.submit(lambda: _rows("R1"))
    assert writer.flush(timeout=10)
    assert failures and _count(engine) == 1 and writer.error is None
    writer.close()


def test_a_row_that_cannot_be_built_does_not_block_the_others(engine, caplog) -> None:
    writer = ScoringLogWriter(engine, max_delay=0.01)

    def broken() -> list[dict]:
        raise ValueError("bug")

    writer.submit(lambda: _rows("OK1"))
    writer.submit(broken)
    writer.submit(lambda: _rows("OK2"))
    assert writer.flush(timeout=10)
    assert _count(engine) == 2
    assert "could not build a log row" in caplog.text
    writer.close()
