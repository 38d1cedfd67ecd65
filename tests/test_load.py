"""Loading and validating files: bad input gets a message naming file, row and column; no row is
dropped without being counted and written to the rejects file."""

from __future__ import annotations

import io
import itertools

import pandas as pd
import pytest

from pipeline.load import LeadStream, LoadError, describe_errors, label_values, load_leads
from tests.conftest import TINY_HEADER

GOOD_ROWS = [
    "L1,2025-01-02 10:00:00,software,120,true,ann@acme.com,accepted",
    "L2,2025-01-03 10:00:00,retail,8,false,bob@gmail.com,rejected",
    "L3,2025-01-04 10:00:00,Select,,yes,,pending",
    "L4,2025-01-05 10:00:00,SOFTWARE,40,no,cy@corp.io,",
]


def _csv(rows: list[str], header: str = TINY_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def test_good_file_loads_every_row(write_file, tiny_spec, tmp_path) -> None:
    leads = load_leads(write_file("ok.csv", _csv(GOOD_ROWS)), tiny_spec, tmp_path / "rej.csv")
    assert leads.report.rows_read == 4 and leads.report.rows_rejected == 0
    assert len(leads.frame) == 4 and not (tmp_path / "rej.csv").exists()
    assert len(leads.report.sha256) == 64
    accepted, sql = label_values(leads.frame, tiny_spec)
    # pending and empty are undecided: unlabelled, never counted as rejections
    assert accepted.tolist()[:2] == [1.0, 0.0] and accepted.iloc[2:].isna().all()
    assert sql is None


def test_bad_rows_are_rejected_counted_and_written(write_file, tiny_spec, tmp_path) -> None:
    rows = [
        *GOOD_ROWS,
        "L5,2025-01-06 10:00:00,retail,-3,true,d@x.com,accepted",
        "L6,2025-01-07 10:00:00,retail,12,maybe,e@x.com,accepted",
    ]
    rejects = tmp_path / "rejects.csv"
    leads = load_leads(write_file("some-bad.csv", _csv(rows)), tiny_spec, rejects)
    assert leads.report.rows_rejected == 2 and len(leads.frame) == 4
    assert leads.frame["lead_id"].tolist() == ["L1", "L2", "L3", "L4"]
    written = pd.read_csv(rejects)
    assert written[["row", "line", "lead_id", "column"]].values.tolist() == [
        [5, 6, "L5", "employees"],
        [6, 7, "L6", "demo_requested"],
    ]
    messages = describe_errors(leads.report)
    assert (
        messages[0]
        == "some-bad.csv, row 5 (line 6), column 'employees': '-3': not a number in [0, ]"
    )
    assert "not a yes/no value" in messages[1]


def test_wrong_delimiter_is_explained(write_file, tiny_spec) -> None:
    text = _csv(GOOD_ROWS).replace(",", ";")
    with pytest.raises(LoadError) as err:
        load_leads(write_file("semi.csv", text), tiny_spec)
    message = str(err.value)
    assert "semi.csv" in message and "missing column(s)" in message
    assert "looks ';'-separated" in message and "read.delimiter is ','" in message


def test_missing_label_column(write_file, tiny_spec) -> None:
    header = TINY_HEADER.removesuffix(",status")
    rows = [r.rsplit(",", 1)[0] for r in GOOD_ROWS]
    with pytest.raises(LoadError, match=r"nolabel.csv: missing column\(s\) \['status'\].*Label"):
        load_leads(write_file("nolabel.csv", _csv(rows, header)), tiny_spec)


def test_unknown_label_values_are_rejected_by_row(write_file, tiny_spec, tmp_path) -> None:
    rows = [*GOOD_ROWS, "L5,2025-01-06 10:00:00,retail,3,true,d@x.com,maybe"]
    leads = load_leads(write_file("labels.csv", _csv(rows)), tiny_spec, tmp_path / "r.csv")
    assert leads.report.rows_rejected == 1
    (message,) = describe_errors(leads.report)
    assert "row 5 (line 6), column 'status': 'maybe': unknown label value" in message
    assert "'accepted'" in message and "'rejected'" in message


def test_mostly_bad_file_is_refused(write_file, tiny_spec) -> None:
    rows = [
        f"L{10 + i},2025-01-02,retail,lots,true,a@b.com,accepted" for i in range(5)
    ] + GOOD_ROWS[:1]
    with pytest.raises(LoadError) as err:
        load_leads(write_file("junk.csv", _csv(rows)), tiny_spec)
    message = str(err.value)
    assert "refused: 5 of 6 rows (83%)" in message
    assert "employees: 5" in message
    assert "junk.csv, row 1 (line 2), column 'employees': 'lots'" in message


def test_all_empty_feature_column_warns(write_file, tiny_spec) -> None:
    rows = [",".join([*r.split(",")[:5], "", *r.split(",")[6:]]) for r in GOOD_ROWS]
    leads = load_leads(write_file("noemail.csv", _csv(rows)), tiny_spec)
    assert leads.report.rows_rejected == 0
    assert leads.report.warnings == ["column 'email' is empty in every row: it carries no signal"]


def test_all_undecided_label_warns(write_file, tiny_spec) -> None:
    rows = [r.rsplit(",", 1)[0] + ",pending" for r in GOOD_ROWS]
    leads = load_leads(write_file("undecided.csv", _csv(rows)), tiny_spec)
    assert "label column 'status' has no decided outcome in any row" in leads.report.warnings


def test_duplicated_ids_keep_the_first(write_file, tiny_spec, tmp_path) -> None:
    rows = [*GOOD_ROWS, "L2,2025-01-09 10:00:00,retail,9,true,z@x.com,accepted"]
    leads = load_leads(write_file("dups.csv", _csv(rows)), tiny_spec, tmp_path / "r.csv")
    assert leads.report.rows_rejected == 1
    assert leads.frame["lead_id"].tolist() == ["L1", "L2", "L3", "L4"]
    assert leads.frame.loc[leads.frame.lead_id == "L2", "industry"].item() == "retail"
    (message,) = describe_errors(leads.report)
    assert (
        "row 5 (line 6), column 'lead_id': 'L2': duplicate lead id (first seen at row 2)" in message
    )


def test_malformed_lines_are_counted_not_dropped(write_file, tiny_spec, tmp_path) -> None:
    rows = [*GOOD_ROWS, "L5,2025-01-06 10:00:00,retail,3,true,d@x.com,accepted,EXTRA"]
    leads = load_leads(write_file("ragged.csv", _csv(rows)), tiny_spec, tmp_path / "r.csv")
    assert leads.report.rows_read == 5 and leads.report.rows_rejected == 1
    (message,) = describe_errors(leads.report)
    assert message == "ragged.csv, line 6: expected 7 fields, found 8"


def test_bad_timestamp_and_personal_values_redacted(write_file, tiny_spec, tmp_path) -> None:
    spec = tiny_spec.model_copy(
        update={
            "fields": {
                **tiny_spec.fields,
                "employees": tiny_spec.fields["employees"].model_copy(update={"personal": True}),
            }
        }
    )
    rows = [*GOOD_ROWS, "L5,yesterday-ish,retail,-1,true,d@x.com,accepted"]
    leads = load_leads(write_file("ts.csv", _csv(rows)), spec, tmp_path / "r.csv")
    messages = " | ".join(describe_errors(leads.report))
    assert "column 'mql_at': 'yesterday-ish': not a date/time" in messages
    assert "column 'employees': '<redacted>'" in messages and "-1" not in messages


def test_missing_file(tiny_spec, tmp_path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        load_leads(tmp_path / "absent.csv", tiny_spec)


def test_kept_rows_keep_their_row_numbers_and_the_header_names(write_file, tiny_spec) -> None:
    # A few rejected rows in a long file: the kept rows are joined from slices of the read text.
    bad = {3, 7}
    rows = [
        f"L{i},2025-01-02 10:00:00,retail,{-1 if i in bad else i},true,a{i}@x.com,accepted,a,b"
        for i in range(1, 21)
    ]
    path = write_file("few-bad.csv", _csv(rows, TINY_HEADER + ",notes,notes"))
    leads = load_leads(path, tiny_spec)
    kept = [i - 1 for i in range(1, 21) if i not in bad]
    assert leads.report.rows_rejected == 2
    assert leads.frame.index.tolist() == leads.clean.index.tolist() == kept
    assert leads.report.ignored_columns == ["notes", "notes.1"]  # as pandas names a repeat
    everything = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(leads.frame, everything.loc[kept, leads.frame.columns])


# -- the stream (batch scoring reads files this way) ---------------------------------------------
MIXED_ROWS = [
    *GOOD_ROWS,
    "L5,2025-01-06 10:00:00,retail,-3,true,d@x.com,accepted",  # bad number
    "L2,2025-01-07 10:00:00,retail,9,true,z@x.com,accepted",  # repeats row 2's id
    "L7,2025-01-08 10:00:00,retail,3,true,d@x.com,accepted,EXTRA",  # malformed line
    ",2025-01-09 10:00:00,media,5,no,,rejected",  # no id
    "L9,soon,media,5,maybe,,pending",  # bad time and bad yes/no
    "L10,2025-01-10 10:00:00,media,7,no,f@x.com,won",  # unknown label
    "L2,2025-01-11 10:00:00,media,7,no,g@x.com,accepted",  # row 2's id again
    "L11,2025-01-12 10:00:00,energy,70,yes,h@x.com,accepted",
    "L11,2025-01-13 10:00:00,energy,70,yes,h@x.com,accepted",  # repeats the row before
    *(f"L{20 + i},2025-02-0{i + 1} 10:00:00,retail,{i},no,a@x.com,rejected" for i in range(9)),
]


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 1000])
def test_stream_checks_like_the_whole_file(
    write_file, tiny_spec, tmp_path, chunk_rows: int, labelled: bool
) -> None:
    """Chunk by chunk, the stream keeps, rejects, reports and warns exactly as load_leads,
    including ids repeated across chunks and the file-wide warnings."""
    rows = [",".join([*r.split(",")[:5], "", *r.split(",")[6:]]) for r in MIXED_ROWS]
    path = write_file("mixed.csv", _csv(rows))
    whole = load_leads(path, tiny_spec, tmp_path / "whole.csv", labelled=labelled)
    stream = LeadStream(path, tiny_spec, tmp_path / "stream.csv", labelled, chunk_rows=chunk_rows)
    chunks = list(stream)
    assert len(chunks) == -(-(len(rows) - 1) // chunk_rows)  # every row but the malformed line
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in chunks]), whole.frame)
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    report = stream.report
    assert (report.rows_read, report.rows_rejected) == (len(rows), whole.report.rows_rejected)
    assert (
        report.warnings
        == whole.report.warnings
        == ["column 'email' is empty in every row: it carries no signal"]
    )
    assert report.sha256 == whole.report.sha256
    assert describe_errors(report, 100) == describe_errors(whole.report, 100)
    rejects = (tmp_path / "stream.csv").read_text()
    assert rejects == (tmp_path / "whole.csv").read_text()
    described = describe_errors(report, 100)
    # Ids repeated in later chunks; rows after the malformed line 8 are one line further on.
    assert (
        "mixed.csv, row 10 (line 12), column 'lead_id': 'L2': duplicate lead id (first seen "
        "at row 2)"
    ) in described
    assert "mixed.csv, line 8: expected 7 fields, found 8" in described
    assert described[-1] == (
        "mixed.csv, row 12 (line 14), column 'lead_id': 'L11': duplicate lead id (first seen at "
        "row 11)"
    )


def _identity(chunk):
    return chunk


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 1000])
def test_stream_in_worker_processes_checks_like_the_whole_file(
    write_file, tiny_spec, tmp_path, chunk_rows: int
) -> None:
    """Worker processes that read their own parts of the file keep, reject and report exactly
    as load_leads: a part sent before the rows ahead of it were read (ids repeated across parts,
    a malformed line that is no row) is checked again with what it could not know."""
    path = write_file("mixed.csv", _csv(MIXED_ROWS))
    whole = load_leads(path, tiny_spec, tmp_path / "whole.csv")
    stream = LeadStream(path, tiny_spec, tmp_path / "stream.csv", chunk_rows=chunk_rows)
    chunks = list(stream.map(_identity, processes=2))
    assert stream._in_parts and (len(chunks) > 1 or chunk_rows == 1000)
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in chunks]), whole.frame)
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    assert stream.report.summary() | {"rejects_path": None} == whole.report.summary() | {
        "rejects_path": None
    }
    assert describe_errors(stream.report, 100) == describe_errors(whole.report, 100)
    assert (tmp_path / "stream.csv").read_text() == (tmp_path / "whole.csv").read_text()
    assert "mixed.csv, line 8: expected 7 fields, found 8" in describe_errors(stream.report, 100)


def test_parts_of_a_file_are_whole_rows_however_it_quotes(tmp_path, tiny_spec) -> None:
    """A part ends only where a row does: never inside a quoted value, which may hold line
    breaks, delimiters and doubled quotes; a quote inside an unquoted value is text. Line ends
    may be CRLF, blank lines are no rows and the last line needs no line break."""
    from pipeline.csvparts import header_and_parts, read_part
    from pipeline.load import _arrow_options, _columns

    rows = []
    for i in range(40):
        notes = [
            '"call back\nafter Q3, ""urgent"""',
            '5" screen',
            '""',
            '"a\r\nb"',
            '"say ""hi""\nthere"',
        ][i % 5]
        rows.append(f"L{i},2025-01-02 10:00:00,retail,{i},true,a{i}@x.com,accepted,{notes}")
    text = "\r\n".join([TINY_HEADER + ",notes", *rows[:20], "", *rows[20:]])  # no final break
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.encode())
    columns = _columns(path, tiny_spec)
    for part_bytes in (1, 7, 50, 300, 10_000):
        header, parts = header_and_parts(path, ",", part_bytes)
        parts = list(parts)
        assert header == (TINY_HEADER + ",notes\r\n").encode()
        assert parts[0].offset == len(header) and parts[-1].offset + parts[-1].size == len(text)
        assert all(a.offset + a.size == b.offset for a, b in itertools.pairwise(parts))
        read = [
            read_part(path, header, p, _arrow_options(tiny_spec, columns, columns, []))
            for p in parts
        ]
        assert [len(t) - 1 for t in read] == [p.lines for p in parts]  # the header is row 0
        notes = [n for t in read for n in t.column(columns.index("notes")).to_pylist()[1:]]
        assert len(notes) == 40 and notes[0] == 'call back\nafter Q3, "urgent"'
        assert notes[1:5] == ['5" screen', "", "a\r\nb", 'say "hi"\nthere']

    stream = LeadStream(path, tiny_spec, chunk_rows=3)
    chunks = list(stream.map(_identity, processes=2))
    whole = load_leads(path, tiny_spec)
    assert len(whole.frame) == 40 and len(chunks) > 5
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    assert stream.report.rows_read == 40 and stream.report.rows_rejected == 0


@pytest.mark.parametrize(
    ("name", "encoding", "in_parts"),
    [
        ("leads.csv", "utf-8", True),
        ("leads.csv", "UTF8", True),
        ("leads.csv", "latin-1", False),  # read here, then handed to the workers
        ("leads.csv.gz", "utf-8", False),
    ],
)
def test_stream_in_worker_processes_reads_what_it_cannot_cut_here(
    tmp_path, tiny_spec, name: str, encoding: str, in_parts: bool
) -> None:
    spec = tiny_spec.model_copy(
        update={"read": tiny_spec.read.model_copy(update={"encoding": encoding})}
    )
    rows = [*GOOD_ROWS, "L5,2025-01-06 10:00:00,café,3,true,d@x.com,accepted"]
    frame = pd.read_csv(io.StringIO(_csv(rows)), dtype=str, keep_default_na=False)
    path = tmp_path / name
    frame.to_csv(path, index=False, encoding=encoding)
    stream = LeadStream(path, spec, chunk_rows=2)
    assert stream._in_parts == in_parts
    chunks = list(stream.map(_identity, processes=2))
    whole = load_leads(path, spec)
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    assert whole.frame["industry"].iloc[-1] == "café"


@pytest.mark.parametrize("processes", [0, 2])
def test_a_file_written_while_it_is_read_is_refused(
    write_file, tiny_spec, tmp_path, processes: int
) -> None:
    """Chunks are read at different times (by the workers, later than the scan): a file
    that changes meanwhile (an export still being written) is refused, not half read."""
    path = write_file("growing.csv", _csv(GOOD_ROWS))

    def append_once(chunk):
        if chunk.frame.index[0] == 0:
            with path.open("a") as handle:
                handle.write("L9,2025-01-09 10:00:00,retail,5,true,z@x.com,accepted\n")
        return chunk

    stream = LeadStream(path, tiny_spec, chunk_rows=2)
    with pytest.raises(LoadError, match=r"growing\.csv: the file changed while it was being read"):
        if processes:
            list(stream.map(append_once, processes))
        else:
            for chunk in stream:
                append_once(chunk)
    assert stream.report is None


def test_stream_reads_parquet_in_chunks(tmp_path, write_file, tiny_spec) -> None:
    path = tmp_path / "leads.parquet"
    text = pd.read_csv(write_file("ok.csv", _csv(GOOD_ROWS)), dtype=str, keep_default_na=False)
    text.to_parquet(path)
    stream = LeadStream(path, tiny_spec, chunk_rows=3)
    chunks = list(stream)
    whole = load_leads(path, tiny_spec)
    assert [len(c.frame) for c in chunks] == [3, 1]
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    assert stream.report.rows_read == 4 and stream.report.rows_rejected == 0


def test_stream_refuses_a_mostly_bad_file_after_its_last_chunk(write_file, tiny_spec) -> None:
    rows = [f"L{10 + i},2025-01-02,retail,lots,true,a@b.com,accepted" for i in range(5)]
    stream = LeadStream(write_file("junk.csv", _csv(GOOD_ROWS[:1] + rows)), tiny_spec, chunk_rows=2)
    handed = []
    with pytest.raises(LoadError, match=r"refused: 5 of 6 rows \(83%\)"):
        for chunk in stream:
            handed.append(len(chunk.frame))
    assert handed == [1, 0, 0] and stream.report is None


def test_stream_of_a_file_with_no_rows(write_file, tiny_spec) -> None:
    with pytest.raises(LoadError, match="has a header but no rows"):
        list(LeadStream(write_file("empty.csv", TINY_HEADER + "\n"), tiny_spec))


def test_stream_estimates_its_rows_before_reading(tmp_path, write_file, tiny_spec) -> None:
    short = write_file("short.csv", _csv(GOOD_ROWS))
    assert LeadStream(short, tiny_spec).estimated_rows() == 4  # read whole: exact
    # Longer than the sample read: the file's size over its first lines' length.
    many = [
        f"L{i},2025-01-02 10:00:00,software,{i % 500},true,ann@acme.com,accepted"
        for i in range(60_000)
    ]
    long = write_file("long.csv", _csv(many))
    assert long.stat().st_size > 2 * (1 << 20)
    assert abs(LeadStream(long, tiny_spec).estimated_rows() - 60_000) < 600  # within 1 %
    path = tmp_path / "leads.parquet"
    pd.read_csv(short, dtype=str, keep_default_na=False).to_parquet(path)
    assert LeadStream(path, tiny_spec).estimated_rows() == 4
    assert LeadStream(tmp_path / "leads.csv.gz", tiny_spec).estimated_rows() is None


def test_timestamps_no_single_resolution_holds_still_load(write_file, tiny_spec) -> None:
    """One cell with nanoseconds, another in the year 3000: pandas refuses such a column even
    when told to coerce; the loader reads it (to the microsecond) instead of failing the file."""
    rows = [
        "L1,2026-01-01T00:00:00.000000001,software,120,true,ann@acme.com,accepted",
        "L2,3000-01-01,retail,8,false,bob@gmail.com,rejected",
        "L3,2262-04-11T23:47:16.854775807,retail,8,false,cy@corp.io,rejected",
    ]
    leads = load_leads(write_file("far.csv", _csv(rows)), tiny_spec)
    assert leads.report.rows_rejected == 0
    assert leads.clean["mql_weekday"].tolist() == [3.0, 2.0, 4.0]


@pytest.mark.parametrize("seed", range(6))
def test_ids_of_earlier_chunks_are_found_whether_or_not_any_repeats(seed) -> None:
    """The stream's memory of ids answers as a plain record of every id's first row would:
    nothing while no id repeats, then each repeat of an earlier chunk's id with its first row
    (stripped; blank ids are no ids; a repeat within a chunk is that chunk's own)."""
    import numpy as np
    import pyarrow as pa

    from pipeline.load import _SeenIds

    rng = np.random.default_rng(seed)
    pool = [f"L{i}" for i in range(300)] + [" L7 ", ""]
    # Early chunks of distinct ids, so that the memory starts with no repeat to find.
    fresh = iter(rng.permutation(300).tolist())
    chunks = [[f"L{next(fresh)}" for _ in range(20)] for _ in range(int(rng.integers(0, 4)))]
    chunks += [rng.choice(pool, size=int(rng.integers(1, 40))).tolist() for _ in range(8)]
    seen, first_row, start = _SeenIds("lead_id", ".csv"), {}, 0
    for ids in chunks:
        expected = {}
        for row, value in enumerate((i.strip() for i in ids), start=start + 1):
            if value and first_row.setdefault(value, row) <= start:
                expected[value] = first_row[value]
        assert seen.earlier(pa.table({"lead_id": ids}), start) == expected
        start += len(ids)
    assert seen.seen is None  # the pool repeats itself: the memory switched to first rows
