"""Load a leads file and validate it against the spec.

Every problem names the file, the row (1 = first data row), the file line and the column. Rows that
fail are never dropped silently: they are counted, reported and written to a rejects file (with
personal values redacted) so they can be fixed at the source; a file that is mostly bad is refused.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from models.features import Parsed, assemble_clean, parse_field, parse_timestamps
from models.spec import DatasetSpec, FieldSpec, FieldType, LabelSpec

if TYPE_CHECKING:  # csvparts imports Numba, which only batch scoring needs
    import pyarrow.parquet as pq

    from pipeline.csvparts import Part

log = logging.getLogger(__name__)

_REJECT_COLUMNS = ["row", "line", "lead_id", "column", "value", "problem"]
_SAMPLE_ERRORS = 10
_SAMPLE_BYTES = 1 << 20  # read to estimate a CSV's rows (LeadStream.estimated_rows)
_MAX_SLICES = 2000  # rejected rows up to which the kept rows are joined as slices (_kept_rows)
# Rows from which a batch chunk's numbers and timestamps are parsed by pipeline.plaincells.
_COMPILED_ROWS = 10_000


class LoadError(ValueError):
    """The file cannot be used at all; the message says where and why."""


@dataclass
class LoadReport:
    path: str
    sha256: str | None  # None where the reader did not ask for it (see LeadStream)
    rows_read: int
    rows_rejected: int
    errors: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rejects_path: str | None = None

    @property
    def rows_kept(self) -> int:
        return self.rows_read - self.rows_rejected

    def summary(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rejects_path": self.rejects_path,
            "problems": self.errors["problem_kind"].value_counts().to_dict()
            if len(self.errors)
            else {},
            "warnings": self.warnings,
            "ignored_columns": self.ignored_columns,
        }


@dataclass
class Leads:
    """Validated rows of a leads file: raw text (index = row number - 1), the clean view of the
    same rows (models.features.normalize, computed from the validation's own parse) and the
    load report."""

    frame: pd.DataFrame
    clean: pd.DataFrame
    report: LoadReport


def load_leads(
    path: str | Path, spec: DatasetSpec, rejects_path: Path | None = None, labelled: bool = True
) -> Leads:
    """Read `path` (CSV, CSV.gz or Parquet), validate every row, and keep the rows that pass.

    `labelled=False` reads leads to score: the label columns are then not required (if present
    they are not validated either).
    """
    stream = LeadStream(path, spec, rejects_path, labelled, chunk_rows=None)
    (whole,) = stream  # a file with rows is one chunk; one without is refused
    assert stream.report is not None  # set by a stream iterated to its end
    return Leads(frame=whole.frame, clean=whole.clean, report=stream.report)


@dataclass
class LeadChunk:
    """Consecutive validated rows of a file: their raw text and clean view, as in `Leads`."""

    frame: pd.DataFrame
    clean: pd.DataFrame


class LeadStream:
    """A leads file validated and handed over `chunk_rows` rows at a time (all at once for
    None), so chunks can be checked and worked on side by side (`map`), and memory does not
    grow with the file.

    The checks are file-wide where they must be: a lead id repeated in a later chunk is
    rejected there like any duplicate, and the refusal threshold, the "empty in every row"
    warnings and the rejects file are settled after the last chunk. Iterating to the end sets
    `report` or raises LoadError (a refused file): callers must not treat what they made of the
    chunks as final before then.

    `categorical`: the clean view's text columns of few distinct values come as pandas
    categoricals (the same values), which the encoder and the rule criteria read per distinct
    value: what a scorer of big files asks for.
    `digest`: the report carries the file's SHA-256, which training records as the data's
    lineage. Scoring has no use for it, and it costs a CPU-second per 5 GB on a busy core.
    """

    def __init__(
        self,
        path: str | Path,
        spec: DatasetSpec,
        rejects_path: Path | None = None,
        labelled: bool = True,
        chunk_rows: int | None = 100_000,
        categorical: bool = False,
        digest: bool = True,
    ) -> None:
        self.path, self.spec, self.rejects_path = Path(path), spec, rejects_path
        self.labelled, self.chunk_rows, self.categorical = labelled, chunk_rows, categorical
        self.digest = digest
        self.report: LoadReport | None = None

    def __iter__(self) -> Iterator[LeadChunk]:
        yield from self._run(partial(self._tables, partial(_at_once, self._job(_as_is).run), 0))

    def map(self, work: Callable[[LeadChunk], T], processes: int) -> Iterator[T]:
        """`work(chunk)` for every chunk, in file order. With `processes` > 0 the chunks are
        checked and worked on in that many forked processes, which inherit `work` (and what it
        holds, e.g. a loaded model) instead of receiving it: validation is Python and pandas
        holding the GIL, so threads alone leave all but one core idle. The pool is forked
        before this stream starts any thread of its own. With 0, in this process."""
        job = self._job(work)
        if processes <= 0:
            # In this process, two chunks at a time on threads: what lets go of the GIL (Arrow,
            # LightGBM) then overlaps with the other chunk's checks.
            with ThreadPoolExecutor(2) as threads:
                yield from self._run(partial(self._tables, partial(threads.submit, job.run), 2))
            return
        context = multiprocessing.get_context("fork")
        # What exists now (libraries, the model) lives as long as the workers do: frozen, the
        # collector never scans it again, here or in a worker, nor copies a worker's
        # inherited pages by touching them.
        gc.freeze()
        try:
            with ProcessPoolExecutor(
                processes, context, initializer=_adopt, initargs=(job,)
            ) as pool:
                for _ in pool.map(_ready, range(processes)):  # all forked now, before any thread
                    pass
                if self._in_parts:
                    yield from self._run(partial(self._parts, pool, processes))
                else:
                    tables = partial(self._tables, partial(pool.submit, _in_worker), processes)
                    yield from self._run(tables)
        finally:
            gc.unfreeze()

    def estimated_rows(self) -> int | None:
        """About how many rows the file has, without reading it (None for compressed CSV):
        Parquet says; a CSV's size is divided by the length of its first lines."""
        return self._estimate

    @cached_property
    def _estimate(self) -> int | None:
        # Asked by the scorer (workers, progress) and again when the file is cut into parts.
        if self.path.suffix == ".parquet":
            return _parquet(self.path).metadata.num_rows
        if self.path.suffix != ".csv" or not self.path.is_file():
            return None
        with self.path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
        lines = head.count(b"\n") * self.path.stat().st_size / max(len(head), 1)
        return max(round(lines) - 1, 0)  # the header is not a row

    def _job(self, work: Callable[[LeadChunk], object]) -> _Job:
        spec, suffix = self.spec, self.path.suffix
        return _Job(spec, self.labelled, self._required, suffix, work, self.categorical)

    @property
    def _required(self) -> list[str]:
        return self.spec.required_columns if self.labelled else self.spec.lead_columns

    @property
    def _in_parts(self) -> bool:
        """Whether worker processes read their chunks' rows themselves (see csvparts)."""
        from pipeline.csvparts import splittable

        return splittable(self.path, self.spec.read.encoding)

    def _run(self, chunks: Callable[[list[str], _Found], Iterator[Any]]) -> Iterator[Any]:
        """The results `chunks(columns, found)` yields, in file order, then the report of what
        it found."""
        path, spec = self.path, self.spec
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        before = _version(path)
        # hashlib lets go of the GIL, so the file is hashed on the other core while it is parsed.
        with ThreadPoolExecutor(max_workers=1) as hasher:
            sha256 = hasher.submit(_sha256, path) if self.digest else None
            columns = _columns(path, spec)
            _check_columns(path, columns, spec, self._required)
            found = _Found()
            yield from chunks(columns, found)
            # A file still being written (an export not finished) is read in pieces at
            # different times, here and by the workers: what was read may not be one file.
            if _version(path) != before:
                raise LoadError(
                    f"{path}: the file changed while it was being read; run again once it is "
                    "complete"
                )
            bad_lines = _bad_line_errors(path, found.bad)
            self.report = _conclude(
                path, spec, self.rejects_path, columns, found.checks, bad_lines, sha256
            )

    def _tables(
        self, submit: Callable[..., Future], in_flight: int, columns: list[str], found: _Found
    ) -> Iterator[Any]:
        """Read here, checked and worked on by `submit(table, start, earlier)`, a future of
        (result, _Checked), with up to `in_flight` chunks waiting."""
        seen = self._seen_ids()
        pending: deque[Future] = deque()

        def finished() -> object:
            result, checked = pending.popleft().result()
            found.checks.append(checked)
            return result

        start = 0
        tables = _tables(self.path, self.spec, columns, self._required, self.chunk_rows, found.bad)
        for table in tables:
            earlier = seen.earlier(table, start) if seen else None
            pending.append(submit(table, start, earlier))
            start += len(table)
            while len(pending) > in_flight or (pending and pending[0].done()):
                yield finished()
        while pending:
            yield finished()

    def _parts(
        self, pool: ProcessPoolExecutor, in_flight: int, columns: list[str], found: _Found
    ) -> Iterator[Any]:
        """Read, checked and worked on in the `pool`'s processes, part by part of the file.

        A part is sent before the rows ahead of it are read, so it is checked with its first
        row's number as its lines suggest and with no ids of earlier parts. Both are confirmed
        in file order; a part whose guess was wrong (malformed or blank lines ahead) or that
        repeats an earlier part's id is checked again, with the true number and those ids.
        """
        from pipeline.csvparts import header_and_parts

        path, seen = self.path, self._seen_ids()
        present = _present(columns, self._required)
        header, parts = header_and_parts(path, self.spec.read.delimiter, self._part_bytes())
        read = partial(_part_in_worker, path, header, columns, present)
        pending: deque[tuple[Part, int, Future]] = deque()
        start = misjudged = 0  # rows of the parts done; their rows less their lines

        def finished() -> object:
            nonlocal start, misjudged
            part, guess, future = pending.popleft()
            result, checked, ids, bad = future.result()
            earlier = seen.earlier(ids, start) if seen else None
            if guess != start or earlier:
                result, checked, _, bad = pool.submit(read, part, start, earlier).result()
            found.bad.extend(bad)
            found.checks.append(checked)
            start += checked.rows
            misjudged += checked.rows - part.lines
            return result

        lines = 0
        for part in parts:
            guess = lines + misjudged
            pending.append((part, guess, pool.submit(read, part, guess)))
            lines += part.lines
            while len(pending) > in_flight or (pending and pending[0][2].done()):
                yield finished()
        while pending:
            yield finished()

    def _seen_ids(self) -> _SeenIds | None:
        # Ids of earlier chunks, to reject their repeats; one chunk needs no memory of them.
        return (
            _SeenIds(self.spec.id, self.path.suffix) if self.chunk_rows and self.spec.id else None
        )

    def _part_bytes(self) -> int:
        """Bytes of a part of about `chunk_rows` rows (the whole file for None)."""
        size = self.path.stat().st_size
        if self.chunk_rows is None:
            return size
        return -(-size * self.chunk_rows // (self.estimated_rows() or 1))


@dataclass
class _Found:
    """What the chunks of a file were found to hold, in file order: their checks, and the
    malformed lines (expected and found fields, text) that were no rows."""

    checks: list[_Checked] = field(default_factory=list)
    bad: list[tuple[int, int, str]] = field(default_factory=list)


T = TypeVar("T")


def _as_is(chunk: LeadChunk) -> LeadChunk:
    return chunk


@dataclass(frozen=True)
class _Job:
    """What checking and working on one chunk needs, wherever it runs."""

    spec: DatasetSpec
    labelled: bool
    required: list[str]
    suffix: str
    work: Callable[[LeadChunk], object]
    categorical: bool = False

    def run(
        self, table: pa.Table, start: int, earlier: dict[str, int] | None
    ) -> tuple[object, _Checked]:
        raw = _frame(table, start, self.suffix)
        frame, clean, checked = _check_rows(
            raw, self.spec, self.labelled, self.required, earlier, self.categorical
        )
        return self.work(LeadChunk(frame=frame, clean=clean)), checked


# A forked worker's job, set once when the pool forks it (inherited, never pickled).
_JOB: _Job | None = None


def _adopt(job: _Job) -> None:
    global _JOB
    _JOB = job


def _ready(_: int) -> None:
    return None


def _in_worker(table: pa.Table, start: int, earlier: dict[str, int] | None) -> tuple:
    assert _JOB is not None  # set by _adopt when the worker was forked
    return _JOB.run(table, start, earlier)


def _part_in_worker(
    path: Path,
    header: bytes,
    columns: list[str],
    present: list[str],
    part: Part,
    start: int,
    earlier: dict[str, int] | None = None,
) -> tuple:
    """A part of the file, read, checked and worked on in a worker, as
    rows from `start` + 1; with the part's ids (to compare with earlier parts') and the
    malformed lines that were no rows."""
    from pipeline.csvparts import read_part

    assert _JOB is not None  # set by _adopt when the worker was forked
    spec, bad = _JOB.spec, []
    with _readable(path, spec):
        # On this thread: each worker has a core to itself.
        options = _arrow_options(spec, columns, present, bad, threads=False)
        table = read_part(path, header, part, options)
    table = table.slice(1).rename_columns(present)  # the header line is row 0
    result, checked = _JOB.run(table, start, earlier)
    ids = table.select([spec.id]) if spec.id else None
    return result, checked, ids, bad


def _at_once(run: Callable[..., tuple[object, _Checked]], *args: object) -> Future:
    """`run(*args)` here and now, as a finished future."""
    done: Future = Future()
    done.set_result(run(*args))
    return done


class _SeenIds:
    """The first row of every lead id of the chunks so far, so a repeat in a later chunk is
    rejected like any duplicate (the first occurrence is kept).

    Most files repeat no id, and for them a set of the ids is enough: adding a chunk's ids to it
    is a C loop (0.1 s a million ids), where a dict of first rows took a Python loop (0.6 s), on
    the process that feeds the workers. The first chunk the set does not grow by every one of
    its ids (an id repeated, or a blank one again) switches to that dict, built from the chunks
    kept until then, so the answers are the same either way.
    """

    def __init__(self, column: str, suffix: str) -> None:
        self.column, self.suffix = column, suffix
        self.seen: set[str] | None = set()  # None once first_row has taken over
        self.chunks: list[tuple[int, list[str]]] = []  # (start, ids) while `seen` answers
        self.first_row: dict[str, int] = {}

    def earlier(self, table: pa.Table, start: int) -> dict[str, int]:
        """The ids of this chunk (rows from `start` + 1) seen in earlier chunks, with their
        first rows; then this chunk's new ids are remembered."""
        ids = _frame(table.select([self.column]), start, self.suffix)[self.column].str.strip()
        values = ids.tolist()
        if self.seen is not None:
            before = len(self.seen)
            self.seen.update(values)
            if len(self.seen) - before == len(values):
                self.chunks.append((start, values))
                return {}
            self.seen = None
            for earlier_start, earlier_values in self.chunks:
                self._remember(earlier_values, earlier_start)
            self.chunks = []
        return self._remember(values, start)

    def _remember(self, values: list[str], start: int) -> dict[str, int]:
        first_row, earlier = self.first_row, {}
        for row, value in enumerate(values, start=start + 1):
            if value:
                first = first_row.setdefault(value, row)
                if first <= start:  # an earlier chunk's (a repeat within this one is its own)
                    earlier[value] = first
        return earlier


@dataclass(frozen=True)
class _Checked:
    """What checking one run of rows found: the problems, and which columns were blank in
    every row (for the file-wide warning)."""

    rows: int
    errors: pd.DataFrame
    rejected: int
    blank: set[str]


def _check_rows(
    raw: pd.DataFrame,
    spec: DatasetSpec,
    labelled: bool,
    required: list[str],
    earlier: dict[str, int] | None,
    categorical: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, _Checked]:
    """Validate rows whose index is their row number - 1 (a chunk's starts where it does):
    the kept rows' raw text and clean view (see LeadStream for `categorical`), and what was
    found."""
    parsed = {
        name: _parse(raw[name], f, spec.missing_markers(name), categorical)
        for name, f in spec.fields.items()
    }
    stamps = _stamps(raw[spec.timestamp], categorical) if spec.timestamp else None
    errors = pd.concat(_row_errors(raw, spec, labelled, parsed, stamps, earlier), ignore_index=True)
    errors = _with_lead_ids(errors, raw, spec)
    rejected_rows = errors["row"].astype(int).unique()
    # Only the columns the spec uses travel on: at a million rows the rest is most of the memory.
    clean = assemble_clean(parsed, stamps, spec, raw.index)
    frame = raw[required]
    if len(rejected_rows):
        keep = np.ones(len(raw), dtype=bool)
        keep[rejected_rows - 1 - _first_index(raw)] = False
        frame, clean = _kept_rows(frame, keep), clean[keep]
    blank = _blank_columns(raw, spec, labelled)
    return frame, clean, _Checked(len(raw), errors, len(rejected_rows), blank)


def _parse(raw: pd.Series, field: FieldSpec, markers: frozenset[str], categorical: bool) -> Parsed:
    """parse_field's answer; a batch chunk's long numeric text columns take its compiled path."""
    if field.type is FieldType.numeric and _compiled(raw, categorical):
        from pipeline.plaincells import parse_numbers  # Numba: batch scoring only

        return parse_numbers(raw, field, markers)
    return parse_field(raw, field, markers, categorical)


def _stamps(raw: pd.Series, categorical: bool) -> pd.Series:
    """parse_timestamps's answer; a batch chunk's long column takes its compiled path."""
    if _compiled(raw, categorical):
        from pipeline.plaincells import parse_stamps  # Numba: batch scoring only

        return parse_stamps(raw)
    return parse_timestamps(raw)


def _compiled(raw: pd.Series, categorical: bool) -> bool:
    """Whether a column goes to pipeline.plaincells: a batch chunk's (`categorical`, see
    LeadStream) long column of text."""
    return categorical and isinstance(raw.dtype, pd.StringDtype) and len(raw) >= _COMPILED_ROWS


def _first_index(frame: pd.DataFrame) -> int:
    return int(frame.index[0]) if len(frame) else 0


def _conclude(
    path: Path,
    spec: DatasetSpec,
    rejects_path: Path | None,
    columns: list[str],
    checks: list[_Checked],
    bad_lines: pd.DataFrame,
    sha256: Future[str] | None,
) -> LoadReport:
    """The report of a whole file; a file with no rows or too many bad ones is refused here."""
    bad_lines = bad_lines.assign(lead_id=None)
    row_errors = pd.concat([c.errors for c in checks], ignore_index=True) if checks else None
    errors = pd.concat([bad_lines, _past_bad_lines(row_errors, bad_lines)], ignore_index=True)
    # In file order, whichever way the file was read (whole or in chunks).
    errors = errors.sort_values("line", kind="stable", na_position="last", ignore_index=True)
    rows_read = sum(c.rows for c in checks) + len(bad_lines)
    rows_rejected = sum(c.rejected for c in checks) + len(bad_lines)
    blank = set.intersection(*(c.blank for c in checks)) if checks else set()
    report = LoadReport(
        path=str(path),
        sha256=sha256.result() if sha256 is not None else None,
        rows_read=rows_read,
        rows_rejected=rows_rejected,
        errors=errors,
        warnings=_warnings(blank, spec),
        ignored_columns=[c for c in columns if c not in spec.required_columns + list(spec.exclude)],
    )
    if rows_read == 0:
        raise LoadError(f"{path}: the file has a header but no rows")
    if rows_rejected / rows_read > spec.max_bad_row_fraction:
        raise LoadError(_refusal(path, report, spec))
    if rows_rejected and rejects_path is not None:
        report.rejects_path = str(_write_rejects(errors, rejects_path))
    if rows_rejected:
        log.warning(
            "%s: %d of %d rows rejected (see %s)",
            path,
            rows_rejected,
            rows_read,
            report.rejects_path or "the load report",
        )
    return report


def _past_bad_lines(errors: pd.DataFrame | None, bad_lines: pd.DataFrame) -> pd.DataFrame:
    """Row errors with the file line each row is on: a row's line is its number + 1 (the
    header) + the malformed lines before it, which are not rows."""
    if errors is None or not len(errors):
        return _empty_errors()
    lines = errors["row"].to_numpy(dtype=np.int64) + 1
    for bad in np.sort(bad_lines["line"].dropna().to_numpy(dtype=np.int64)):
        lines = np.where(lines >= bad, lines + 1, lines)
    return errors.assign(line=lines)


def label_values(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.Series, pd.Series | None]:
    """Outcomes as 1.0 / 0.0 / NaN (undecided: unlabelled, never a rejection).

    P(SQL) is modelled over all MQLs: a rejected lead can never become an SQL, so it counts as a
    negative; an accepted lead whose SQL decision is still open is unlabelled.
    """
    accepted = _label(frame[spec.labels.accepted.column], spec.labels.accepted)
    if spec.labels.sql is None:
        return accepted, None
    sql = _label(frame[spec.labels.sql.column], spec.labels.sql)
    sql = sql.mask(accepted == 0, 0.0).mask(accepted.isna(), np.nan)
    return accepted, sql


# -- reading -------------------------------------------------------------------------------------
def _tables(
    path: Path,
    spec: DatasetSpec,
    columns: list[str],
    wanted: list[str],
    chunk_rows: int | None,
    bad: list[tuple[int, int, str]],
) -> Iterator[pa.Table]:
    """The rows as Arrow text (only the `wanted` columns, named), `chunk_rows` at a time; the
    lines that do not split into as many fields as the header go to `bad`."""
    present = _present(columns, wanted)
    for table in _rechunked(_batches(path, spec, columns, present, bad), chunk_rows):
        yield table.rename_columns(present)


def _present(columns: list[str], wanted: list[str]) -> list[str]:
    """The `wanted` columns the file has, once each, in the order wanted: what is read."""
    return [c for c in dict.fromkeys(wanted) if c in columns]


def _parquet(path: Path) -> pq.ParquetFile:
    # Imported on first use: pyarrow.parquet and the file systems it loads take 30 ms, which
    # every `sal score` of a CSV file paid at start-up.
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _frame(table: pa.Table, start: int, suffix: str) -> pd.DataFrame:
    """A chunk's rows as pandas text, indexed by row number - 1."""
    frame = table.to_pandas()
    if suffix == ".parquet":
        frame = frame.astype({c: "str" for c in frame.columns if frame[c].dtype == object})
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def _batches(
    path: Path,
    spec: DatasetSpec,
    columns: list[str],
    present: list[str],
    bad: list[tuple[int, int, str]],
) -> Iterator[pa.RecordBatch]:
    if path.suffix == ".parquet":
        yield from _parquet(path).iter_batches(columns=present)
        return
    header = True
    with _readable(path, spec):
        for batch in pacsv.open_csv(path, **_arrow_options(spec, columns, present, bad)):
            # The header line is the first row Arrow reads (see _arrow_options).
            yield batch.slice(1) if header else batch
            header = False


def _rechunked(batches: Iterator[pa.RecordBatch], rows: int | None) -> Iterator[pa.Table]:
    """The batches as tables of exactly `rows` rows (the last one fewer; one table for None)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += len(batch)
        while rows and count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            pending, count = table.slice(rows).to_batches(), count - rows
    if count:
        yield pa.Table.from_batches(pending)


def _columns(path: Path, spec: DatasetSpec) -> list[str]:
    """The file's column names, as pandas names them (duplicates as "x.1", blanks as
    "Unnamed: 3")."""
    if path.suffix == ".parquet":
        return list(_parquet(path).schema_arrow.names)
    with _readable(path, spec):
        header = pd.read_csv(
            path, sep=spec.read.delimiter, encoding=spec.read.encoding, nrows=0, dtype=str
        ).columns
    return [str(c).strip() for c in header]


def _arrow_options(
    spec: DatasetSpec,
    columns: list[str],
    present: list[str],
    bad: list[tuple[int, int, str]],
    threads: bool = True,
) -> dict[str, object]:
    """Arrow reads the rows, converting only the columns the spec uses, and with the header
    row itself as row 0 so the names can't clash. `threads`: on Arrow's thread pool."""

    def keep_bad_line(row: object) -> str:
        bad.append((row.expected_columns, row.actual_columns, row.text))  # type: ignore[attr-defined]
        return "skip"

    return {
        "read_options": pacsv.ReadOptions(
            encoding=spec.read.encoding, autogenerate_column_names=True, use_threads=threads
        ),
        # A quoted value may hold line breaks (a CRM's notes); without this, Arrow's chunker
        # cuts such a value where it crosses a block and gives up on the file.
        "parse_options": pacsv.ParseOptions(
            delimiter=spec.read.delimiter,
            newlines_in_values=True,
            invalid_row_handler=keep_bad_line,
        ),
        "convert_options": pacsv.ConvertOptions(
            # pandas keeps text as large_string: read so, to_pandas need not copy every cell.
            default_column_type=pa.large_string(),
            include_columns=[f"f{columns.index(c)}" for c in present],
        ),
    }


@contextmanager
def _readable(path: Path, spec: DatasetSpec) -> Iterator[None]:
    try:
        yield
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise LoadError(
            f"{path}: cannot be read as {spec.read.encoding} text separated by "
            f"{spec.read.delimiter!r}: {exc}"
        ) from exc


def _bad_line_errors(path: Path, bad: list[tuple[int, int, str]]) -> pd.DataFrame:
    if not bad:
        return _empty_errors()
    lines = _find_lines(path, {text for _, _, text in bad})
    records = [
        {
            "row": None,
            "line": lines.get(text),
            "column": None,
            "value": None,
            "problem_kind": "malformed line",
            "problem": f"expected {expected} fields, found {actual}",
        }
        for expected, actual, text in bad
    ]
    return pd.DataFrame(records)


def _find_lines(path: Path, texts: set[str]) -> dict[str, int]:
    # Only for the few malformed lines: the fast reader does not say where they were.
    found: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if text in texts and text not in found:
                found[text] = number
    return found


def _check_columns(path: Path, columns: list[str], spec: DatasetSpec, required: list[str]) -> None:
    missing = [c for c in required if c not in columns]
    if not missing:
        names = pd.Index(columns)
        duplicated = names[names.duplicated()].tolist()
        if duplicated:
            raise LoadError(f"{path}: header repeats column(s) {duplicated}")
        return
    hint = ""
    if len(columns) == 1:
        sniffed = _sniff_delimiter(columns[0])
        if sniffed and sniffed != spec.read.delimiter:
            hint = (
                f" The header was read as one column; the file looks {sniffed!r}-separated but "
                f"the spec's read.delimiter is {spec.read.delimiter!r}."
            )
    labels = [c for c in missing if c in spec.label_columns]
    label_note = f" Label column(s) {labels} are required to train." if labels else ""
    raise LoadError(
        f"{path}: missing column(s) {missing} declared in spec {spec.name!r}.{label_note}{hint}"
    )


def _sniff_delimiter(header: str) -> str | None:
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        return None


# -- row validation ------------------------------------------------------------------------------
def _row_errors(
    raw: pd.DataFrame,
    spec: DatasetSpec,
    labelled: bool,
    parsed: dict[str, Parsed],
    stamps: pd.Series | None,
    earlier: dict[str, int] | None,
) -> list[pd.DataFrame]:
    found = [_field_errors(raw, spec, name, parsed[name]) for name in spec.fields]
    if spec.id:
        found.append(_id_errors(raw[spec.id], spec.id, earlier))
    if spec.timestamp:
        unreadable = (raw[spec.timestamp].str.strip() == "") | stamps.isna()
        found.append(
            _errors(
                raw[spec.timestamp], unreadable, spec.timestamp, "bad timestamp", "not a date/time"
            )
        )
    for label in (spec.labels.accepted, spec.labels.sql) if labelled else ():
        if label is not None:
            found.append(_label_errors(raw[label.column], label))
    return found


def _field_errors(raw: pd.DataFrame, spec: DatasetSpec, name: str, parsed: Parsed) -> pd.DataFrame:
    field_spec = spec.fields[name]
    if not parsed.bad.any():
        return _empty_errors()
    problem = {
        "numeric": "not a number" + _range_text(field_spec.min, field_spec.max),
        "boolean": "not a yes/no value (true/false, yes/no, 1/0)",
    }.get(field_spec.type.value, "unreadable value")
    value = raw[name] if not field_spec.is_personal else pd.Series("<redacted>", index=raw.index)
    return _errors(value, parsed.bad, name, f"bad {field_spec.type.value}", problem)


def _range_text(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f" in [{'' if low is None else f'{low:g}'}, {'' if high is None else f'{high:g}'}]"


def _id_errors(ids: pd.Series, column: str, earlier: dict[str, int] | None) -> pd.DataFrame:
    """Missing and repeated ids. `earlier`: ids of these rows that earlier chunks of a stream
    had, with the row each was first seen at (see _SeenIds)."""
    stripped = ids.str.strip()
    empty = (stripped == "").to_numpy()
    repeat = stripped.duplicated(keep="first").to_numpy() & ~empty
    before = _seen_before(stripped, earlier) if earlier else None
    duplicate = repeat if before is None else repeat | (before > 0)
    if not duplicate.any():  # the usual case: no need to find where each id was first seen
        return _errors(ids, empty, column, "missing id", "missing lead id")
    row_numbers = pd.Series(ids.index + 1, index=ids.index)
    first_row = row_numbers.groupby(stripped.to_numpy()).transform("min").to_numpy()
    if before is not None:
        first_row = np.where(before > 0, before, first_row)
    problem = pd.Series(first_row.astype(str), index=ids.index)
    problem = ("duplicate lead id (first seen at row " + problem + ")").to_numpy()
    return pd.concat(
        [
            _errors(ids, empty, column, "missing id", "missing lead id"),
            _errors(ids, duplicate, column, "duplicate id", problem),
        ],
        ignore_index=True,
    )


def _seen_before(stripped: pd.Series, earlier: dict[str, int]) -> np.ndarray:
    """Per row, the row an earlier chunk first had its id at (0: not seen; never a blank id)."""
    return np.fromiter(
        (earlier.get(i, 0) for i in stripped.tolist()), dtype=np.int64, count=len(stripped)
    )


def _label_errors(values: pd.Series, label: LabelSpec) -> pd.DataFrame:
    known = {*label.positive, *label.negative, *label.undecided}
    unknown = ~values.str.strip().isin(known)
    expected = ", ".join(repr(v) for v in sorted(known))
    return _errors(
        values,
        unknown.to_numpy(),
        label.column,
        "unknown label",
        f"unknown label value (expected one of {expected})",
    )


def _errors(
    values: pd.Series, mask: np.ndarray, column: str, kind: str, problem: str | np.ndarray
) -> pd.DataFrame:
    """One error record per masked row; `problem` is one text or one per row."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return _empty_errors()
    rows = values.index[mask] + 1
    return pd.DataFrame(
        {
            "row": rows,
            "line": rows + 1,
            "column": column,
            "value": values[mask].astype(str).str.slice(0, 80).to_numpy(),
            "problem_kind": kind,
            "problem": problem[mask] if isinstance(problem, np.ndarray) else problem,
        }
    )


_NO_ERRORS = pd.DataFrame(columns=["row", "line", "column", "value", "problem_kind", "problem"])


def _empty_errors() -> pd.DataFrame:
    # Asked for once a field a chunk; copying an empty frame costs a tenth of building one.
    return _NO_ERRORS.copy()


def _with_lead_ids(errors: pd.DataFrame, raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    errors = errors.copy()
    if spec.id and len(errors):
        # Only the erring rows' ids: the whole column as Python objects cost 5 ms a chunk.
        known = errors["row"].notna().to_numpy()
        at = errors["row"][known].to_numpy(dtype=np.int64) - 1 - _first_index(raw)
        ids = np.full(len(errors), None, dtype=object)
        ids[known] = raw[spec.id].iloc[at].to_numpy()
        errors["lead_id"] = ids.tolist()
    else:
        errors["lead_id"] = errors["row"]
    return errors


def _kept_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """`frame[keep]`. When a few rows go from a file's text columns, the stretches between them
    are joined as Arrow slices, which share the file's buffers instead of copying every cell."""
    dropped = np.flatnonzero(~keep)
    arrow_text = all(isinstance(d, pd.StringDtype) and d.storage == "pyarrow" for d in frame.dtypes)
    if len(dropped) > _MAX_SLICES or not keep.any() or not arrow_text:
        return frame[keep]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    starts = np.concatenate([[0], dropped + 1])
    ends = np.concatenate([dropped, [len(frame)]])
    pieces = [table.slice(s, e - s) for s, e in zip(starts, ends, strict=True) if e > s]
    kept = pa.concat_tables(pieces).to_pandas()
    kept.index = frame.index[keep]
    return kept


# -- outcome of the check ------------------------------------------------------------------------
def _blank_columns(raw: pd.DataFrame, spec: DatasetSpec, labelled: bool) -> set[str]:
    """The fields missing, and the label columns undecided, in every row of `raw`."""
    blank = {name for name in spec.fields if _all_in(raw[name], spec.missing_markers(name))}
    for label in (spec.labels.accepted, spec.labels.sql) if labelled else ():
        if label is not None and _all_in(raw[label.column], label.undecided):
            blank.add(label.column)
    return blank


def _warnings(blank: set[str], spec: DatasetSpec) -> list[str]:
    warnings = [
        f"column {name!r} is empty in every row: it carries no signal"
        for name in spec.fields
        if name in blank
    ]
    for label in (spec.labels.accepted, spec.labels.sql):
        if label is not None and label.column in blank:
            warnings.append(f"label column {label.column!r} has no decided outcome in any row")
    return warnings


def _all_in(values: pd.Series, allowed: frozenset[str] | tuple[str, ...]) -> bool:
    """Whether every stripped cell is one of `allowed`; the first rows usually settle it."""
    head = values.iloc[:1000]
    return bool(head.str.strip().isin(allowed).all() and values.str.strip().isin(allowed).all())


def _refusal(path: Path, report: LoadReport, spec: DatasetSpec) -> str:
    share = report.rows_rejected / report.rows_read
    sample = report.errors.head(_SAMPLE_ERRORS)
    lines = [_describe(path, e) for e in sample.itertuples()]
    by_column = report.errors.groupby("column", dropna=False).size().sort_values(ascending=False)
    counts = ", ".join(
        f"{c if isinstance(c, str) else 'malformed lines'}: {n}"
        for c, n in by_column.head(8).items()
    )
    return (
        f"{path}: refused: {report.rows_rejected} of {report.rows_read} rows "
        f"({share:.0%}) fail validation, more than max_bad_row_fraction "
        f"{spec.max_bad_row_fraction:.0%}. Problems by column: {counts}. First problems:\n  "
        + "\n  ".join(lines)
    )


def _describe(path: Path, error: object) -> str:
    where = (
        f"row {int(error.row)} (line {int(error.line)})"
        if pd.notna(error.row)
        else (f"line {int(error.line)}" if pd.notna(error.line) else "a malformed line")
    )
    column = f", column {error.column!r}" if isinstance(error.column, str) else ""
    value = f": {error.value!r}" if isinstance(error.value, str) else ""
    return f"{path.name}, {where}{column}{value}: {error.problem}"


def describe_errors(report: LoadReport, limit: int = _SAMPLE_ERRORS) -> list[str]:
    """The first problems in words, each naming file, row, line and column."""
    return [_describe(Path(report.path), e) for e in report.errors.head(limit).itertuples()]


def _write_rejects(errors: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    errors.reindex(columns=_REJECT_COLUMNS).to_csv(path, index=False)
    return path


def _label(values: pd.Series, label: LabelSpec) -> pd.Series:
    stripped = values.str.strip()
    out = pd.Series(np.nan, index=values.index)
    out[stripped.isin(label.positive)] = 1.0
    out[stripped.isin(label.negative)] = 0.0
    return out


def _version(path: Path) -> tuple[int, int, int]:
    """What changes when a file is written: its inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
