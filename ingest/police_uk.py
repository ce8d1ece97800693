"""police.uk street-level crime CSVs, in the current format and the pre-2013 (2011) format.

Rules, applied in this order (a row is rejected for the first that fails):

* ``Month`` must be ``YYYY-MM`` between December 2010 (police.uk's first month) and the current month.
* ``Crime type`` must be a police.uk category (case and spacing are forgiven). The 2011 format's categories
  map to a current one only where the two mean the same thing (Anti-social behaviour, Burglary, Robbery,
  Vehicle crime); "Violent crime", "Other crime" (2011) and "Public disorder and weapons" have no
  one-to-one match and keep their original name, flagged by ``category_scheme``.
* Location: see ``ingest.locate``. With no coordinates, the record's own LSOA code places it, flagged.
* ``Crime ID``: police.uk lists a crime once, in the month it was recorded, so a non-blank ID may be
  loaded once per force and month. A later row with the same ID, in this file or an earlier batch, is
  rejected as a duplicate naming where the first is. Anti-social behaviour rows have no ID and are never
  duplicates of each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from geo.h3cells import FINEST
from geo.levels import AreaLevel
from harm_index.categories import POLICE_UK_CATEGORIES
from ingest.aggregate import aggregate_columns
from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.fields import Rejects, described, months, nullify_blank
from ingest.fields import text as trimmed
from ingest.locate import Coordinates, locate

CURRENT = CsvSchema(
    "police_uk",
    (
        "Crime ID",
        "Month",
        "Reported by",
        "Falls within",
        "Longitude",
        "Latitude",
        "Location",
        "LSOA code",
        "LSOA name",
        "Crime type",
        "Last outcome category",
        "Context",
    ),
    # police.uk's LSOA name is derived from the code.
    ignored=("LSOA name",),
)
LEGACY_2011 = CsvSchema(
    "police_uk_2011",
    ("Month", "Reported by", "Falls within", "Easting", "Northing", "Location", "Crime type", "Context"),
)

# Categories police.uk used before May 2013 that have no one-to-one current category.
RETIRED_CATEGORIES = ("Violent crime", "Public disorder and weapons")
# The 2011 format's categories that mean the same as a current one.
LEGACY_ONE_TO_ONE = {
    "Anti-social behaviour": "Anti-social behaviour",
    "Burglary": "Burglary",
    "Robbery": "Robbery",
    "Vehicle crime": "Vehicle crime",
}
LEGACY_UNMAPPED = ("Violent crime", "Other crime")

_CANONICAL = {name.lower(): name for name in (*POLICE_UK_CATEGORIES, *RETIRED_CATEGORIES)}


@dataclass(frozen=True)
class PoliceUkStreet:
    """police.uk street-level crime; both file formats."""

    name: str = "police_uk_street"
    table: str = "crimes"
    schemas: tuple[CsvSchema, ...] = (CURRENT, LEGACY_2011)

    def process(self, block: Block, ctx: LoadContext) -> Processed:
        """Check, classify, locate and de-duplicate one block."""
        return self.finish(block, self.check(block, ctx), ctx)

    def check(self, block: Block, ctx: LoadContext) -> Checked:
        """Every check that needs neither the store nor earlier blocks: month, category, location."""
        legacy = ctx.schema is LEGACY_2011
        col = {name: trimmed(block.columns[name]) for name in _USED[ctx.schema.name]}
        rejects = Rejects(block.rows)
        notes: Counter[str] = Counter()

        month, malformed, out_of_range = months(col["Month"], ctx.latest_month)
        rejects.add(malformed, "Month", "bad_month", described("is not YYYY-MM: ", col["Month"], malformed))
        rejects.add(
            out_of_range,
            "Month",
            "bad_month",
            described(f"is outside Dec 2010 to {ctx.latest_month:%b %Y}: ", col["Month"], out_of_range),
        )

        crime_type, scheme, unknown = _categories(col["Crime type"], legacy)
        rejects.add(
            unknown,
            "Crime type",
            "unknown_category",
            described("is not a police.uk category: ", col["Crime type"], unknown),
        )
        unmapped = np.asarray(pc.equal(scheme, "police_uk_2011_unmapped").to_numpy(zero_copy_only=False))
        notes["unmapped_category"] += int(np.count_nonzero(unmapped & ~unknown))

        if legacy:
            reported = None
            located = locate(
                ctx, rejects, col["Easting"], col["Northing"], Coordinates("Easting", "Northing", 27700)
            )
        else:
            reported = nullify_blank(col["LSOA code"])
            no_code = ~np.asarray(reported.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            bad_code = ~no_code & ~np.asarray(
                pc.match_substring_regex(col["LSOA code"], AreaLevel.LSOA11.code_pattern.pattern).to_numpy(
                    zero_copy_only=False
                ),
                dtype=bool,
            )
            rejects.add(
                bad_code,
                "LSOA code",
                "bad_code",
                described("is not an LSOA code: ", col["LSOA code"], bad_code),
            )
            located = locate(
                ctx,
                rejects,
                col["Longitude"],
                col["Latitude"],
                Coordinates("Longitude", "Latitude", 4326),
                lsoa11_codes=reported,
            )
        crime_id = nullify_blank(col["Crime ID"]) if not legacy else pa.nulls(block.rows, pa.string())
        return Checked(col, rejects, notes, month, crime_id, crime_type, scheme, located, reported)

    def end(self, ctx: LoadContext) -> None:
        """After the last block: record where this batch's Crime IDs are."""
        record_batch_months(ctx)

    def finish(self, block: Block, checked: Checked, ctx: LoadContext) -> Processed:
        """De-duplicate Crime IDs against earlier blocks and batches, and build the rows to store."""
        col, rejects, notes, located, reported = (
            checked.columns,
            checked.rejects,
            checked.notes,
            checked.located,
            checked.reported,
        )
        month_days = np.asarray(checked.month.to_numpy(zero_copy_only=False)).astype("datetime64[D]")
        _reject_duplicates(ctx, block, checked.crime_id, month_days, located["force_code"], rejects)

        by_point = np.asarray(pc.equal(located["location_source"], "point").to_numpy(zero_copy_only=False))
        n = block.rows
        if reported is not None:
            # crime_records compares the same way (lsoa_disagrees): only rows placed by their point.
            has_code = np.asarray(reported.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            compared = by_point & has_code & rejects.kept
            differs = pc.fill_null(pc.not_equal(reported, located["lsoa11_code"]), False)
            disagrees = compared & np.asarray(differs.to_numpy(zero_copy_only=False), dtype=bool)
            notes["lsoa_compared"] += int(compared.sum())
            notes["lsoa_disagreements"] += int(disagrees.sum())
        notes["located_by_lsoa_code"] += int(np.count_nonzero(~by_point & rejects.kept))

        labels = ctx.labels
        crime_type = checked.crime_type
        legacy = reported is None
        table = pa.table(
            {
                "crime_id": checked.crime_id,
                "month": checked.month,
                "reported_by_id": labels.ids("police_force_name", col["Reported by"]),
                "falls_within_id": labels.ids("police_force_name", col["Falls within"]),
                "location_text": col["Location"],
                "lsoa11_reported": reported if reported is not None else pa.nulls(n, pa.string()),
                "crime_type_id": labels.ids("crime_type", crime_type),
                "category_scheme_id": labels.ids("category_scheme", checked.scheme),
                "outcome_id": labels.ids("outcome", nullify_blank(col["Last outcome category"]))
                if not legacy
                else pa.nulls(n, pa.int16()),
                "context": nullify_blank(col["Context"]),
                **{name: located[name] for name in STORED_LOCATED},
            }
        )
        unmapped = pc.equal(checked.scheme, "police_uk_2011_unmapped")
        key = pc.if_else(
            unmapped, pc.binary_join_element_wise(crime_type, pa.scalar(" (2011 category)"), ""), crime_type
        )
        return Processed(
            table=table,
            rejects=rejects,
            notes=notes,
            aggregate=aggregate_columns({**located, "month": checked.month}, key),
        )


@dataclass(frozen=True)
class Checked:
    """A block after the checks that run a block ahead (see ``PoliceUkStreet.check``)."""

    columns: dict[str, pa.Array]
    rejects: Rejects
    notes: Counter[str]
    month: pa.Array
    crime_id: pa.Array
    crime_type: pa.Array
    scheme: pa.Array
    located: dict[str, pa.Array]
    # The record's own LSOA code, null where blank; None for the 2011 format, which has none.
    reported: pa.Array | None


# The located columns crimes stores; crime_records works out the others (location_source, the H3
# parents) from these, which saves the database parsing them (migration 0015).
STORED_LOCATED = (
    "lon",
    "lat",
    "lsoa11_code",
    "lsoa21_code",
    "ward_code",
    "lad_code",
    "force_code",
    f"h3_{FINEST}",
)

# The columns each format's rows use.
_USED = {
    schema.name: tuple(c for c in schema.required if c not in schema.ignored)
    for schema in (CURRENT, LEGACY_2011)
}


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
# The same rule for the database, which computes stored IDs' keys (16 hex digits are 16 ASCII bytes).
_HEX_HEAD = r"^[0-9a-fA-F]{16}"


def crime_keys(ids: pa.Array) -> np.ndarray:
    """A 64-bit key per Crime ID: its first 16 hex digits (police.uk IDs are SHA-256 hex), else a hash.

    Null IDs get 0, which means nothing: callers only look at the keys of IDs that are present.
    """
    if not isinstance(ids, pa.Array) or ids.type != pa.string():
        ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else pc.cast(ids, pa.string())
    n = len(ids)
    keys = np.zeros(n, dtype=np.int64)
    if n == 0:
        return keys
    valid = (
        np.ones(n, dtype=bool)
        if ids.null_count == 0
        else np.asarray(ids.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    )
    # Straight from the Arrow buffers, in a few numpy calls: each pyarrow call here gave the GIL away to
    # the loader's other threads, and waiting to get it back cost more than the work.
    _validity, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=n + 1, offset=ids.offset * 4)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    long_enough = valid & (offsets[1:] - starts >= 16)
    hexadecimal = np.zeros(n, dtype=bool)
    if long_enough.any():
        # The first 16 bytes, checked as hex digits by table lookup.
        nibbles = _HEX[data[starts[long_enough][:, None] + _FIRST_16]]
        is_hex = (nibbles != 255).all(axis=1)
        where = np.flatnonzero(long_enough)[is_hex]
        hexadecimal[where] = True
        # Two nibbles a byte, eight bytes read as one big-endian integer.
        packed = (nibbles[is_hex, 0::2] << 4) | nibbles[is_hex, 1::2]
        keys[where] = np.ascontiguousarray(packed).view(">i8").ravel()
    for i in np.flatnonzero(valid & ~hexadecimal):
        keys[i] = int.from_bytes(
            hashlib.blake2b(str(ids[int(i)]).encode(), digest_size=8).digest(), "big", signed=True
        )
    return keys


_FIRST_16 = np.arange(16, dtype=np.int32)


def _reject_duplicates(
    ctx: LoadContext,
    block: Block,
    crime_id: pa.Array,
    month: np.ndarray,
    force: pa.Array,
    rejects: Rejects,
) -> None:
    """Reject repeated Crime IDs.

    IDs are compared by 64-bit key, and every key match is confirmed against the full ID before a row is
    rejected: within the block directly, against earlier rows of the same force and month in the store.
    """
    present = np.asarray(crime_id.is_valid().to_numpy(zero_copy_only=False), dtype=bool) & rejects.kept
    if not present.any():
        return
    rows = np.flatnonzero(present)
    keys = crime_keys(crime_id)[rows]
    # Repeats within the block: equal keys are neighbours once sorted; a stable sort puts the first
    # occurrence first.
    order = np.argsort(keys, kind="stable")
    starts_run = np.concatenate(([True], keys[order][1:] != keys[order][:-1]))
    if not starts_run.all():
        first = np.empty(len(rows), dtype=np.int64)
        first[order] = order[np.flatnonzero(starts_run)][np.cumsum(starts_run) - 1]
        candidate = np.flatnonzero(first != np.arange(len(rows)))
        same = np.array(
            [crime_id[int(rows[a])].as_py() == crime_id[int(rows[first[a]])].as_py() for a in candidate],
            dtype=bool,
        )
        repeat_rows = rows[candidate[same]]
        first_lines = block.lines[rows[first[candidate[same]]]]
        mask = np.zeros(block.rows, dtype=bool)
        mask[repeat_rows] = True
        reason = np.full(block.rows, None, dtype=object)
        reason[repeat_rows] = [f"Crime ID repeats line {line} of this file" for line in first_lines]
        rejects.add(mask, "Crime ID", "duplicate_id", reason)

    live = rejects.kept[rows]
    rows, keys = rows[live], keys[live]
    if not len(rows):
        return
    # Group the rows by (force, month); each group is checked against its own key set. A police.uk file
    # is one force and one month, which needs no sorting.
    encoded = pc.dictionary_encode(force)
    forces = encoded.dictionary.to_pylist()
    force_index = np.asarray(encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.int64)
    group_key = (force_index[rows] << 32) | month[rows].astype(np.int64)
    if group_key.min() == group_key.max():
        groups, order, bounds = group_key[:1], np.arange(len(rows)), np.array([0, len(rows)])
    else:
        groups, inverse = np.unique(group_key, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(groups) + 1))
    pairs = [(forces[int(g) >> 32], np.datetime64(int(g) & 0xFFFFFFFF, "D").astype(object)) for g in groups]
    known = _force_months(ctx, pairs)
    for pair, lo, hi in zip(pairs, bounds[:-1], bounds[1:], strict=True):
        members = order[lo:hi]
        ids = known[pair]
        hit = ids.earlier.contains(keys[members]) | ids.mine.contains(keys[members])
        if hit.any():
            hit_ids = crime_id.take(pa.array(rows[members[hit]]))
            _reject_stored(ctx, block, rows[members[hit]], hit_ids, pair, ids.batches, rejects)
        ids.mine.add(keys[members[rejects.kept[rows[members]]]])


def _reject_stored(
    ctx: LoadContext,
    block: Block,
    hit_rows: np.ndarray,
    hit_ids: pa.Array,
    pair: tuple[str, dt.date],
    earlier_batches: list[int],
    rejects: Rejects,
) -> None:
    """Reject the rows whose key matched an ID already stored, once the full ID is confirmed to match."""
    force_code, month_day = pair
    values = hit_ids.to_pylist()
    stored = ctx.conn.execute(
        text(
            "SELECT crime_id, batch_id, line FROM crimes WHERE batch_id = ANY(CAST(:b AS integer[])) "
            "AND force_code = :f AND month = :m AND crime_id = ANY(CAST(:ids AS text[]))"
        ),
        {
            "b": [*earlier_batches, ctx.batch_id],
            "f": force_code,
            "m": month_day,
            "ids": sorted(set(values)),
        },
    ).all()
    where = {r.crime_id: (r.batch_id, r.line) for r in stored}
    mask = np.zeros(block.rows, dtype=bool)
    reason = np.full(block.rows, None, dtype=object)
    for row, value in zip(hit_rows, values, strict=True):
        if value in where:
            batch, line = where[value]
            mask[row] = True
            reason[row] = "Crime ID already loaded: " + (
                f"line {line} of this file" if batch == ctx.batch_id else f"batch {batch}, line {line}"
            )
    rejects.add(mask, "Crime ID", "duplicate_id", reason)


def record_batch_months(ctx: LoadContext) -> None:
    """Keep, for later batches' duplicate checks, the keys of the Crime IDs each force-month got."""
    mine = {pair: ids.mine.values() for pair, ids in _force_months(ctx, []).items()}
    if any(len(keys) for keys in mine.values()):
        ctx.conn.execute(
            text(
                "INSERT INTO crime_batch_months (force_code, month, batch_id, crime_ids, keys) "
                "VALUES (:f, :m, :b, :n, :k)"
            ),
            [
                {"f": f, "m": m, "b": ctx.batch_id, "n": len(keys), "k": keys.astype("<i8").tobytes()}
                for (f, m), keys in sorted(mine.items())
                if len(keys)
            ],
        )


class KeySet:
    """A growing set of int64 keys held as a few sorted chunks of decreasing size (merged LSM-style)."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []

    def add(self, keys: np.ndarray) -> None:
        """Remember ``keys``; chunks are merged as they pile up, so lookups stay a few binary searches."""
        if len(keys):
            self._chunks.append(np.sort(keys))
        while len(self._chunks) > 1 and len(self._chunks[-1]) * 4 >= len(self._chunks[-2]):
            newest = self._chunks.pop()
            # Two sorted runs side by side: the stable sort (timsort) merges them in one pass, ten times
            # faster than sorting afresh.
            self._chunks[-1] = np.sort(np.concatenate((self._chunks[-1], newest)), kind="stable")

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` have been added."""
        found = np.zeros(len(keys), dtype=bool)
        if not self._chunks or not len(keys):
            return found
        order = np.argsort(keys)  # sorted probes walk each chunk in order, which is several times faster
        probes = keys[order]
        for chunk in self._chunks:
            pos = np.minimum(np.searchsorted(chunk, probes), len(chunk) - 1)
            found[order] |= chunk[pos] == probes
        return found

    def values(self) -> np.ndarray:
        """Every key added, sorted."""
        if not self._chunks:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(self._chunks), kind="stable")


@dataclass
class ForceMonthIds:
    """What the duplicate check knows of one force and month."""

    earlier: KeySet  # keys of the IDs earlier batches stored
    batches: list[int]  # those batches
    mine: KeySet = field(default_factory=KeySet)  # keys of the IDs this batch has stored so far


def _force_months(
    ctx: LoadContext, pairs: list[tuple[str, dt.date]]
) -> dict[tuple[str, dt.date], ForceMonthIds]:
    """The load's ForceMonthIds by (force, month), first fetching any of ``pairs`` not yet held.

    Each earlier batch left its keys for the force-month in crime_batch_months, sorted and packed: a few
    megabytes to read, however many rows they stand for, one query per force. Batches recorded without
    keys (loaded before the keys were kept) are read from crimes instead, found by the BRIN index on
    batch_id.
    """
    known = ctx.state.setdefault("crime_ids", {})
    assert isinstance(known, dict)
    wanted: dict[str, list[dt.date]] = {}
    for force_code, month_day in pairs:
        if (force_code, month_day) not in known:
            wanted.setdefault(force_code, []).append(month_day)
    for force_code, month_days in wanted.items():
        earlier = ctx.conn.execute(
            text(
                "SELECT month, batch_id, keys FROM crime_batch_months "
                "WHERE force_code = :f AND month = ANY(CAST(:m AS date[])) ORDER BY month, batch_id"
            ),
            {"f": force_code, "m": month_days},
        ).all()
        fetched = {month_day: ForceMonthIds(KeySet(), []) for month_day in month_days}
        unkeyed: set[int] = set()
        for month_day, batch_id, keys in earlier:
            fetched[month_day].batches.append(batch_id)
            if keys is None:
                unkeyed.add(batch_id)
            else:
                fetched[month_day].earlier.add(np.frombuffer(keys, dtype="<i8").astype(np.int64))
        if unkeyed:
            _read_stored_keys(ctx, force_code, sorted(unkeyed), month_days, fetched)
        known.update({(force_code, month_day): ids for month_day, ids in fetched.items()})
    return known


def _read_stored_keys(
    ctx: LoadContext,
    force_code: str,
    batches: list[int],
    month_days: list[dt.date],
    fetched: dict[dt.date, ForceMonthIds],
) -> None:
    """Add the keys of IDs stored by batches that kept none.

    They are computed in the database for hexadecimal IDs (police.uk's), and travel as one big-endian
    int8 string per month; only other IDs travel whole.
    """
    packed = ctx.conn.execute(
        text(
            "SELECT month, "
            "string_agg(int8send(('x' || left(crime_id, 16))::bit(64)::bigint), ''::bytea) "
            "FILTER (WHERE crime_id ~ :hex), "
            "array_agg(crime_id) FILTER (WHERE crime_id !~ :hex) "
            "FROM crimes WHERE batch_id = ANY(CAST(:b AS integer[])) AND force_code = :f "
            "AND month = ANY(CAST(:m AS date[])) AND crime_id IS NOT NULL GROUP BY month"
        ),
        {"hex": _HEX_HEAD, "b": batches, "f": force_code, "m": month_days},
    ).all()
    for month_day, keys, others in packed:
        if keys:
            fetched[month_day].earlier.add(np.frombuffer(keys, dtype=">i8").astype(np.int64))
        if others:
            fetched[month_day].earlier.add(crime_keys(pa.array(others, pa.string())))


def _categories(values: pa.Array, legacy: bool) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Each row's crime type and category scheme, and where the value is not a police.uk category.

    Case and spacing are forgiven. The work is done once per distinct value, not per row. Unknown values
    get an empty crime type: their rows are rejected and never stored.
    """
    encoded = pc.dictionary_encode(values)
    crime_types, schemes, unknown = [], [], []
    for value in encoded.dictionary.to_pylist():
        name = _CANONICAL.get(" ".join(value.lower().split()))
        unknown.append(name is None)
        if legacy:
            one_to_one = LEGACY_ONE_TO_ONE.get(name) if name else None
            crime_types.append(one_to_one or name or "")
            schemes.append("police_uk_2011_mapped" if one_to_one else "police_uk_2011_unmapped")
        else:
            crime_types.append(name or "")
            schemes.append("police_uk_2011_unmapped" if name in RETIRED_CATEGORIES else "police_uk")
    indices = encoded.indices
    return (
        pa.array(crime_types, pa.string()).take(indices),
        pa.array(schemes, pa.string()).take(indices),
        np.array(unknown, dtype=bool)[np.asarray(indices.to_numpy(zero_copy_only=False))],
    )
