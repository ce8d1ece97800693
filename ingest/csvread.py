"""Stream a CSV file in blocks, giving every row, good or bad, its physical line number.

Fast path: pyarrow parses a block on all cores. Careful path: a block that is not valid UTF-8, in which
pyarrow meets a malformed row, or whose row count does not match its non-blank lines is read again with
Python's ``csv`` module, line by line, so each problem is pinned to its line and nothing is lost.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from harmmap.errors import DataFileError, Problem

BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 16 << 20


@dataclass(frozen=True)
class CsvSchema:
    """The columns a source expects: all required ones, and any of the optional ones."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # At least one of these groups of optional columns must be present in full (e.g. a coordinate pair).
    one_of: tuple[tuple[str, ...], ...] = ()
    # Columns checked for in the header but not read: the source derives them (a reject keeps its raw
    # line, so they are not lost).
    ignored: tuple[str, ...] = ()

    def check_header(self, path: Path, names: list[str]) -> None:
        """Refuse a header with missing, unexpected or repeated columns, naming each."""
        problems = [
            Problem(str(path), "line 1", name, "missing column")
            for name in self.required
            if name not in names
        ]
        if self.one_of and not any(all(c in names for c in group) for group in self.one_of):
            choices = " or ".join("(" + ", ".join(group) + ")" for group in self.one_of)
            problems.append(Problem(str(path), "line 1", "location", f"needs the columns {choices}"))
        allowed = set(self.required) | set(self.optional)
        problems += [
            Problem(str(path), "line 1", name, f"unexpected column; expected {list(self.required)}")
            for name in names
            if name not in allowed
        ]
        problems += [
            Problem(str(path), "line 1", name, "column appears more than once")
            for name in sorted({n for n in names if names.count(n) > 1})
        ]
        if problems:
            raise DataFileError(problems)


@dataclass(frozen=True)
class RowReject:
    """A row that could not be read as CSV at all."""

    line: int
    field: str
    kind: str
    reason: str
    raw: str


@dataclass
class Block:
    """Rows parsed from one block of the file."""

    columns: dict[str, pa.Array]
    lines: npt.NDArray[np.int64]
    rejects: list[RowReject] = field(default_factory=list)
    blank_lines: int = 0
    bytes_read: int = 0
    # Physical lines in the block, blank ones included.
    line_count: int = 0
    _data: bytes = b""
    _first_line: int = 0
    _bounds: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    @property
    def rows(self) -> int:
        """Rows parsed (not counting rejects)."""
        return len(self.lines)

    def line_bounds(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Where each physical line starts and ends in the block (the end excludes CR LF)."""
        if self._bounds is None:
            self._bounds = _line_bounds(self._data)
        return self._bounds

    def raw_lines(self, lines: npt.NDArray[np.int64]) -> list[str]:
        """The original text of the given physical lines, for keeping with a reject."""
        if not len(lines):
            return []
        starts, ends = self.line_bounds()
        index = lines - self._first_line
        return [
            self._data[s:e].decode("utf-8", errors="replace")
            for s, e in zip(starts[index], ends[index], strict=True)
        ]


def _line_bounds(data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines[:-1] + 1)).astype(np.int64)
    ends = newlines.astype(np.int64)
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - has_cr


class CsvFile:
    """A CSV file read as a header and a stream of blocks.

    ``schemas`` are the formats the source accepts (police.uk has two); the header picks one, and a header
    that fits none is refused with the problems of the closest.
    """

    def __init__(self, path: Path, schemas: Sequence[CsvSchema], block_bytes: int | None = None) -> None:
        self.path = path
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.header, self._body_offset = self._read_header()
        self.schema = _choose(path, schemas, self.header)
        self._read = [name for name in self.header if name not in self.schema.ignored]

    def _read_header(self) -> tuple[list[str], int]:
        with self.path.open("rb") as fh:
            first = fh.readline()
        offset = len(first)
        if first.startswith(BOM):
            first = first[len(BOM) :]
        try:
            text = first.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFileError(
                [
                    Problem(
                        str(self.path), "line 1", "header", f"is not UTF-8: {exc.reason} at byte {exc.start}"
                    )
                ]
            ) from None
        if not text.strip():
            raise DataFileError([Problem(str(self.path), "line 1", "header", "the file has no header")])
        names = [name.strip() for name in next(csv.reader([text]))]
        return names, offset

    def blocks(self) -> Iterator[Block]:
        """Blocks of whole lines, in file order."""
        line = 2
        with self.path.open("rb") as fh:
            fh.seek(self._body_offset)
            while True:
                data = fh.read(self.block_bytes)
                if not data:
                    return
                data += fh.readline()
                # Never cut a quoted value that holds a newline: extend until the quotes balance.
                while data.count(b'"') % 2 == 1:
                    more = fh.readline()
                    if not more:
                        break
                    data += more
                size = len(data)
                if not data.endswith(b"\n"):
                    data += b"\n"
                block = self._parse(data, line)
                block.bytes_read = size
                line += block.line_count
                yield block

    def _parse(self, data: bytes, first_line: int) -> Block:
        line_count = data.count(b"\n")
        block = Block(
            columns={},
            lines=np.empty(0, dtype=np.int64),
            line_count=line_count,
            _data=data,
            _first_line=first_line,
        )
        line_numbers = first_line + np.arange(line_count, dtype=np.int64)
        fast = self._fast(data)
        if fast is not None and len(fast[self._read[0]]) == line_count:
            # One row per line: no blank lines and no quoted newlines, so no line needs locating unless a
            # row is rejected (locating 16 MB of lines in numpy cost more than parsing them).
            block.columns = fast
            block.lines = line_numbers
            return block
        starts, ends = block.line_bounds()
        empty = ends == starts
        # pyarrow skips empty lines and flags every other odd line (whitespace-only, wrong width) as
        # malformed, so a clean fast parse has exactly one row per non-empty line.
        if fast is not None and len(fast[self._read[0]]) == line_count - int(np.count_nonzero(empty)):
            block.columns = fast
            block.lines = line_numbers[~empty]
            block.blank_lines = int(np.count_nonzero(empty))
            return block
        return self._careful(block, line_numbers)

    def _fast(self, data: bytes) -> dict[str, pa.Array] | None:
        # UTF-8 is checked once for the block's bytes (a field of valid UTF-8 is valid UTF-8, since every
        # delimiter is ASCII), not field by field: all-ASCII blocks, the usual case, need one scan.
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        malformed = False

        def on_invalid(_row: object) -> str:
            nonlocal malformed
            malformed = True
            return "skip"

        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=self.header, use_threads=True, block_size=1 << 21
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in self._read},
                    include_columns=self._read,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    check_utf8=False,
                ),
            )
        except pa.ArrowInvalid:
            return None
        if malformed:
            return None
        return {name: table.column(name).combine_chunks() for name in self._read}

    def _careful(self, block: Block, line_numbers: npt.NDArray[np.int64]) -> Block:
        width = len(self.header)
        texts: list[str] = []
        text_lines: list[int] = []
        starts, ends = block.line_bounds()
        for index, line_no in enumerate(line_numbers):
            raw = block._data[starts[index] : ends[index]]
            if not raw.strip():
                block.blank_lines += 1
                continue
            try:
                texts.append(raw.decode("utf-8"))
                text_lines.append(int(line_no))
            except UnicodeDecodeError as exc:
                block.rejects.append(
                    RowReject(
                        int(line_no),
                        "row",
                        "invalid_utf8",
                        f"invalid UTF-8 ({exc.reason}) at byte {exc.start} of the line",
                        raw.decode("utf-8", errors="replace"),
                    )
                )
        good: list[list[str]] = []
        good_lines: list[int] = []
        # csv.reader joins a quoted value that spans lines; line_num says how many lines it consumed.
        reader = csv.reader(t + "\n" for t in texts)
        consumed = 0
        for row in reader:
            start = text_lines[consumed]
            taken = reader.line_num - consumed
            raw_text = "\n".join(texts[consumed : reader.line_num])
            consumed = reader.line_num
            if len(row) != width:
                block.rejects.append(
                    RowReject(
                        start,
                        "row",
                        "malformed_row",
                        f"has {len(row)} field(s); the header has {width}"
                        + (f" (spans {taken} lines)" if taken > 1 else ""),
                        raw_text,
                    )
                )
                continue
            good.append(row)
            good_lines.append(start)
        columns = list(zip(*good, strict=True)) if good else [() for _ in self.header]
        block.columns = {
            name: pa.array(values, pa.string())
            for name, values in zip(self.header, columns, strict=True)
            if name not in self.schema.ignored
        }
        block.lines = np.asarray(good_lines, dtype=np.int64)
        return block


def _choose(path: Path, schemas: Sequence[CsvSchema], header: list[str]) -> CsvSchema:
    failures: list[DataFileError] = []
    for schema in schemas:
        try:
            schema.check_header(path, header)
        except DataFileError as exc:
            failures.append(exc)
            continue
        return schema
    raise min(failures, key=lambda exc: len(exc.problems))
