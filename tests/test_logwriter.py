"""The scoring log's writer process: nothing submitted is lost, failures are retried."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from models import store
from serving.logwriter import ScoringLogWriter


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def _rows(lead_id: str | None) -> list[str]:
    row = {"lead_id": lead_id, "scored_at": datetime.now(UTC), "features": {"x": 1}}
    return [store.encode_log_row(row)]


def _lead_ids(url: str) -> list[str]:
    engine = store.connect(url)
    try:
        with engine.connect() as connection:
            return [r[0] for r in connection.execute(select(store.scoring_log.c.lead_id))]
    finally:
        engine.dispose()


def test_rows_from_many_threads_are_all_written_by_flush(url) -> None:
    writer = ScoringLogWriter(url, max_delay=0.001)

    def submit_many(offset: int) -> None:
        for i in range(250):
            writer.submit(_rows(f"L{offset + i}"))

    threads = [threading.Thread(target=submit_many, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=30)
    ids = _lead_ids(url)
    assert len(ids) == 1000 and len(set(ids)) == 1000
    writer.close()


def test_close_writes_what_is_pending(url) -> None:
    writer = ScoringLogWriter(url, max_delay=0.5)  # nothing written before close on its own
    for i in range(10):
        writer.submit(_rows(f"C{i}"))
    writer.close()
    assert sorted(_lead_ids(url)) == [f"C{i}" for i in range(10)]


def test_an_unreachable_database_is_retried_without_losing_rows(tmp_path) -> None:
    folder = tmp_path / "not-yet"  # SQLite cannot open a file in a missing folder
    url = f"sqlite:///{folder / 'log.db'}"
    writer = ScoringLogWriter(url, max_delay=0.001, retry_seconds=0.05)
    writer.submit(_rows("R1"))
    assert not writer.flush(timeout=2)
    assert writer.error and "unable to open database" in writer.error
    folder.mkdir()
    writer.submit(_rows("R2"))
    assert writer.flush(timeout=30)
    assert sorted(_lead_ids(url)) == ["R1", "R2"] and writer.error is None
    writer.close()


def test_a_row_the_database_refuses_does_not_block_the_others(url, capfd) -> None:
    writer = ScoringLogWriter(url, max_delay=0.05)
    for rows in (_rows("OK1"), _rows(None), _rows("OK2")):  # lead_id is NOT NULL
        writer.submit(rows)
    assert writer.flush(timeout=30)
    assert sorted(_lead_ids(url)) == ["OK1", "OK2"]
    writer.close()
    assert "lead None not logged" in capfd.readouterr().err


def test_a_killed_writer_is_replaced(url) -> None:
    writer = ScoringLogWriter(url, max_delay=0.001)
    writer.submit(_rows("BEFORE"))
    assert writer.flush(timeout=30)
    first = writer._process
    first.kill()
    first.join(10)
    writer.submit(_rows("AFTER"))  # may hit the dead pipe: the writer restarts and resends
    assert writer.flush(timeout=30)
    assert writer._process.pid != first.pid
    assert sorted(_lead_ids(url)) == ["AFTER", "BEFORE"]
    writer.close()


def test_encoded_rows_read_back_as_written(url) -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    row = {
        "lead_id": "E1",
        "scored_at": stamp,
        "features": {"industry": "software", "web_visits": float("nan"), "mql_at": stamp},
        "p_accept": 0.25,
        "tier": "D",
    }
    engine = store.connect(url)
    store.log_scores(engine, [row])
    with engine.connect() as connection:
        stored = connection.execute(select(store.scoring_log)).mappings().one()
        later = connection.execute(
            select(func.count()).where(store.scoring_log.c.scored_at > stamp.replace(tzinfo=None))
        ).scalar()
    engine.dispose()
    assert stored["scored_at"].replace(tzinfo=None) == stamp.replace(tzinfo=None)
    features = dict(stored["features"])
    assert datetime.fromisoformat(features.pop("mql_at")) == stamp  # ISO 8601, the same instant
    assert features == {"industry": "software", "web_visits": None}  # NaN is not JSON: null
    assert (stored["p_accept"], stored["tier"], stored["p_sql"]) == (0.25, "D", None)
    assert later == 0  # stored in the format SQLAlchemy compares timestamps with


def test_rows_submitted_on_an_event_loop_go_down_the_pipe_together(url) -> None:
    """On the server's loop, a burst of requests' rows is one pipe message (one wake-up of the
    writer), sent by the loop itself a moment later: no flush needed, nothing lost."""
    writer = ScoringLogWriter(url, max_delay=0.001, gather=0.01)
    sent: list[int] = []
    send = writer._send

    def counting(message, restart=True):
        if message[0] == "rows":
            sent.append(len(message[1]))
        send(message, restart)

    writer._send = counting

    async def burst() -> None:
        for i in range(50):
            writer.submit(_rows(f"E{i}"))
        assert sent == []  # gathered, not yet sent
        await asyncio.sleep(0.05)

    asyncio.run(burst())
    assert sent == [50]
    deadline = time.monotonic() + 30
    while len(_lead_ids(url)) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(_lead_ids(url)) == sorted(f"E{i}" for i in range(50))
    writer.close()


def test_flush_sends_rows_still_gathering(url) -> None:
    writer = ScoringLogWriter(url, max_delay=0.001, gather=60.0)  # the loop would send too late

    async def submit_then_flush() -> bool:
        writer.submit(_rows("F1"))
        return writer.flush(timeout=30)

    assert asyncio.run(submit_then_flush())
    assert _lead_ids(url) == ["F1"]
    writer.close()
