"""Vectorised field parsing and the per-row record of why a row was rejected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Mask = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

_NUMBER = r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$"
_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"

# police.uk began publishing street-level crime in December 2010.
EARLIEST_MONTH = dt.date(2010, 12, 1)


# Bytes that may begin or end whitespace: ASCII whitespace, and any non-ASCII byte (a multi-byte character
# could be Unicode whitespace such as U+00A0).
_MAY_BE_SPACE = np.zeros(256, dtype=bool)
_MAY_BE_SPACE[[9, 10, 11, 12, 13, 32]] = True
_MAY_BE_SPACE[0x80:] = True


def text(column: pa.Array) -> pa.Array:
    """Values with surrounding whitespace removed."""
    # Trimming copies every value; first look at each value's first and last byte, which is enough to
    # know that most columns have nothing to trim.
    if pa.types.is_string(column.type) and not _may_have_space(column):
        return column
    return pc.utf8_trim_whitespace(column)


def _may_have_space(column: pa.Array) -> bool:
    _validity, offsets_buffer, data_buffer = column.buffers()
    if data_buffer is None or data_buffer.size == 0 or offsets_buffer is None:
        return False
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=len(column) + 1, offset=column.offset * 4)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    # An empty value's "first byte" is its neighbour's, which can only make the check cautious.
    first = data.take(offsets[:-1], mode="clip")
    last = data.take(offsets[1:] - 1, mode="clip")
    return bool(_MAY_BE_SPACE[first].any() or _MAY_BE_SPACE[last].any())


def blank(column: pa.Array) -> Mask:
    """Where a trimmed value is empty."""
    return np.asarray(pc.equal(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False), dtype=bool)


def numbers(column: pa.Array) -> tuple[FloatArray, Mask, Mask]:
    """Parse decimals: (values with NaN where not a number, blank mask, malformed mask).

    "NaN", "inf" and text are malformed, not numbers.
    """
    is_blank = blank(column)
    present = pc.if_else(pa.array(is_blank), pa.scalar(None, pa.string()), column)
    try:
        # Most columns are all numbers: one cast, then only what it reads as not finite is malformed.
        cast = pc.cast(present, pa.float64())
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(column, _NUMBER)
        cast = pc.cast(pc.if_else(ok, column, pa.scalar(None, pa.string())), pa.float64())
        malformed = ~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool) & ~is_blank
        return np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64), is_blank, malformed
    values = np.array(cast.to_numpy(zero_copy_only=False), dtype=np.float64)
    malformed = np.zeros(len(values), dtype=bool)
    odd = np.flatnonzero(~np.isfinite(values) & ~is_blank)  # "nan", "inf", or a number too big for a double
    if len(odd):
        text_odd = column.take(pa.array(odd))
        not_number = odd[
            ~np.asarray(pc.match_substring_regex(text_odd, _NUMBER).to_numpy(zero_copy_only=False))
        ]
        malformed[not_number] = True
        values[not_number] = np.nan
    return values, is_blank, malformed


def months(column: pa.Array, latest: dt.date) -> tuple[pa.Array, Mask, Mask]:
    """Parse YYYY-MM months: (first-of-month dates, malformed mask, out-of-range mask)."""
    # A file holds a few distinct months: parse those, then spread the results to the rows.
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    ok = np.asarray(pc.match_substring_regex(distinct, _MONTH).to_numpy(zero_copy_only=False), dtype=bool)
    padded = pc.binary_join_element_wise(distinct, pa.scalar("-01"), "")
    parsed = pc.cast(
        pc.strptime(pc.if_else(pa.array(ok), padded, None), format="%Y-%m-%d", unit="s", error_is_null=True),
        pa.date32(),
    )
    stamps = np.asarray(parsed.to_numpy(zero_copy_only=False)).astype("datetime64[D]")
    in_range = np.zeros(len(stamps), dtype=bool)
    valid = ok & ~np.isnat(stamps)
    in_range[valid] = (stamps[valid] >= np.datetime64(EARLIEST_MONTH)) & (
        stamps[valid] <= np.datetime64(latest)
    )
    indices = encoded.indices
    rows = np.asarray(indices.to_numpy(zero_copy_only=False))
    return parsed.take(indices), ~ok[rows], (ok & ~in_range)[rows]


def one_of(column: pa.Array, allowed: Iterable[str]) -> Mask:
    """Where the value is one of ``allowed``."""
    return np.asarray(
        pc.is_in(column, value_set=pa.array(sorted(allowed), pa.string())).to_numpy(zero_copy_only=False),
        dtype=bool,
    )


def nullify_blank(column: pa.Array) -> pa.Array:
    """Blank values become nulls."""
    return pc.if_else(pa.array(blank(column)), pa.scalar(None, pa.string()), column)


class Rejects:
    """The first reason each row of a block is rejected, with the field it concerns."""

    def __init__(self, rows: int) -> None:
        self.rejected = np.zeros(rows, dtype=bool)
        self.field = np.full(rows, None, dtype=object)
        self.kind = np.full(rows, None, dtype=object)
        self.reason = np.full(rows, None, dtype=object)

    def add(self, mask: Mask, field: str, kind: str, reason: str | npt.NDArray[np.object_]) -> None:
        """Reject rows in ``mask`` not already rejected; ``reason`` may vary by row."""
        new = mask & ~self.rejected
        if not new.any():
            return
        self.rejected |= new
        self.field[new] = field
        self.kind[new] = kind
        self.reason[new] = reason[new] if isinstance(reason, np.ndarray) else reason

    @property
    def kept(self) -> Mask:
        """Rows not rejected."""
        return ~self.rejected


def quoted(values: pa.Array, mask: Mask) -> npt.NDArray[np.object_]:
    """Row values rendered for a reason message (only where ``mask``)."""
    out = np.full(len(mask), None, dtype=object)
    if mask.any():
        picked = values.filter(pa.array(mask)).to_pylist()
        out[mask] = [repr(v) for v in picked]
    return out


def described(prefix: str, values: pa.Array, mask: Mask) -> npt.NDArray[np.object_]:
    """``prefix`` followed by each masked row's value, for reject reasons."""
    out = quoted(values, mask)
    out[mask] = [prefix + v for v in out[mask]]
    return out
