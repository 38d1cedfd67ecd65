"""Load a leads file and validate it against the spec.

Every problem names the file, the row (1 = first data row), the file line and the column. Rows that
fail are never dropped silently: they are counted, reported and written to a rejects file (with
personal values redacted) so they can be fixed at the source; a file that is mostly bad is refused.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from models.features import Parsed, assemble_clean, parse_field, parse_timestamps
from models.spec import DatasetSpec, LabelSpec

log = logging.getLogger(__name__)

_REJECT_COLUMNS = ["row", "line", "lead_id", "column", "value", "problem"]
_SAMPLE_ERRORS = 10
_MAX_SLICES = 2000  # rejected rows up to which the kept rows are joined as slices (_kept_rows)


class LoadError(ValueError):
    """The file cannot be used at all; the message says where and why."""


@dataclass
class LoadReport:
    path: str
    sha256: str
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
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    # hashlib lets go of the GIL, so the file is hashed on the other core while it is parsed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return _load(path, spec, rejects_path, labelled, pool.submit(_sha256, path))


def _load(
    path: Path,
    spec: DatasetSpec,
    rejects_path: Path | None,
    labelled: bool,
    sha256: Future[str],
) -> Leads:
    required = spec.required_columns if labelled else spec.lead_columns
    raw, columns, bad_lines = _read(path, spec, required)
    _check_columns(path, columns, spec, required)
    parsed = {
        name: parse_field(raw[name], f, spec.missing_markers(name))
        for name, f in spec.fields.items()
    }
    stamps = parse_timestamps(raw[spec.timestamp]) if spec.timestamp else None
    row_errors = _row_errors(raw, spec, labelled, parsed, stamps)
    errors = pd.concat([bad_lines, *row_errors], ignore_index=True)
    errors = _with_lead_ids(errors, raw, spec)
    rows_read = len(raw) + len(bad_lines)
    rejected_rows = errors.loc[errors["row"].notna(), "row"].astype(int).unique()
    rows_rejected = len(rejected_rows) + len(bad_lines)
    report = LoadReport(
        path=str(path),
        sha256=sha256.result(),
        rows_read=rows_read,
        rows_rejected=rows_rejected,
        errors=errors,
        warnings=_warnings(raw, spec, labelled),
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
    # Only the columns the spec uses travel on: at a million rows the rest is most of the memory.
    clean = assemble_clean(parsed, stamps, spec, raw.index)
    if not len(rejected_rows):
        return Leads(frame=raw[required], clean=clean, report=report)
    keep = np.ones(len(raw), dtype=bool)
    keep[rejected_rows - 1] = False
    return Leads(frame=_kept_rows(raw[required], keep), clean=clean[keep], report=report)


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
def _read(
    path: Path, spec: DatasetSpec, wanted: list[str]
) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """The rows as text (of a CSV, only the `wanted` columns it has), the names of all the file's
    columns, and the lines that do not split into as many fields as the header."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame = frame.astype({c: "str" for c in frame.columns if frame[c].dtype == object})
        return frame.reset_index(drop=True), list(frame.columns), _empty_errors()
    bad: list[tuple[int, int, str]] = []

    def keep_bad_line(row: object) -> str:
        bad.append((row.expected_columns, row.actual_columns, row.text))  # type: ignore[attr-defined]
        return "skip"

    try:
        # pandas reads the header (so the columns are named as pandas names them: duplicates
        # as "x.1", blanks as "Unnamed: 3"); Arrow reads the rows, converting only the columns
        # the spec uses, and with the header row itself as row 0 so the names can't clash.
        header = pd.read_csv(
            path, sep=spec.read.delimiter, encoding=spec.read.encoding, nrows=0, dtype=str
        ).columns
        columns = [str(c).strip() for c in header]
        present = [c for c in dict.fromkeys(wanted) if c in columns]
        if len(present) < len(set(wanted)):  # refused for its columns: its rows are not needed
            return pd.DataFrame(columns=present), columns, _empty_errors()
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding=spec.read.encoding, autogenerate_column_names=True
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=spec.read.delimiter, invalid_row_handler=keep_bad_line
            ),
            convert_options=pacsv.ConvertOptions(
                # pandas keeps text as large_string: read so, to_pandas need not copy every cell.
                default_column_type=pa.large_string(),
                include_columns=[f"f{columns.index(c)}" for c in present],
            ),
        )
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise LoadError(
            f"{path}: cannot be read as {spec.read.encoding} text separated by "
            f"{spec.read.delimiter!r}: {exc}"
        ) from exc
    frame = table.slice(1).rename_columns(present).to_pandas()
    return frame, columns, _bad_line_errors(path, bad)


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
) -> list[pd.DataFrame]:
    found = [_field_errors(raw, spec, name, parsed[name]) for name in spec.fields]
    if spec.id:
        found.append(_id_errors(raw[spec.id], spec.id))
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


def _id_errors(ids: pd.Series, column: str) -> pd.DataFrame:
    stripped = ids.str.strip()
    empty = (stripped == "").to_numpy()
    duplicate = (stripped.duplicated(keep="first")).to_numpy() & ~empty
    if not duplicate.any():  # the usual case: no need to find where each id was first seen
        return _errors(ids, empty, column, "missing id", "missing lead id")
    row_numbers = pd.Series(np.arange(1, len(ids) + 1), index=ids.index)
    first_row = row_numbers.groupby(stripped.to_numpy()).transform("min").astype(str)
    problem = ("duplicate lead id (first seen at row " + first_row + ")").to_numpy()
    return pd.concat(
        [
            _errors(ids, empty, column, "missing id", "missing lead id"),
            _errors(ids, duplicate, column, "duplicate id", problem),
        ],
        ignore_index=True,
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


def _empty_errors() -> pd.DataFrame:
    return pd.DataFrame(columns=["row", "line", "column", "value", "problem_kind", "problem"])


def _with_lead_ids(errors: pd.DataFrame, raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    errors = errors.copy()
    if spec.id and len(errors):
        rows = errors["row"]
        ids = raw[spec.id].to_numpy()
        errors["lead_id"] = [ids[int(r) - 1] if pd.notna(r) else None for r in rows]
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
def _warnings(raw: pd.DataFrame, spec: DatasetSpec, labelled: bool) -> list[str]:
    warnings = []
    for name in spec.fields:
        if _all_in(raw[name], spec.missing_markers(name)):
            warnings.append(f"column {name!r} is empty in every row: it carries no signal")
    for label in (spec.labels.accepted, spec.labels.sql) if labelled else ():
        if label is not None and _all_in(raw[label.column], label.undecided):
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
    counts = ", ".join(f"{c}: {n}" for c, n in by_column.head(8).items())
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
