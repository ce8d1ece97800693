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
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text

from geo.levels import AreaLevel
from harm_index.categories import POLICE_UK_CATEGORIES
from ingest.aggregate import aggregate_columns
from ingest.batch import LoadContext, Processed
from ingest.csvread import Block, CsvSchema
from ingest.fields import Rejects, blank, described, months, nullify_blank
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
        legacy = ctx.schema is LEGACY_2011
        col = {name: trimmed(values) for name, values in block.columns.items()}
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

        canonical = _canonical_categories(col["Crime type"])
        unknown = np.array([c is None for c in canonical], dtype=bool)
        rejects.add(
            unknown,
            "Crime type",
            "unknown_category",
            described("is not a police.uk category: ", col["Crime type"], unknown),
        )
        crime_type, scheme = _classify(canonical, legacy)
        notes["unmapped_category"] += int(np.count_nonzero((scheme == "police_uk_2011_unmapped") & ~unknown))

        if legacy:
            reported = None
            located = locate(
                ctx, rejects, col["Easting"], col["Northing"], Coordinates("Easting", "Northing", 27700)
            )
        else:
            reported = col["LSOA code"].to_numpy(zero_copy_only=False).astype(object)
            no_code = blank(col["LSOA code"])
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
            reported[no_code] = None

        crime_id = nullify_blank(col["Crime ID"]) if not legacy else pa.nulls(block.rows, pa.string())
        month_days = np.asarray(month.to_numpy(zero_copy_only=False)).astype("datetime64[D]")
        _reject_duplicates(ctx, block, crime_id, month_days, located["force_code"], rejects)

        assigned = np.asarray(located["lsoa11_code"].to_numpy(zero_copy_only=False), dtype=object)
        by_point = np.asarray(pc.equal(located["location_source"], "point").to_numpy(zero_copy_only=False))
        if reported is not None:
            compared = by_point & ~no_code & rejects.kept
            disagrees = np.where(compared, reported != assigned, False)
            notes["lsoa_compared"] += int(compared.sum())
            notes["lsoa_disagreements"] += int(disagrees[compared].sum())
            lsoa_disagrees = pa.array(disagrees, pa.bool_(), mask=~compared)
        else:
            lsoa_disagrees = pa.nulls(block.rows, pa.bool_())
        notes["located_by_lsoa_code"] += int(np.count_nonzero(~by_point & rejects.kept))

        n = block.rows
        labels = ctx.labels
        table = pa.table(
            {
                "crime_id": crime_id,
                "month": month,
                "reported_by_id": labels.ids("police_force_name", col["Reported by"]),
                "falls_within_id": labels.ids("police_force_name", col["Falls within"]),
                "location_text": col["Location"],
                "lsoa11_reported": pa.array(reported, pa.string())
                if reported is not None
                else pa.nulls(n, pa.string()),
                "lsoa_disagrees": lsoa_disagrees,
                "crime_type_id": labels.ids("crime_type", pa.array(crime_type, pa.string())),
                "category_scheme_id": labels.ids("category_scheme", pa.array(scheme, pa.string())),
                "outcome_id": labels.ids("outcome", nullify_blank(col["Last outcome category"]))
                if not legacy
                else pa.nulls(n, pa.int16()),
                "context": nullify_blank(col["Context"]),
                **located,
            }
        )
        unmapped = pa.array(scheme == "police_uk_2011_unmapped")
        key = pc.if_else(
            unmapped,
            pc.binary_join_element_wise(pa.array(crime_type, pa.string()), pa.scalar(" (2011 category)"), ""),
            pa.array(crime_type, pa.string()),
        )
        return Processed(table=table, rejects=rejects, notes=notes, aggregate=aggregate_columns(table, key))


def _classify(canonical: np.ndarray, legacy: bool) -> tuple[np.ndarray, np.ndarray]:
    crime_type = canonical.copy()
    scheme = np.full(len(canonical), "police_uk", dtype=object)
    if legacy:
        mapped = np.array([c in LEGACY_ONE_TO_ONE for c in canonical], dtype=bool)
        scheme[:] = "police_uk_2011_unmapped"
        scheme[mapped] = "police_uk_2011_mapped"
        crime_type[mapped] = [LEGACY_ONE_TO_ONE[c] for c in canonical[mapped]]
    else:
        retired = np.array([c in RETIRED_CATEGORIES for c in canonical], dtype=bool)
        scheme[retired] = "police_uk_2011_unmapped"
    crime_type[np.array([c is None for c in crime_type], dtype=bool)] = ""  # rejected rows; never stored
    return crime_type, scheme


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)
# The same rule for the database, which computes stored IDs' keys (16 hex digits are 16 ASCII bytes).
_HEX_HEAD = r"^[0-9a-fA-F]{16}"


def crime_keys(ids: pa.Array) -> np.ndarray:
    """A 64-bit key per Crime ID: its first 16 hex digits (police.uk IDs are SHA-256 hex), else a hash."""
    ids = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    keys = np.zeros(len(ids), dtype=np.int64)
    if len(ids) == 0:
        return keys
    # The first 16 bytes, checked as hex digits by table lookup: a regex over every ID cost more.
    raw_ids = pc.cast(ids, pa.binary())
    long_enough = np.asarray(
        pc.fill_null(pc.greater_equal(pc.binary_length(raw_ids), 16), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    hexadecimal = np.zeros(len(ids), dtype=bool)
    if long_enough.any():
        heads = pc.cast(pc.binary_slice(raw_ids.filter(pa.array(long_enough)), 0, 16), pa.binary(16))
        raw = np.frombuffer(heads.buffers()[1], dtype=np.uint8)[
            heads.offset * 16 : (heads.offset + len(heads)) * 16
        ]
        nibbles = _HEX[raw.reshape(len(heads), 16)]
        is_hex = (nibbles != 255).all(axis=1)
        hexadecimal[np.flatnonzero(long_enough)[is_hex]] = True
        keys[hexadecimal] = (
            (nibbles[is_hex].astype(np.uint64) << _SHIFTS).sum(axis=1, dtype=np.uint64).view(np.int64)
        )
    for i in np.flatnonzero(~hexadecimal):
        keys[i] = int.from_bytes(
            hashlib.blake2b(str(ids[i]).encode(), digest_size=8).digest(), "big", signed=True
        )
    return keys


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
    ids = crime_id.take(pa.array(rows))
    keys = crime_keys(ids)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    earlier = first[inverse]
    candidate = earlier != np.arange(len(rows))
    if candidate.any():
        same = np.array(
            [
                ids[int(a)].as_py() == ids[int(b)].as_py()
                for a, b in zip(np.flatnonzero(candidate), earlier[candidate], strict=True)
            ],
            dtype=bool,
        )
        repeat_rows = rows[np.flatnonzero(candidate)[same]]
        first_lines = block.lines[rows[earlier[candidate][same]]]
        mask = np.zeros(block.rows, dtype=bool)
        mask[repeat_rows] = True
        reason = np.full(block.rows, None, dtype=object)
        reason[repeat_rows] = [f"Crime ID repeats line {line} of this file" for line in first_lines]
        rejects.add(mask, "Crime ID", "duplicate_id", reason)

    live = rejects.kept[rows]
    rows, keys, ids = rows[live], keys[live], ids.filter(pa.array(live))
    encoded = pc.dictionary_encode(force.take(pa.array(rows)))
    force_index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    forces = encoded.dictionary.to_pylist()
    days = month[rows].astype(np.int64)
    pairs = sorted(set(zip(force_index.tolist(), days.tolist(), strict=True)))
    _fetch_seen_keys(ctx, [(forces[f], np.datetime64(d, "D").astype(object)) for f, d in pairs])
    for f_index, day in pairs:
        group = (force_index == f_index) & (days == day)
        month_day = np.datetime64(day, "D").astype(object)
        seen = _seen_keys(ctx, forces[f_index], month_day)
        hits = group & seen.contains(keys)
        if hits.any():
            hit_ids = ids.filter(pa.array(hits)).to_pylist()
            stored = ctx.conn.execute(
                text(
                    "SELECT crime_id, batch_id, line FROM crimes WHERE force_code = :f AND month = :m "
                    "AND crime_id = ANY(CAST(:ids AS text[]))"
                ),
                {"f": forces[f_index], "m": month_day, "ids": sorted(set(hit_ids))},
            ).all()
            where = {r.crime_id: (r.batch_id, r.line) for r in stored}
            hit_rows = rows[hits]
            confirmed = [(row, where[v]) for row, v in zip(hit_rows, hit_ids, strict=True) if v in where]
            mask = np.zeros(block.rows, dtype=bool)
            reason = np.full(block.rows, None, dtype=object)
            for row, (batch, line) in confirmed:
                mask[row] = True
                reason[row] = "Crime ID already loaded: " + (
                    f"line {line} of this file" if batch == ctx.batch_id else f"batch {batch}, line {line}"
                )
            rejects.add(mask, "Crime ID", "duplicate_id", reason)
        seen.add(keys[group & rejects.kept[rows]])


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
            self._chunks[-1] = np.sort(np.concatenate((self._chunks[-1], newest)))

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


def _seen_keys(ctx: LoadContext, force_code: str, month_day: dt.date) -> KeySet:
    cached = ctx.state.get(("crime_keys", force_code, month_day))
    if not isinstance(cached, KeySet):
        _fetch_seen_keys(ctx, [(force_code, month_day)])
        cached = ctx.state[("crime_keys", force_code, month_day)]
    assert isinstance(cached, KeySet)
    return cached


def _fetch_seen_keys(ctx: LoadContext, pairs: list[tuple[str, dt.date]]) -> None:
    """Load the stored Crime ID keys of every (force, month) not yet held, one query per force.

    One query for all of a block's new months matters when a file spans years: each month's rows are
    then spread over the whole table, and a query per month would read it once per month. The 64-bit
    key is computed in the database for hexadecimal IDs (police.uk's); only other IDs travel whole.
    """
    wanted: dict[str, list[dt.date]] = {}
    for force_code, month_day in pairs:
        if ("crime_keys", force_code, month_day) not in ctx.state:
            wanted.setdefault(force_code, []).append(month_day)
    for force_code, month_days in wanted.items():
        # Keys travel as one big-endian int8 string per month: millions of keys, no per-row objects.
        packed = ctx.conn.execute(
            text(
                "SELECT month, string_agg(int8send(('x' || left(crime_id, 16))::bit(64)::bigint), ''::bytea) "
                "FILTER (WHERE crime_id ~ :hex), "
                "array_agg(crime_id) FILTER (WHERE crime_id !~ :hex) "
                "FROM crimes WHERE force_code = :f AND month = ANY(CAST(:m AS date[])) "
                "AND crime_id IS NOT NULL GROUP BY month"
            ),
            {"hex": _HEX_HEAD, "f": force_code, "m": month_days},
        ).all()
        stored = {month_day: (keys, others) for month_day, keys, others in packed}
        for month_day in month_days:
            keys, others = stored.get(month_day, (None, None))
            seen = KeySet()
            if keys:
                seen.add(np.frombuffer(keys, dtype=">i8").astype(np.int64))
            if others:
                seen.add(crime_keys(pa.array(others, pa.string())))
            ctx.state[("crime_keys", force_code, month_day)] = seen


def _canonical_categories(values: pa.Array) -> np.ndarray:
    """The police.uk category each value names (case and spacing forgiven), or None."""
    encoded = pc.dictionary_encode(values)
    names = [_CANONICAL.get(" ".join(v.lower().split())) for v in encoded.dictionary.to_pylist()]
    lookup = np.array([*names, None], dtype=object)
    picked: np.ndarray = lookup[np.asarray(encoded.indices.to_numpy(zero_copy_only=False))]
    return picked
