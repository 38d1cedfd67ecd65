"""A CSV file cut into parts of whole rows, which worker processes read and parse on their own.

Parsing a big file in one process and sending each chunk's columns to a worker cost that process
about half of what a worker spends on the chunk's checks and scores, on a 2-core machine where
every CPU-second counts: the text, pickled and piped, is about 1.6 times the file. Here the one
process only finds where rows end, and each worker reads its part of the file from the page
cache, with the header line in front so Arrow reads the part exactly as it reads the whole file.

A row ends at a line break outside quotes, as Arrow's parser reads it: a quote opens a quoted
value only at the start of a field, a doubled quote inside one is a quote, and the value may hold
line breaks. So a part never cuts a quoted value in two, which also spares Arrow's own chunker
(that cuts at any line break and then gives up on such files) the question.
"""

from __future__ import annotations

import codecs
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from models.jit import njit

_FIRST_READ = 1 << 20  # bytes read to find the header's end; doubled while a row is longer


@dataclass(frozen=True)
class Part:
    """Bytes [offset, offset + size) of a file: whole rows, `lines` of them not empty (the rows
    Arrow will read, plus any malformed lines among them)."""

    offset: int
    size: int
    lines: int


def splittable(path: Path, encoding: str) -> bool:
    """Whether `path` can be cut by its bytes: an uncompressed CSV in UTF-8 (or ASCII), where a
    line break or quote byte is never part of another character."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return path.suffix == ".csv" and name in {"utf-8", "ascii"}


def header_and_parts(path: Path, delimiter: str, part_bytes: int) -> tuple[bytes, Iterator[Part]]:
    """The header row's bytes (with its line break) and the rest of the file as parts of about
    `part_bytes` each (more where one row is longer)."""
    separator = ord(delimiter)
    with path.open("rb") as handle:
        scanner = _Scanner(handle, separator)
        header_end, _ = scanner.cut(0, _FIRST_READ, rows_wanted=1)
    # The scan read the header from the file's start into its buffer.
    header = scanner.buffer[:header_end].tobytes()
    return header, _parts(path, header_end, max(part_bytes, 1), separator)


def read_part(path: Path, header: bytes, part: Part, options: dict[str, object]) -> pa.Table:
    """The part's rows as Arrow reads them with `options` (pyarrow.csv.read_csv's, which must
    read the header as row 0 and generate column names), the header row included."""
    buffer = bytearray(len(header) + part.size)
    buffer[: len(header)] = header
    with path.open("rb") as handle:
        handle.seek(part.offset)
        handle.readinto(memoryview(buffer)[len(header) :])
    if _utf8(buffer):
        # The values are pieces of valid UTF-8 cut at ASCII bytes, so valid themselves: Arrow need
        # not check each one (a sixth of its reading time; the whole part takes 1.6 ms for 26 MB).
        # A part that is not is read checking each value, which names the error as before.
        convert = copy.copy(options["convert_options"])
        convert.check_utf8 = False  # type: ignore[attr-defined]
        options = {**options, "convert_options": convert}
    return pacsv.read_csv(pa.py_buffer(buffer), **options)


def _utf8(data: bytearray) -> bool:
    """Whether `data` is valid UTF-8, checked by Arrow as one value."""
    bounds = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    whole = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), 1, [None, bounds, pa.py_buffer(data)]
    )
    try:
        whole.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _parts(path: Path, start: int, part_bytes: int, separator: int) -> Iterator[Part]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        scanner, offset = _Scanner(handle, separator), start
        while offset < size:
            end, lines = scanner.cut(offset, part_bytes, rows_wanted=0)
            yield Part(offset, end - offset, lines)
            offset = end


class _Scanner:
    """Finds where rows end in an open file, reading into one buffer it reuses."""

    def __init__(self, handle: BinaryIO, separator: int) -> None:
        self.handle, self.separator = handle, separator
        self.buffer = np.empty(0, dtype=np.uint8)

    def cut(self, offset: int, wanted: int, rows_wanted: int) -> tuple[int, int]:
        """From `offset` (a row's start), the end of the last whole row within `wanted` bytes
        (of the first `rows_wanted` rows, if > 0), and the non-empty lines before it; reads
        further where not one row ends in time. The file's end ends a row."""
        while True:
            if len(self.buffer) < wanted:
                self.buffer = np.empty(wanted, dtype=np.uint8)
            self.handle.seek(offset)
            read = self.handle.readinto(memoryview(self.buffer)[:wanted]) or 0
            final = read < wanted
            end, lines = _row_ends(self.buffer[:read], self.separator, final, rows_wanted)
            if end or final:
                return offset + end, lines
            wanted *= 2


@njit(nogil=True, cache=True)
def _row_ends(data, separator, final, rows_wanted):  # pragma: no cover - compiled; see tests
    """(bytes up to the end of the last row that ends in `data`, non-empty lines in them).
    `data` starts at a row's start; `final`: it runs to the file's end, which ends a row."""
    quote, newline, carriage = 34, 10, 13
    in_quotes = False
    lines = end = end_lines = line_start = 0
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        i += 1
        if c > quote:  # most bytes: neither a quote nor a line break
            continue
        if in_quotes:
            if c == quote:
                if i < n and data[i] == quote:
                    i += 1  # a doubled quote: one quote in the value
                else:
                    in_quotes = False
        elif c == quote:
            # A quote opens a value only at a field's start.
            in_quotes = i - 1 == line_start or data[i - 2] == separator
        elif c in (newline, carriage):
            if c == carriage and i < n and data[i] == newline:
                i += 1  # CRLF: one line break
            if data[line_start] not in (newline, carriage):  # not a blank line
                lines += 1
            line_start = end = i
            end_lines = lines
            if rows_wanted and lines >= rows_wanted:
                return end, end_lines
    if final:
        return n, lines + (n > line_start)
    return end, end_lines
