"""The scoring log and the outcome store (SQLAlchemy: SQLite by default, PostgreSQL by URL).

Shared by serving (which writes both) and training (which reads them back as a training set with
the features *as they were at scoring time*, so nothing recorded after the decision leaks in).
Personal fields are stored only as what the model uses (see `models.features.redact_personal`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pandas as pd
from pydantic_core import to_json
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    TextClause,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models.spec import DatasetSpec, LabelSpec

metadata = MetaData()

scoring_log = Table(
    "scoring_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", String(200), index=True, nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Column("model_name", String(200)),
    Column("model_version", String(50)),
    Column("criteria_version", String(100)),
    Column("features", JSON, nullable=False),
    Column("p_accept", Float),
    Column("p_sql", Float),
    Column("tier", String(1)),
    Column("route", String(20)),
    Column("rule_score", Float),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("lead_id", String(200), primary_key=True),
    Column("accepted", Boolean, nullable=False),
    Column("rejection_reason", String(200)),
    Column("decided_at", DateTime(timezone=True)),
    Column("sql", Boolean),
    Column("sql_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def connect(url: str) -> Engine:
    """An engine with the tables created (idempotent)."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_wal)
    metadata.create_all(engine)
    return engine


def _sqlite_wal(connection: object, _record: object) -> None:
    # Write-ahead log: a commit appends instead of rewriting pages, and readers never block the
    # writer. synchronous=NORMAL keeps every commit across a crash of the service (not of the OS).
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# The log's columns in the order `encode_log_row` writes them; the table defines them once.
LOG_COLUMNS = [column.name for column in scoring_log.columns if column.name != "id"]
_SCORED_AT = LOG_COLUMNS.index("scored_at")
_STAMP = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's own SQLite DateTime format, in UTC


def encode_log_row(row: dict[str, Any]) -> str:
    """One scoring-log row as a JSON array in `LOG_COLUMNS` order (missing keys are null).

    The server encodes on the request thread and the log writer inserts a whole batch with one
    statement, so writing a row costs one encoding and no per-row work in the database layer.
    pydantic-core's encoder takes a fifth of `json.dumps`' time here, and writes NaN and
    infinities as null (bare NaN is not JSON: the database would refuse the whole batch).
    """
    stamp = row["scored_at"]
    stamp = stamp.astimezone(UTC) if stamp.tzinfo else stamp  # naive times are taken as UTC
    values = [row.get(name) for name in LOG_COLUMNS]
    values[_SCORED_AT] = stamp.strftime(_STAMP)
    return to_json(values, inf_nan_mode="null").decode()


def insert_log_rows(engine: Engine, encoded: Iterable[str]) -> None:
    """Append encoded rows in one statement and one transaction, committed before returning."""
    payload = "[" + ",".join(encoded) + "]"
    if payload != "[]":
        with engine.begin() as connection:
            connection.execute(_bulk_insert(engine.dialect.name), {"rows": payload})


def log_scores(engine: Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Append scored leads; committed before returning, so an answered request is on disk."""
    insert_log_rows(engine, (encode_log_row(row) for row in rows))


@lru_cache
def _bulk_insert(dialect: str) -> TextClause:
    """INSERT ... SELECT over a JSON array of rows, per dialect, derived from the table."""
    names = ", ".join(LOG_COLUMNS)
    if dialect == "postgresql":
        casts = [_pg_cast(i, scoring_log.c[name].type) for i, name in enumerate(LOG_COLUMNS)]
        source = "json_array_elements(CAST(:rows AS json)) AS r"
    else:
        casts = [
            f"json_extract(value, '$[{i}]')" for i in range(len(LOG_COLUMNS))
        ]  # an object comes back as JSON text: what the JSON column stores
        source = "json_each(:rows)"
    return text(f"INSERT INTO scoring_log ({names}) SELECT {', '.join(casts)} FROM {source}")


def _pg_cast(i: int, column_type: object) -> str:
    if isinstance(column_type, JSON):
        return f"r->{i}"
    if isinstance(column_type, DateTime):
        return f"CAST((r->>{i}) || '+00' AS timestamptz)"
    if isinstance(column_type, Float):
        return f"CAST(r->>{i} AS double precision)"
    return f"r->>{i}"


def scored_lead_ids(engine: Engine, lead_ids: list[str]) -> set[str]:
    with engine.connect() as connection:
        query = select(scoring_log.c.lead_id).where(scoring_log.c.lead_id.in_(lead_ids))
        return {row[0] for row in connection.execute(query)}


def record_outcomes(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert or update outcomes by lead id: repeating a write leaves the same state."""
    if not rows:
        return
    now = datetime.now(UTC)
    rows = [{**row, "updated_at": now} for row in rows]
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as connection:
        for row in rows:
            # Only the fields a call sends are updated: a later SQL outcome keeps the acceptance.
            statement = insert(outcomes).values(**row)
            updates = {k: statement.excluded[k] for k in row if k != "lead_id"}
            connection.execute(
                statement.on_conflict_do_update(index_elements=["lead_id"], set_=updates)
            )


def training_frame(engine: Engine, spec: DatasetSpec) -> pd.DataFrame:
    """Leads joined with their outcomes, shaped like a file the spec describes (all text).

    Point in time: a lead's features are those of its last scoring at or before the decision
    (or, with no decision time given, before the outcome was recorded); a re-score after the
    decision never leaks into training. Leads without an outcome are undecided, not rejected.
    """
    with engine.connect() as connection:
        log = pd.DataFrame(
            connection.execute(
                select(
                    scoring_log.c.id,
                    scoring_log.c.lead_id,
                    scoring_log.c.scored_at,
                    scoring_log.c.features,
                )
            )
            .mappings()
            .all()
        )
        decided = pd.DataFrame(connection.execute(select(outcomes)).mappings().all())
    if log.empty:
        return pd.DataFrame(columns=spec.required_columns)
    if decided.empty:
        decided = pd.DataFrame(columns=[c.name for c in outcomes.columns])
    merged = log.merge(decided, on="lead_id", how="left")
    cutoff = pd.to_datetime(merged["decided_at"].fillna(merged["updated_at"]), utc=True)
    scored = pd.to_datetime(merged["scored_at"], utc=True)
    before = merged[cutoff.isna() | (scored <= cutoff)]
    # A lead scored only after its decision keeps its first score: the best we have.
    chosen = before.groupby("lead_id")["id"].max()
    first = merged.groupby("lead_id")["id"].min()
    ids = chosen.reindex(first.index).fillna(first)
    rows = merged.set_index("id").loc[ids.astype(int).sort_values()]
    return pd.DataFrame(
        [_as_file_row(record, spec) for record in rows.reset_index().to_dict("records")]
    )


def _as_file_row(record: Any, spec: DatasetSpec) -> dict[str, str]:
    features = dict(record["features"])
    row = {name: _text(features.get(name)) for name in spec.fields}
    if spec.id:
        row[spec.id] = record["lead_id"]
    if spec.timestamp:
        row[spec.timestamp] = _text(features.get(spec.timestamp) or record["scored_at"])
    for label, key in ((spec.labels.accepted, "accepted"), (spec.labels.sql, "sql")):
        if label is not None:
            row[label.column] = _label_text(label, record[key])
    return row


def _label_text(label: LabelSpec, outcome: object) -> str:
    """The spec's own spelling of yes / no / not yet for a stored outcome."""
    if outcome is None or pd.isna(outcome):
        return label.undecided[0]
    return label.positive[0] if bool(outcome) else label.negative[0]


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
