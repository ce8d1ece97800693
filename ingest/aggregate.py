"""The harm aggregate of a batch (``harm_counts``), computed while the batch streams in.

Each block's accepted rows are counted once at the finest grouping (force, month, key, LSOA 2011/2021,
ward, LAD and H3 7-10: the coarser areas are functions of the finer ones, so they add no groups). When
the file ends, or the partial counts pass ``FLUSH_ROWS``, the parts are combined, codes become integer
ids, and the counts fan out to every level, and for the census geographies to calendar quarter and year
spans too, then are COPY'd. ``harm_counts_add(batch)`` in the database computes the same from the stored
rows, and the tests hold the two equal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.errors import LockNotAvailable
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from ingest.copy import copy_arrow

# Level ids as in the harm_levels table: census geographies 1-5, H3 by resolution.
CENSUS_LEVELS = {
    "force_code": (1, "force"),
    "lad_code": (2, "local_authority"),
    "ward_code": (3, "ward"),
    "lsoa21_code": (4, "lsoa21"),
    "lsoa11_code": (5, "lsoa11"),
}
H3_LEVELS = {f"h3_{r}": r for r in (7, 8, 9, 10)}
GROUP = ["force_code", "month", "key", "synthetic"]
FINEST = [*GROUP, *(c for c in CENSUS_LEVELS if c != "force_code"), *H3_LEVELS]
# Partial counts held before they are combined and written: bounds memory whatever the file's size. A key
# may then appear in more than one written row of the batch; every reader sums.
FLUSH_ROWS = 500_000
_SPAN_UNITS = {3: "quarter", 12: "year"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggregateIds:
    """Integer ids for the aggregate's source and the census areas, read once per batch."""

    source_id: int
    codes: dict[str, pa.Array]
    ids: dict[str, pa.Array]

    @classmethod
    def from_store(cls, conn: Connection, source: str) -> AggregateIds:
        """The source's id and every census area's id by level (the latest row where codes repeat)."""
        source_id = conn.execute(
            text("SELECT id FROM harm_sources WHERE name = :name"), {"name": source}
        ).scalar_one()
        rows = conn.execute(
            text("SELECT level::text, code, max(id) FROM areas GROUP BY level, code ORDER BY 1, 2")
        ).all()
        codes: dict[str, pa.Array] = {}
        ids: dict[str, pa.Array] = {}
        for column, (_level_id, level) in CENSUS_LEVELS.items():
            mine = [r for r in rows if r[0] == level]
            codes[column] = pa.array([r[1] for r in mine], pa.string())
            ids[column] = pa.array([r[2] for r in mine], pa.int64())
        return cls(int(source_id), codes, ids)


class BatchAggregate:
    """Partial counts for one batch; H3 counts are written as they pile up, census counts at the end.

    H3 counts can be as many as the incidents (res 10 is finer than police.uk's snap points), so they
    are written whenever ``FLUSH_ROWS`` partial counts are held. Census geographies are bounded by
    areas x months x keys, so their month counts are kept (compacted) until the batch ends, then written
    once with their quarter and year spans: every (area, key, span) of a batch is one row.

    Blocks are counted by integers: each area code becomes its position in the store's code list and each
    key its position in the batch's own key list. Grouping a million rows by the codes themselves (six
    text columns) took 0.46 s, against 0.17 s by numbers (isolated, bench/).
    """

    def __init__(self, ids: AggregateIds, connection: Callable[[], Connection]) -> None:
        self.ids = ids
        self._connection = connection
        # The batch's keys in first-seen order (a key's position is its number in counted blocks), and
        # their harm_keys ids.
        self._keys: list[str] = []
        self._key_ids: list[int | None] = []
        self._parts: list[pa.Table] = []
        self._census: pa.Table | None = None
        self.pending_rows = 0

    @classmethod
    def start(cls, connection: Callable[[], Connection], source: str) -> BatchAggregate:
        """An empty aggregate for a batch of ``source``, with the store's area ids.

        ``connection`` gives the batch's connection whenever a key harm_keys has not seen turns up.
        """
        return cls(AggregateIds.from_store(connection(), source), connection)

    def count(self, rows: pa.Table) -> pa.Table:
        """A block's accepted rows counted at the finest grouping; ``rows`` has the FINEST columns.

        The counts are kept apart from the aggregate until ``add``, so a block can be counted while the
        one before it is being stored. Blocks must be counted in file order by one thread.
        """
        new_keys = [k for k in pc.unique(rows["key"]).to_pylist() if k not in self._keys]
        if new_keys:
            self._keys += new_keys
            self._key_ids += _key_ids(self._connection(), self.ids.source_id, pa.array(new_keys, pa.string()))
        numbered = {
            "month": rows["month"],
            "key": pc.cast(pc.index_in(rows["key"], value_set=pa.array(self._keys, pa.string())), pa.int32()),
            "synthetic": rows["synthetic"],
            # A code the store does not hold (there should be none) becomes null and is not counted for
            # that level, as a row without the area.
            **{c: pc.index_in(rows[c], value_set=self.ids.codes[c]) for c in CENSUS_LEVELS},
            **{c: rows[c] for c in H3_LEVELS},
        }
        table = pa.table(numbered)
        return table.group_by(table.column_names, use_threads=False).aggregate([([], "count_all")])

    def add(self, counted: pa.Table) -> None:
        """Keep a block's counts (from ``count``) until the next flush."""
        if counted.num_rows == 0:
            return
        self._parts.append(counted)
        self.pending_rows += counted.num_rows

    def flush(self, batch_id: int, final: bool = True) -> pa.Table:
        """``harm_counts`` rows to write now; the counts they hold are cleared.

        Before the batch ends (``final`` False) that is the H3 rows only; the census counts are kept.
        Flushing needs no connection, so it runs while earlier blocks are still being stored.
        """
        ids = self.ids
        tables = []
        if self._parts:
            # Not grouped again across blocks first: each level's grouping below sums the repeats.
            finest = pa.concat_tables(self._parts)
            self._parts, self.pending_rows = [], 0
            n = finest["count_all"]
            key_ids = pc.take(pa.array(self._key_ids, pa.int16()), finest["key"])
            census = [
                _level_rows(finest, n, ids, key_ids, pc.take(ids.ids[column], finest[column]), level_id)
                for column, (level_id, _name) in CENSUS_LEVELS.items()
            ]
            # Each level's rows are already one per key; only an earlier flush's counts need merging.
            if self._census is None:
                self._census = pa.concat_tables(census)
            else:
                self._census = _regroup(pa.concat_tables([self._census, *census]))
            for column, level_id in H3_LEVELS.items():
                tables.append(_level_rows(finest, n, ids, key_ids, finest[column], level_id))
        if final and self._census is not None:
            tables.append(self._census)
            for span, unit in _SPAN_UNITS.items():
                coarser = self._census.set_column(
                    self._census.schema.get_field_index("period_start"),
                    "period_start",
                    pc.floor_temporal(self._census["period_start"], unit=unit),
                ).set_column(
                    self._census.schema.get_field_index("span"),
                    "span",
                    pa.array(np.full(self._census.num_rows, span, dtype=np.int16)),
                )
                tables.append(_regroup(coarser))
            self._census = None
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return pa.table({})
        out = _in_index_order(pa.concat_tables(tables))
        rows = out.num_rows
        return pa.table(
            {
                "batch_id": pa.array(np.full(rows, batch_id, dtype=np.int32)),
                "source": pa.array(np.full(rows, ids.source_id, dtype=np.int16)),
                **{c: out[c] for c in out.column_names},
            }
        )


def _in_index_order(rows: pa.Table) -> pa.Table:
    """Rows in the order of the recent partition's index key (force, level, span, period start).

    PostgreSQL then builds the index from presorted rows: 1.9 s instead of 6.4 s for a 1M-incident
    batch's 2.9M rows (bench/), most of it comparing force codes under the database's text collation.
    One int64 key sorted by numpy costs a fraction of that. Force codes are ASCII GSS codes, which sort
    the same under any collation.
    """
    forces = pc.unique(rows["force_code"]).sort()
    force_rank = pc.index_in(rows["force_code"], value_set=forces).to_numpy(zero_copy_only=False)
    level = rows["level"].to_numpy()
    span = rows["span"].to_numpy()
    days = pc.cast(rows["period_start"], pa.int32()).to_numpy()
    days = days - days.min()
    # 5 bits of level (ids 1-10), 4 of span (1, 3, 12), 23 of days from the batch's first month.
    key = (
        (force_rank.astype(np.int64) << 32)
        | (level.astype(np.int64) << 27)
        | (span.astype(np.int64) << 23)
        | days.astype(np.int64)
    )
    return rows.take(pa.array(np.argsort(key, kind="stable")))


_ROW_KEY = ["force_code", "level", "span", "period_start", "area", "key_id", "synthetic"]


def _regroup(rows: pa.Table) -> pa.Table:
    """Sum ``harm_counts``-shaped rows that share every key column."""
    summed = rows.group_by(_ROW_KEY, use_threads=True).aggregate([("incidents", "sum")])
    return summed.select(_ROW_KEY).append_column("incidents", pc.cast(summed["incidents_sum"], pa.int32()))


def _level_rows(
    finest: pa.Table,
    n: pa.ChunkedArray,
    ids: AggregateIds,
    key_ids: pa.Array | pa.ChunkedArray,
    area: pa.Array | pa.ChunkedArray,
    level_id: int,
) -> pa.Table:
    """One level's month counts from the finest counts (whose forces are numbers in the store's list)."""
    force = finest["force_code"]
    part = pa.table(
        {
            "force_code": force,
            "period_start": finest["month"],
            "area": area,
            "key_id": key_ids,
            "synthetic": finest["synthetic"],
            "n": n,
        }
    ).filter(pc.and_(pc.is_valid(area), pc.is_valid(force)))
    grouped = part.group_by(
        ["force_code", "period_start", "area", "key_id", "synthetic"], use_threads=True
    ).aggregate([("n", "sum")])
    rows = grouped.num_rows
    return pa.table(
        {
            "force_code": pc.take(ids.codes["force_code"], grouped["force_code"]),
            "level": pa.array(np.full(rows, level_id, dtype=np.int16)),
            "span": pa.array(np.full(rows, 1, dtype=np.int16)),
            "period_start": grouped["period_start"],
            "area": pc.cast(grouped["area"], pa.int64()),
            "key_id": grouped["key_id"],
            "synthetic": grouped["synthetic"],
            "incidents": pc.cast(grouped["n_sum"], pa.int32()),
        }
    )


def _key_ids(conn: Connection, source_id: int, keys: pa.Array) -> list[int | None]:
    """Each of the distinct ``keys``' harm_keys id, adding keys not yet known."""
    distinct = keys.to_pylist()
    conn.execute(
        text(
            "INSERT INTO harm_keys (source, key) SELECT :source, unnest(CAST(:keys AS text[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {"source": source_id, "keys": distinct},
    )
    known: dict[str, int] = {
        key: int(key_id)
        for key, key_id in conn.execute(
            text("SELECT key, id FROM harm_keys WHERE source = :source AND key = ANY(CAST(:keys AS text[]))"),
            {"source": source_id, "keys": distinct},
        ).all()
    }
    return [known.get(k) for k in distinct]


def aggregate_columns(columns: pa.Table | Mapping[str, pa.Array], key: pa.Array) -> pa.Table:
    """What the harm aggregate groups by, for every row of a processed block.

    ``columns`` holds the block's month and located columns (a processed table, or the columns
    ``ingest.locate.locate`` gave where the table does not store them all).
    """
    return pa.table(
        {
            "force_code": columns["force_code"],
            "month": columns["month"],
            "key": key,
            "synthetic": pa.array(np.zeros(len(key), dtype=bool)),
            **{c: columns[c] for c in FINEST if c not in GROUP},
        }
    )


def recent_partition(batch_id: int) -> str:
    """The table that holds a batch's counts until it is folded (named as harm_recent_fold names it)."""
    return f"harm_recent_{int(batch_id)}"


class RecentPartition:
    """A batch's own harm_recent partition: created on the first write, indexed and attached at the end.

    Writing into a new table and building its index in one sorted pass is what keeps a large batch's
    aggregate cheap; inserting the same rows into harm_counts' B-tree cost three times as long (bench/).
    The table is created inside the load's transaction, so a failed or killed load leaves none behind.
    """

    def __init__(self, batch_id: int) -> None:
        self.batch_id = int(batch_id)
        self.name = recent_partition(self.batch_id)
        self._created = False

    def write(self, conn: Connection, rows: pa.Table) -> None:
        """COPY ``harm_counts``-shaped rows into the partition, creating it first if need be."""
        if rows.num_rows == 0:
            return
        if not self._created:
            # The CHECK lets ATTACH skip scanning the rows to prove they belong to this batch.
            conn.execute(
                text(
                    f"CREATE TABLE {self.name} (LIKE harm_recent INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
                    f"CHECK (batch_id = {self.batch_id}))"
                )
            )
            self._created = True
        # Frozen and all-visible as written (the table is this transaction's own), so queries of a
        # recent batch get index-only scans before any vacuum has seen it.
        copy_arrow(conn, self.name, rows, freeze=True)

    def attach(self, conn: Connection) -> None:
        """Index the partition and attach it: from the load's commit, readers count the batch."""
        if not self._created:
            return
        conn.execute(text(f"CREATE INDEX ON {self.name} {RECENT_INDEX}"))
        # Without statistics the planner guessed one row per period and scanned the batch's whole force
        # for each (170 ms instead of 30 for a ward query; bench/); autovacuum would come too late.
        conn.execute(text(f"ANALYZE {self.name}"))
        conn.execute(
            text(f"ALTER TABLE harm_recent ATTACH PARTITION {self.name} FOR VALUES IN ({self.batch_id})")
        )
        conn.execute(text("INSERT INTO harm_recent_batches (batch_id) VALUES (:b)"), {"b": self.batch_id})


# As harm_recent_query_idx, so ATTACH takes the partition's index as that index's part.
RECENT_INDEX = "(source, force_code, level, span, period_start) INCLUDE (area, key_id, synthetic, incidents)"


@dataclass(frozen=True)
class Folded:
    """One batch folded into harm_counts and harm_totals, or left recent (``rows`` 0) if it had to wait."""

    batch_id: int
    rows: int
    seconds: float
    waited_out: bool = False


# Dropping a folded partition waits for readers holding it. A reader left idle in a transaction must not
# queue every later query behind the fold, so the fold gives up instead; the batch stays recent.
FOLD_LOCK_TIMEOUT = "20s"


def fold_recent(engine: Engine, progress: Callable[[int, int], None] | None = None) -> list[Folded]:
    """Fold every recent batch, oldest first, each in its own transaction.

    Readers see the same figures before and after: a batch is counted from its partition until the
    transaction that moves it commits, and from harm_counts and harm_totals after.
    """
    with engine.connect() as conn:
        batches = (
            conn.execute(text("SELECT batch_id FROM harm_recent_batches ORDER BY batch_id")).scalars().all()
        )
    folded = []
    for done, batch_id in enumerate(batches):
        if progress is not None:
            progress(done, len(batches))
        started = time.perf_counter()
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL statement_timeout = 0"))
                conn.execute(text(f"SET LOCAL lock_timeout = '{FOLD_LOCK_TIMEOUT}'"))
                rows = conn.execute(text("SELECT harm_recent_fold(:b)"), {"b": batch_id}).scalar_one()
        except OperationalError as exc:
            if not isinstance(exc.orig, LockNotAvailable):
                raise
            log.warning(
                "fold of batch %s waited out %s for readers; it stays recent", batch_id, FOLD_LOCK_TIMEOUT
            )
            folded.append(Folded(int(batch_id), 0, time.perf_counter() - started, waited_out=True))
            continue
        folded.append(Folded(int(batch_id), int(rows), time.perf_counter() - started))
    if progress is not None:
        progress(len(batches), len(batches))
    return folded
